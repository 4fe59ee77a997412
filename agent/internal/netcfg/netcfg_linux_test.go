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

func TestWriteResolvConfLeavesAnEqualFileAlone(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	c, _ := Parse("10.0.2.15/24,dns=10.0.2.3")
	if err := os.WriteFile(p, []byte(c.ResolvConfText()), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := WriteResolvConf(p, c); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) {
		t.Fatal("an equal file was replaced")
	}
	// A symlink to an equal file is still replaced by a file.
	q := filepath.Join(dir, "link")
	if err := os.Symlink(p, q); err != nil {
		t.Fatal(err)
	}
	if err := WriteResolvConf(q, c); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(q); fi.Mode()&os.ModeSymlink != 0 {
		t.Fatal("symlink to an equal file kept")
	}
}
