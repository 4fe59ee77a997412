//go:build linux

package netcfg

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// ifreqHW is struct ifreq with its ifr_hwaddr member (40 bytes).
type ifreqHW struct {
	name   [syscall.IFNAMSIZ]byte
	family uint16
	data   [14]byte
	_      [8]byte
}

// ifreqIndex is struct ifreq with its ifr_ifindex member (40 bytes).
type ifreqIndex struct {
	name  [syscall.IFNAMSIZ]byte
	index int32
	_     [20]byte
}

// Readdress moves a running guest's iface to another MAC, address, route
// and name servers: what a VM restored from saved state needs before its
// TAP joins the bridge. A template (and so a pool VM) is saved with iface
// down and unaddressed, so the common case only sets the MAC and calls
// Apply. A memory fork carries its parent's address: the link goes down
// first, which drops the routes and neighbours learned under it, and every
// IPv4 address is removed (a fork may carry more than one). The name
// servers are the caller's (WriteResolvConf). System calls only: under TCG,
// each program a fresh VM starts (ip) costs about a hundred milliseconds of
// translation, and each kernel path run for the first time costs some too,
// hence the checks before the down and the flush.
func Readdress(iface string, mac [6]byte, c Config) error {
	fd, err := ifaceSocket(iface)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)

	var fl ifreqFlags
	copy(fl.name[:], iface)
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, unsafe.Pointer(&fl)); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %v", iface, err)
	}
	wasUp := fl.flags&syscall.IFF_UP != 0
	if wasUp {
		fl.flags &^= syscall.IFF_UP
		if err := ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(&fl)); err != nil {
			return fmt.Errorf("SIOCSIFFLAGS %s down: %v", iface, err)
		}
	}
	var ra ifreqAddr
	copy(ra.name[:], iface)
	switch err := ioctl(fd, syscall.SIOCGIFADDR, unsafe.Pointer(&ra)); {
	case errors.Is(err, syscall.EADDRNOTAVAIL): // no IPv4 address at all
	case err != nil:
		return fmt.Errorf("SIOCGIFADDR %s: %v", iface, err)
	default:
		var ri ifreqIndex
		copy(ri.name[:], iface)
		if err := ioctl(fd, syscall.SIOCGIFINDEX, unsafe.Pointer(&ri)); err != nil {
			return fmt.Errorf("SIOCGIFINDEX %s: %v", iface, err)
		}
		if err := flushIPv4(ri.index); err != nil {
			return fmt.Errorf("removing the addresses of %s: %v", iface, err)
		}
	}
	hw := ifreqHW{family: syscall.ARPHRD_ETHER}
	copy(hw.name[:], iface)
	copy(hw.data[:], mac[:])
	if err := ioctl(fd, syscall.SIOCSIFHWADDR, unsafe.Pointer(&hw)); err != nil {
		return fmt.Errorf("SIOCSIFHWADDR %s: %v", iface, err)
	}
	if wasUp {
		// As ip does it (down, flush, MAC, up, then the address): a fork's
		// link comes back up before it is addressed.
		fl.flags |= syscall.IFF_UP
		if err := ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(&fl)); err != nil {
			return fmt.Errorf("SIOCSIFFLAGS %s up: %v", iface, err)
		}
	}
	return Apply(iface, c)
}

// flushIPv4 removes every IPv4 address of interface index, over rtnetlink
// (the ioctls address one label at a time and cannot list them all).
func flushIPv4(index int32) error {
	dump, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_INET)
	if err != nil {
		return fmt.Errorf("RTM_GETADDR: %v", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(dump)
	if err != nil {
		return err
	}
	var bodies [][]byte
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		am := (*syscall.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		if am.Family == syscall.AF_INET && int32(am.Index) == index {
			// The address as the kernel listed it (ifaddrmsg and attributes) is the body of its RTM_DELADDR.
			bodies = append(bodies, m.Data)
		}
	}
	if len(bodies) == 0 {
		return nil
	}
	s, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer syscall.Close(s)
	if err := syscall.Bind(s, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	for i, body := range bodies {
		err := netlinkDo(s, syscall.RTM_DELADDR, uint32(i+1), body)
		// Removing a primary address removes the secondaries of its subnet with it.
		if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("RTM_DELADDR: %v", err)
		}
	}
	return nil
}

// netlinkDo sends one request with NLM_F_ACK and returns the kernel's answer as an error (nil for success).
func netlinkDo(s int, typ uint16, seq uint32, body []byte) error {
	h := syscall.NlMsghdr{Len: uint32(syscall.SizeofNlMsghdr + len(body)), Type: typ, Flags: syscall.NLM_F_REQUEST | syscall.NLM_F_ACK, Seq: seq}
	req := make([]byte, 0, h.Len)
	req = append(req, (*[syscall.SizeofNlMsghdr]byte)(unsafe.Pointer(&h))[:]...)
	req = append(req, body...)
	if err := syscall.Sendto(s, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(s, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != syscall.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if e := *(*int32)(unsafe.Pointer(&m.Data[0])); e != 0 {
				return syscall.Errno(-e)
			}
			return nil
		}
	}
}
