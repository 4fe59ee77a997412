//go:build linux

package netcfg

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func TestStructSizes(t *testing.T) {
	if n := unsafe.Sizeof(rtentry{}); n != 120 && unsafe.Sizeof(uintptr(0)) == 8 {
		t.Fatalf("rtentry is %d bytes, want 120 (struct rtentry on 64-bit)", n)
	}
	if n := unsafe.Sizeof(ifreqAddr{}); n != 40 {
		t.Fatalf("ifreqAddr is %d bytes, want 40", n)
	}
	if n := unsafe.Sizeof(ifreqFlags{}); n != 40 {
		t.Fatalf("ifreqFlags is %d bytes, want 40", n)
	}
}

func TestWriteResolvConf(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.Symlink(filepath.Join(dir, "missing"), p); err != nil {
		t.Fatal(err)
	}
	c, _ := Parse("10.0.2.15/24,dns=10.0.2.3")
	if err := WriteResolvConf(p, c); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != c.ResolvConfText() {
		t.Fatalf("got %q, %v", b, err)
	}
	if fi, _ := os.Lstat(p); fi.Mode()&os.ModeSymlink != 0 {
		t.Fatal("symlink followed, not replaced")
	}
}
