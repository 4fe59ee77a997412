package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var hostIPs = []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("127.0.0.1")}

func TestRefusal(t *testing.T) {
	p := &Policy{Internet: true, allowed: mustCIDRs("10.9.0.0/16")}
	cases := map[string]bool{
		"127.0.0.1": false, "127.8.8.8": false, "::1": false, "169.254.169.254": false, "fe80::1": false,
		"10.0.0.5": false, "172.16.1.1": false, "192.168.1.1": false, "100.64.0.1": false, "fd00::1": false,
		"192.0.2.10": false, "0.0.0.0": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"10.9.3.4": true, "203.0.113.7": true, "93.184.216.34": true, "2001:db8::1": true,
	}
	for s, ok := range cases {
		if got := p.refusal(net.ParseIP(s), hostIPs) == ""; got != ok {
			t.Errorf("%s: allowed=%v, want %v (%s)", s, got, ok, p.refusal(net.ParseIP(s), hostIPs))
		}
	}
}

func TestDomains(t *testing.T) {
	p := &Policy{AllowedDomains: []string{"example.com", "*.debian.org"}}
	for s, ok := range map[string]bool{"example.com": true, "EXAMPLE.com.": true, "a.example.com": false,
		"deb.debian.org": true, "debian.org": false, "evildebian.org": false, "x.y.debian.org": true} {
		if p.domainAllowed(s) != ok {
			t.Errorf("%s: want %v", s, ok)
		}
	}
}

// run sends one raw request through serve with a fake outside world and returns the answer.
func run(t *testing.T, p *Policy, request string, upstream func(net.Conn)) (string, []string) {
	t.Helper()
	var dialed []string
	e := &env{
		policy: func() (*Policy, error) {
			if p == nil {
				return nil, ErrNoPolicy
			}
			return p, nil
		},
		hostAddrs: func() ([]net.IP, error) { return hostIPs, nil },
		lookup: func(_ context.Context, _ *Policy, host string) ([]net.IP, error) {
			switch host {
			case "public.test":
				return []net.IP{net.ParseIP("203.0.113.7")}, nil
			case "sneaky.test":
				return []net.IP{net.ParseIP("127.0.0.1")}, nil
			}
			return nil, errors.New("no such host")
		},
		dial: func(_ context.Context, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			a, b := net.Pipe()
			go upstream(b)
			return a, nil
		},
	}
	// Real TCP on loopback for the guest side: the tunnel needs half-close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { e.serve(server); close(done) }()
	go func() { _, _ = io.WriteString(client, request); _ = client.(*net.TCPConn).CloseWrite() }()
	out, _ := io.ReadAll(client)
	<-done
	return string(out), dialed
}

func echoHTTP(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	body := "hello " + req.Host + " " + req.URL.Path + " proxy-auth=" + req.Header.Get("Proxy-Authorization")
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }
func fmtInt(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return fmtInt(n/10) + string(rune('0'+n%10))
}

