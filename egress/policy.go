package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// maxPolicyBytes bounds the policy file: islet writes it, but a bound costs nothing.
const maxPolicyBytes = 64 << 10

// Policy is the workspace's egress policy as islet writes it (atomically, by
// rename) into the VM's run directory. It is read again at every connection,
// so a network_policy change applies to the next connection without a restart.
type Policy struct {
	Version int `json:"version"`
	// Internet false refuses every destination.
	Internet bool `json:"internet"`
	// AllowedDomains, when not empty, is the only names the guest may reach
	// ("example.com" that name, "*.example.com" any name under it). Bare
	// addresses are then refused.
	AllowedDomains []string `json:"allowed_domains"`
	// AllowedPorts, when not empty, is the only destination ports.
	AllowedPorts []int `json:"allowed_ports"`
	// AllowedCIDRs lifts the private/shared refusal for these ranges only.
	AllowedCIDRs []string `json:"allowed_cidrs"`
	// Resolvers are "ip:port" DNS servers; empty: the host's /etc/resolv.conf.
	Resolvers []string `json:"resolvers"`

	allowed []*net.IPNet
}

// ErrNoPolicy: no file yet (a pool VM not yet handed out): everything is refused.
var ErrNoPolicy = errors.New("no egress policy for this VM")

func loadPolicy(file string) (*Policy, error) {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoPolicy
		}
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, maxPolicyBytes+1)
	n, _ := readFull(f, buf)
	if n > maxPolicyBytes {
		return nil, fmt.Errorf("policy file over %d bytes", maxPolicyBytes)
	}
	var p Policy
	if err := json.Unmarshal(buf[:n], &p); err != nil {
		return nil, fmt.Errorf("policy file: %v", err)
	}
	if p.Version != 1 {
		return nil, fmt.Errorf("policy file version %d, want 1", p.Version)
	}
	for _, c := range p.AllowedCIDRs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("policy file: allowed_cidrs: %v", err)
		}
		p.allowed = append(p.allowed, n)
	}
	return &p, nil
}

func readFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// domainAllowed: the same matching as bridge mode's DNS forwarder.
func (p *Policy) domainAllowed(host string) bool {
	if len(p.AllowedDomains) == 0 {
		return true
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range p.AllowedDomains {
		d = strings.TrimSuffix(strings.ToLower(d), ".")
		if strings.HasPrefix(d, "*.") {
			if strings.HasSuffix(h, d[1:]) && len(h) > len(d)-1 {
				return true
			}
		} else if h == d {
			return true
		}
	}
	return false
}

func (p *Policy) portAllowed(port int) bool {
	if len(p.AllowedPorts) == 0 {
		return true
	}
	for _, x := range p.AllowedPorts {
		if x == port {
			return true
		}
	}
	return false
}

var privateNets = mustCIDRs(
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918
	"100.64.0.0/10", // shared address space (carrier-grade NAT, some clouds' metadata)
	"fc00::/7",      // unique local
)

var neverNets = mustCIDRs(
	"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "fe80::/10", "ff00::/8",
	"64:ff9b::/96", // NAT64 can embed any IPv4 address, the host's included
)

func mustCIDRs(s ...string) []*net.IPNet {
	out := make([]*net.IPNet, 0, len(s))
	for _, c := range s {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}

func inAny(ip net.IP, nets []*net.IPNet) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// refusal says why ip may not be reached, or "" if it may. hostAddrs are the
// host's own addresses (any of them reaches the host's services, islet's
// control plane included, whatever interface they listen on).
func (p *Policy) refusal(ip net.IP, hostAddrs []net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "a link-local address"
	case inAny(ip, neverNets) || ip.IsUnspecified() || ip.IsMulticast():
		return "a reserved address"
	}
	for _, h := range hostAddrs {
		if h.Equal(ip) {
			return "an address of this host"
		}
	}
	if inAny(ip, privateNets) && !inAny(ip, p.allowed) {
		return "a private address (allow it with [network] allowed_private_cidrs)"
	}
	return ""
}

func hostAddresses() ([]net.IP, error) {
	var out []net.IP
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out, nil
}
