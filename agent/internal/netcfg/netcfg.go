// Package netcfg configures the guest's network interface from the kernel
// command line. The base image has no DHCP client and no iproute2, so the
// agent does it itself with a handful of ioctls (netcfg_linux.go). The host
// passes
//
//	islet.net=10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3
//
// and no islet.net at all means no network: eth0 stays down. Parsing is
// separate from applying so it is unit-tested on any platform.
package netcfg

import (
	"fmt"
	"strconv"
	"strings"
)

// CmdlineKey is the kernel command line word the host sets.
const CmdlineKey = "islet.net"

// DefaultInterface is the first virtio-net device.
const DefaultInterface = "eth0"

// ResolvConf is where the DNS server is written.
const ResolvConf = "/etc/resolv.conf"

// Config is one static IPv4 configuration.
type Config struct {
	Addr    [4]byte
	Prefix  int
	Gateway *[4]byte // nil: no default route
	DNS     [][4]byte
}

// Netmask returns the mask for Prefix.
func (c Config) Netmask() [4]byte {
	var m [4]byte
	bits := uint32(0)
	if c.Prefix > 0 {
		bits = ^uint32(0) << (32 - uint(c.Prefix))
	}
	m[0], m[1], m[2], m[3] = byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)
	return m
}

// ResolvConfText is the content written to /etc/resolv.conf ("" when no DNS).
func (c Config) ResolvConfText() string {
	if len(c.DNS) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("# written by islet-agent from islet.net\n")
	for _, d := range c.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", FormatIP(d))
	}
	return b.String()
}

// FromCmdline returns the configuration in cmd (see info.Cmdline), ok=false
// when the host asked for no network.
func FromCmdline(cmd map[string]string) (cfg Config, ok bool, err error) {
	v, present := cmd[CmdlineKey]
	if !present || v == "" || v == "none" {
		return Config{}, false, nil
	}
	cfg, err = Parse(v)
	return cfg, err == nil, err
}

// Parse reads "ADDR/PREFIX[,gw=IP][,dns=IP]..." (dns may repeat).
func Parse(s string) (Config, error) {
	var c Config
	parts := strings.Split(s, ",")
	addr, prefix, found := strings.Cut(parts[0], "/")
	if !found {
		return c, fmt.Errorf("%s=%q: want ADDR/PREFIX first", CmdlineKey, s)
	}
	a, err := ParseIP(addr)
	if err != nil {
		return c, err
	}
	p, err := strconv.Atoi(prefix)
	if err != nil || p < 1 || p > 32 {
		return c, fmt.Errorf("%s: bad prefix length %q (want 1-32)", CmdlineKey, prefix)
	}
	c.Addr, c.Prefix = a, p
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return c, fmt.Errorf("%s: %q is not key=value", CmdlineKey, kv)
		}
		ip, err := ParseIP(v)
		if err != nil {
			return c, err
		}
		switch k {
		case "gw":
			if c.Gateway != nil {
				return c, fmt.Errorf("%s: gw given twice", CmdlineKey)
			}
			g := ip
			c.Gateway = &g
		case "dns":
			if len(c.DNS) >= 3 {
				return c, fmt.Errorf("%s: at most 3 dns servers", CmdlineKey)
			}
			c.DNS = append(c.DNS, ip)
		default:
			return c, fmt.Errorf("%s: unknown key %q (want gw or dns)", CmdlineKey, k)
		}
	}
	return c, nil
}

// ParseIP reads a dotted-quad IPv4 address (the agent may not import net).
func ParseIP(s string) ([4]byte, error) {
	var ip [4]byte
	f := strings.Split(s, ".")
	if len(f) != 4 {
		return ip, fmt.Errorf("%q is not an IPv4 address", s)
	}
	for i, p := range f {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return ip, fmt.Errorf("%q is not an IPv4 address", s)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return ip, fmt.Errorf("%q is not an IPv4 address", s)
		}
		ip[i] = byte(n)
	}
	return ip, nil
}

// FormatIP is the dotted-quad form of ip.
func FormatIP(ip [4]byte) string {
	return fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3])
}

// String is the islet.net form of c.
func (c Config) String() string {
	s := fmt.Sprintf("%s/%d", FormatIP(c.Addr), c.Prefix)
	if c.Gateway != nil {
		s += ",gw=" + FormatIP(*c.Gateway)
	}
	for _, d := range c.DNS {
		s += ",dns=" + FormatIP(d)
	}
	return s
}
