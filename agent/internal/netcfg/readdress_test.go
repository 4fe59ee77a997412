package netcfg

import "testing"

func TestParseMAC(t *testing.T) {
	m, err := ParseMAC("02:15:0A:2a:00:ff")
	if err != nil || m != [6]byte{2, 0x15, 10, 42, 0, 0xff} {
		t.Fatalf("%x %v", m, err)
	}
	for _, bad := range []string{"", "02:15:0a:2a:00", "02:15:0a:2a:00:ff:01", "02:15:0a:2a:00:f", "02:15:0a:2a:00:fff", "02:15:0a:2a:00:gg", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02-15-0a-2a-00-ff"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
