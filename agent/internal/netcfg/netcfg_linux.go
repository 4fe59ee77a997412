//go:build linux

package netcfg

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// ifreqAddr is struct ifreq with its sockaddr_in member (40 bytes).
type ifreqAddr struct {
	name [syscall.IFNAMSIZ]byte
	addr syscall.RawSockaddrInet4
	_    [8]byte
}

// ifreqFlags is struct ifreq with its ifr_flags member (40 bytes).
type ifreqFlags struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// rtentry is struct rtentry from <linux/route.h> (amd64 layout: Go aligns
// the fields exactly as C does, 120 bytes).
type rtentry struct {
	pad1    uint64
	dst     syscall.RawSockaddrInet4
	gateway syscall.RawSockaddrInet4
	genmask syscall.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uint64
	pad4    uintptr
	metric  int16
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
}

const (
	rtfUp      = 0x1
	rtfGateway = 0x2
	// How long to wait for the interface to appear: virtio_net is loaded in
	// the initramfs, so it is normally there already.
	linkWait = 2 * time.Second
)

func sockaddr(ip [4]byte) syscall.RawSockaddrInet4 {
	return syscall.RawSockaddrInet4{Family: syscall.AF_INET, Addr: ip}
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// ifaceSocket checks iface fits an ifreq and opens the socket its ioctls go through.
func ifaceSocket(iface string) (int, error) {
	if len(iface) >= syscall.IFNAMSIZ {
		return -1, fmt.Errorf("interface name %q too long", iface)
	}
	return syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
}

// Apply sets c's address and netmask on iface, brings it up, and adds the
// default route through c.Gateway. It is idempotent: an existing identical
// default route is not an error.
func Apply(iface string, c Config) error {
	fd, err := ifaceSocket(iface)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)

	var fl ifreqFlags
	copy(fl.name[:], iface)
	deadline := time.Now().Add(linkWait)
	for {
		err := ioctl(fd, syscall.SIOCGIFFLAGS, unsafe.Pointer(&fl))
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENODEV) || time.Now().After(deadline) {
			return fmt.Errorf("%s: %v", iface, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var ra ifreqAddr
	copy(ra.name[:], iface)
	ra.addr = sockaddr(c.Addr)
	if err := ioctl(fd, syscall.SIOCSIFADDR, unsafe.Pointer(&ra)); err != nil {
		return fmt.Errorf("SIOCSIFADDR %s %s: %v", iface, FormatIP(c.Addr), err)
	}
	ra.addr = sockaddr(c.Netmask())
	if err := ioctl(fd, syscall.SIOCSIFNETMASK, unsafe.Pointer(&ra)); err != nil {
		return fmt.Errorf("SIOCSIFNETMASK %s /%d: %v", iface, c.Prefix, err)
	}
	fl.flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	if err := ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(&fl)); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s up: %v", iface, err)
	}
	if c.Gateway == nil {
		return nil
	}
	rt := rtentry{
		dst:     sockaddr([4]byte{}),
		gateway: sockaddr(*c.Gateway),
		genmask: sockaddr([4]byte{}),
		flags:   rtfUp | rtfGateway,
	}
	if err := ioctl(fd, syscall.SIOCADDRT, unsafe.Pointer(&rt)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("SIOCADDRT default via %s: %v", FormatIP(*c.Gateway), err)
	}
	return nil
}

// WriteResolvConf replaces path (a symlink is replaced, not followed) with
// c's name servers; with none it leaves path alone.
func WriteResolvConf(path string, c Config) error {
	text := c.ResolvConfText()
	if text == "" {
		return nil
	}
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() {
		if cur, err := os.ReadFile(path); err == nil && string(cur) == text {
			return nil // as it is: a restart of the same disk (a write is a journal commit under TCG)
		}
	}
	tmp := path + ".islet-tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
