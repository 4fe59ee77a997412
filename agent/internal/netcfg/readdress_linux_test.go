//go:build linux

package netcfg

import (
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

func TestReaddressStructSizes(t *testing.T) {
	if n := unsafe.Sizeof(ifreqHW{}); n != 40 {
		t.Fatalf("ifreqHW is %d bytes, want 40", n)
	}
	if n := unsafe.Sizeof(ifreqIndex{}); n != 40 {
		t.Fatalf("ifreqIndex is %d bytes, want 40", n)
	}
}

// TestReaddressInNetns runs Readdress against a real kernel: a link
// (one end of a veth pair) in a network namespace of its own (root and iproute2 needed), carrying
// what a forked guest may carry: two addresses in one subnet, one in
// another, a default route through the old gateway; then a link as a
// template leaves it, down and unaddressed.
func TestReaddressInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread stays locked and dies with this goroutine: no other test runs in the namespace.
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		failed := false
		ip := func(args ...string) string {
			out, err := exec.Command("ip", args...).CombinedOutput()
			if err != nil && !failed {
				failed = true
				t.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return string(out)
		}
		ip("link", "add", "isl0", "type", "veth", "peer", "name", "isl1")
		ip("link", "set", "dev", "isl1", "up")
		ip("link", "set", "dev", "isl0", "address", "02:15:0a:2a:00:02", "up")
		ip("addr", "add", "10.42.0.2/24", "dev", "isl0")
		ip("addr", "add", "10.42.0.3/24", "dev", "isl0")
		ip("addr", "add", "10.9.0.1/16", "dev", "isl0")
		ip("route", "add", "default", "via", "10.42.0.1")
		ip("neigh", "add", "10.42.0.1", "lladdr", "02:00:00:00:00:01", "dev", "isl0")
		if failed {
			return
		}
		c, _ := Parse("10.42.0.7/24,gw=10.42.0.1")
		if err := Readdress("isl0", [6]byte{2, 0x15, 10, 42, 0, 7}, c); err != nil {
			t.Errorf("Readdress: %v", err)
			return
		}
		addrs := regexp.MustCompile(`inet (\S+)`).FindAllStringSubmatch(ip("-4", "-o", "addr", "show", "dev", "isl0"), -1)
		if len(addrs) != 1 || addrs[0][1] != "10.42.0.7/24" {
			t.Errorf("addresses after: %v (want only 10.42.0.7/24)", addrs)
		}
		link := ip("-o", "link", "show", "dev", "isl0")
		if !strings.Contains(link, "link/ether 02:15:0a:2a:00:07") || !strings.Contains(link, ",UP") {
			t.Errorf("link after: %s", link)
		}
		if r := ip("-4", "route", "show", "default"); !strings.Contains(r, "default via 10.42.0.1 dev isl0") {
			t.Errorf("default route after: %q", r)
		}
		if n := ip("-4", "neigh", "show", "dev", "isl0"); strings.Contains(n, "02:00:00:00:00:01") {
			t.Errorf("a neighbour learned before survived: %q", n)
		}
		if err := Readdress("isl0", [6]byte{2, 0x15, 10, 42, 0, 7}, c); err != nil {
			t.Errorf("Readdress again, to the same address: %v", err)
		}

		// As a template leaves it: down and without an address.
		ip("link", "set", "dev", "isl1", "down")
		c2, _ := Parse("10.43.0.9/24")
		if err := Readdress("isl1", [6]byte{2, 0x15, 10, 43, 0, 9}, c2); err != nil {
			t.Errorf("Readdress of a down, unaddressed link: %v", err)
			return
		}
		if a := ip("-4", "-o", "addr", "show", "dev", "isl1"); !strings.Contains(a, "inet 10.43.0.9/24") {
			t.Errorf("isl1 after: %q", a)
		}
		if l := ip("-o", "link", "show", "dev", "isl1"); !strings.Contains(l, "link/ether 02:15:0a:2b:00:09") || !strings.Contains(l, ",UP") {
			t.Errorf("isl1 link after: %s", l)
		}
	}()
	<-done
}