func TestServe(t *testing.T) {
	open := &Policy{Version: 1, Internet: true}
	out, dialed := run(t, open, "GET http://public.test:8000/x HTTP/1.1\r\nHost: public.test:8000\r\nProxy-Authorization: secret\r\n\r\n", echoHTTP)
	if !strings.Contains(out, "200 OK") || !strings.Contains(out, "hello public.test:8000 /x proxy-auth=\n") && !strings.HasSuffix(out, "proxy-auth=") {
		t.Fatalf("plain http: %q", out)
	}
	if len(dialed) != 1 || dialed[0] != "203.0.113.7:8000" {
		t.Fatalf("dialed %v", dialed)
	}
	out, _ = run(t, open, "CONNECT public.test:443 HTTP/1.1\r\nHost: public.test:443\r\n\r\nGET /t HTTP/1.1\r\nHost: public.test\r\n\r\n", echoHTTP)
	if !strings.HasPrefix(out, "HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK") || !strings.Contains(out, "hello public.test /t") {
		t.Fatalf("connect: %q", out)
	}
	refusedCases := []struct {
		p    *Policy
		req  string
		want string
	}{
		{nil, "CONNECT public.test:443 HTTP/1.1\r\n\r\n", "no egress policy"},
		{&Policy{Internet: false}, "CONNECT public.test:443 HTTP/1.1\r\n\r\n", "internet access is off"},
		{open, "CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n", "loopback"},
		{open, "CONNECT sneaky.test:80 HTTP/1.1\r\n\r\n", "loopback"},
		{open, "CONNECT 192.0.2.10:7070 HTTP/1.1\r\n\r\n", "an address of this host"},
		{open, "GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n", "link-local"},
		{open, "CONNECT [fe80::1]:80 HTTP/1.1\r\n\r\n", "link-local"},
		{open, "CONNECT 10.1.2.3:80 HTTP/1.1\r\n\r\n", "private"},
		{&Policy{Internet: true, AllowedPorts: []int{443}}, "CONNECT public.test:80 HTTP/1.1\r\n\r\n", "port 80"},
		{&Policy{Internet: true, AllowedDomains: []string{"allowed.test"}}, "CONNECT public.test:443 HTTP/1.1\r\n\r\n", "not an allowed domain"},
		{&Policy{Internet: true, AllowedDomains: []string{"allowed.test"}}, "CONNECT 203.0.113.7:443 HTTP/1.1\r\n\r\n", "by name"},
	}
	for _, c := range refusedCases {
		out, dialed := run(t, c.p, c.req, echoHTTP)
		if !strings.HasPrefix(out, "HTTP/1.1 403 Forbidden") || !strings.Contains(out, c.want) || len(dialed) != 0 {
			t.Errorf("%q: got %q, dialed %v", c.req, out, dialed)
		}
	}
	out, _ = run(t, open, "GET https://public.test/ HTTP/1.1\r\nHost: public.test\r\n\r\n", echoHTTP)
	if !strings.HasPrefix(out, "HTTP/1.1 400") {
		t.Errorf("https in plain form: %q", out)
	}
	out, _ = run(t, open, "GET / HTTP/1.1\r\nX: "+strings.Repeat("a", maxHeaderBytes)+"\r\n\r\n", echoHTTP)
	if !strings.HasPrefix(out, "HTTP/1.1 400") || !strings.Contains(out, "too large") {
		t.Errorf("huge headers: %.200q", out)
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "egress.json")
	if _, err := loadPolicy(f); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("missing file: %v", err)
	}
	_ = os.WriteFile(f, []byte(`{"version":1,"internet":true,"allowed_cidrs":["10.5.0.0/16"],"resolvers":["198.18.0.2:53"]}`), 0o600)
	p, err := loadPolicy(f)
	if err != nil || !p.Internet || p.refusal(net.ParseIP("10.5.1.1"), nil) != "" || p.Resolvers[0] != "198.18.0.2:53" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{`{"version":2}`, `{"version":1,"allowed_cidrs":["x"]}`, `nope`, `{"version":1,"x":"` + strings.Repeat("a", maxPolicyBytes) + `"}`} {
		_ = os.WriteFile(f, []byte(bad), 0o600)
		if _, err := loadPolicy(f); err == nil {
			t.Errorf("%.40s: accepted", bad)
		}
	}
}

func TestSlots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "slots")
	var held []*os.File
	for i := 0; i < 3; i++ {
		f, ok := acquireSlot(dir, 3)
		if !ok {
			t.Fatalf("slot %d refused", i)
		}
		held = append(held, f)
	}
	if _, ok := acquireSlot(dir, 3); ok {
		t.Fatal("a fourth slot was granted")
	}
	held[1].Close()
	if f, ok := acquireSlot(dir, 3); !ok {
		t.Fatal("a released slot was not granted again")
	} else {
		f.Close()
	}
}
