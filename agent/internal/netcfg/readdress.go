package netcfg

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseMAC reads "xx:xx:xx:xx:xx:xx" (hex, either case). Only unicast
// addresses are accepted: a multicast MAC on eth0 would break the link.
func ParseMAC(s string) ([6]byte, error) {
	var m [6]byte
	f := strings.Split(s, ":")
	if len(f) != 6 {
		return m, fmt.Errorf("%q is not a MAC address", s)
	}
	for i, p := range f {
		if len(p) != 2 {
			return m, fmt.Errorf("%q is not a MAC address", s)
		}
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return m, fmt.Errorf("%q is not a MAC address", s)
		}
		m[i] = byte(n)
	}
	if m[0]&1 != 0 {
		return m, fmt.Errorf("%q is a multicast MAC address", s)
	}
	if m == [6]byte{} {
		return m, fmt.Errorf("%q is the zero MAC address", s)
	}
	return m, nil
}
