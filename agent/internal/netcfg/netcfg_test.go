package netcfg

import "testing"

func TestParse(t *testing.T) {
	c, err := Parse("10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != [4]byte{10, 0, 2, 15} || c.Prefix != 24 || c.Gateway == nil || *c.Gateway != [4]byte{10, 0, 2, 2} {
		t.Fatalf("got %+v", c)
	}
	if len(c.DNS) != 1 || c.DNS[0] != [4]byte{10, 0, 2, 3} {
		t.Fatalf("dns %v", c.DNS)
	}
	if m := c.Netmask(); m != [4]byte{255, 255, 255, 0} {
		t.Fatalf("mask %v", m)
	}
	if s := c.String(); s != "10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3" {
		t.Fatalf("round trip %q", s)
	}
	if txt := c.ResolvConfText(); txt != "# written by islet-agent from islet.net\nnameserver 10.0.2.3\n" {
		t.Fatalf("resolv.conf %q", txt)
	}
}

func TestParseMinimal(t *testing.T) {
	c, err := Parse("192.168.1.7/32")
	if err != nil || c.Gateway != nil || len(c.DNS) != 0 || c.Netmask() != [4]byte{255, 255, 255, 255} {
		t.Fatalf("got %+v %v", c, err)
	}
	if c.ResolvConfText() != "" {
		t.Fatal("resolv.conf without dns")
	}
	c, _ = Parse("10.42.0.9/16,gw=10.42.0.1")
	if c.Netmask() != [4]byte{255, 255, 0, 0} {
		t.Fatalf("mask %v", c.Netmask())
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "10.0.2.15", "10.0.2.15/0", "10.0.2.15/33", "10.0.2.15/x", "10.0.2/24", "10.0.2.256/24",
		"10.0.2.015/24", "1.2.3.4.5/24", "10.0.2.15/24,gw", "10.0.2.15/24,gw=1.2.3", "10.0.2.15/24,foo=1.2.3.4",
		"10.0.2.15/24,gw=1.1.1.1,gw=2.2.2.2", "10.0.2.15/24,dns=1.1.1.1,dns=1.1.1.1,dns=1.1.1.1,dns=1.1.1.1",
		"-1.0.0.0/8", "a.b.c.d/8",
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestFromCmdline(t *testing.T) {
	if _, ok, err := FromCmdline(map[string]string{}); ok || err != nil {
		t.Fatal("absent islet.net should mean no network")
	}
	if _, ok, err := FromCmdline(map[string]string{CmdlineKey: "none"}); ok || err != nil {
		t.Fatal("islet.net=none should mean no network")
	}
	if _, ok, err := FromCmdline(map[string]string{CmdlineKey: "bogus"}); ok || err == nil {
		t.Fatal("bad islet.net accepted")
	}
	c, ok, err := FromCmdline(map[string]string{CmdlineKey: "10.0.2.15/24,gw=10.0.2.2"})
	if !ok || err != nil || c.Addr != [4]byte{10, 0, 2, 15} {
		t.Fatalf("got %+v %v %v", c, ok, err)
	}
}
