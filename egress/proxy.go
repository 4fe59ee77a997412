package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	// maxHeaderBytes bounds the request line and headers the guest sends.
	maxHeaderBytes = 64 << 10
	headerTimeout  = 30 * time.Second
	dialTimeout    = 10 * time.Second
	resolveTimeout = 5 * time.Second
)

// refused is a destination the policy does not allow: 403, with the reason.
type refused struct{ why string }

func (r refused) Error() string { return r.why }

// env is what one connection needs from outside: the policy and the host's
// addresses (read per connection), a resolver, a dialer. Tests replace them.
type env struct {
	policy    func() (*Policy, error)
	hostAddrs func() ([]net.IP, error)
	lookup    func(ctx context.Context, p *Policy, host string) ([]net.IP, error)
	dial      func(ctx context.Context, addr string) (net.Conn, error)
}

// limitedReader fails once more than n bytes were read: it caps the header
// phase, and is lifted (n < 0) before the body or tunnel is copied.
type limitedReader struct {
	r io.Reader
	n int
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(b)
	}
	if l.n == 0 {
		return 0, errors.New("request headers too large")
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	m, err := l.r.Read(b)
	l.n -= m
	return m, err
}

// serve handles one guest connection: one CONNECT tunnel or one plain-HTTP
// request (the upstream request is sent with Connection: close).
func (e *env) serve(c net.Conn) {
	defer c.Close()
	lr := &limitedReader{r: c, n: maxHeaderBytes}
	br := bufio.NewReaderSize(lr, 4096)
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	req, err := http.ReadRequest(br)
	if err != nil {
		reply(c, http.StatusBadRequest, "bad request: "+err.Error())
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	lr.n = -1

	host, port, err := target(req)
	if err != nil {
		reply(c, http.StatusBadRequest, err.Error())
		return
	}
	up, err := e.connect(host, port)
	if err != nil {
		var r refused
		if errors.As(err, &r) {
			reply(c, http.StatusForbidden, fmt.Sprintf("refused %s:%d: %s", host, port, r.why))
		} else {
			reply(c, http.StatusBadGateway, fmt.Sprintf("cannot reach %s:%d: %v", host, port, err))
		}
		return
	}
	defer up.Close()

	if req.Method == http.MethodConnect {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		pipe(c, br, up)
		return
	}
	req.RequestURI = ""
	for k := range req.Header {
		if strings.HasPrefix(strings.ToLower(k), "proxy-") {
			req.Header.Del(k)
		}
	}
	req.Close = true
	req.Header.Set("Connection", "close")
	if err := req.Write(up); err != nil {
		return
	}
	_, _ = io.Copy(c, up)
}

// target is the host and port a request names: CONNECT host:port, or an
// absolute http:// URL.
func target(req *http.Request) (string, int, error) {
	var hostport, defPort string
	if req.Method == http.MethodConnect {
		hostport = req.RequestURI
	} else {
		if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" {
			return "", 0, errors.New("a proxy request needs an absolute http:// URL (use CONNECT for https)")
		}
		hostport, defPort = req.URL.Host, "80"
	}
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		if defPort == "" {
			return "", 0, fmt.Errorf("bad CONNECT target %q", hostport)
		}
		h, p = strings.Trim(hostport, "[]"), defPort
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || h == "" {
		return "", 0, fmt.Errorf("bad target %q", hostport)
	}
	return h, n, nil
}

// connect checks host:port against the policy, resolves the name itself and
// dials only an address it checked (so a name cannot be re-resolved to a
// forbidden address between the check and the connection).
func (e *env) connect(host string, port int) (net.Conn, error) {
	p, err := e.policy()
	if err != nil {
		if errors.Is(err, ErrNoPolicy) {
			return nil, refused{"this VM has no egress policy yet"}
		}
		return nil, refused{"the egress policy cannot be read: " + err.Error()}
	}
	if !p.Internet {
		return nil, refused{"internet access is off for this workspace"}
	}
	if !p.portAllowed(port) {
		return nil, refused{fmt.Sprintf("port %d is not an allowed egress port", port)}
	}
	hostAddrs, err := e.hostAddrs()
	if err != nil {
		return nil, refused{"the host's addresses cannot be listed: " + err.Error()}
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		if len(p.AllowedDomains) > 0 {
			return nil, refused{"only the allowed domains may be reached, by name"}
		}
		ips = []net.IP{ip}
	} else {
		if !p.domainAllowed(host) {
			return nil, refused{fmt.Sprintf("%q is not an allowed domain", host)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		ips, err = e.lookup(ctx, p, host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %v", host, err)
		}
	}
	why := ""
	for _, ip := range ips {
		if r := p.refusal(ip, hostAddrs); r != "" {
			why = fmt.Sprintf("%s is %s", ip, r)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		c, err := e.dial(ctx, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		cancel()
		if err == nil {
			return c, nil
		}
		why = ""
		if len(ips) == 1 {
			return nil, err
		}
	}
	if why != "" {
		return nil, refused{why}
	}
	return nil, fmt.Errorf("no address of %s answered", host)
}

// pipe copies both ways until both directions end; bytes the guest sent
// after its CONNECT request are already in br.
func pipe(c net.Conn, br *bufio.Reader, up net.Conn) {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, br)
		closeWrite(up)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, up)
		closeWrite(c)
		done <- struct{}{}
	}()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func reply(c net.Conn, status int, msg string) {
	body := "islet egress: " + msg + "\n"
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nX-Islet-Egress: refused\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}

// lookupIPs resolves with the policy's resolvers, or the host's.
func lookupIPs(ctx context.Context, p *Policy, host string) ([]net.IP, error) {
	r := net.DefaultResolver
	if len(p.Resolvers) > 0 {
		servers := p.Resolvers
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			var last error
			for _, s := range servers {
				c, err := d.DialContext(ctx, network, s)
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		}}
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.IP)
	}
	return out, nil
}
