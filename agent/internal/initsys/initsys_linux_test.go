package initsys

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestDevptsAllowsDevices(t *testing.T) {
	for _, m := range pid1Mounts {
		if m.fs == "devpts" {
			if m.flags&syscall.MS_NODEV != 0 {
				t.Fatal("devpts mounted nodev: opening /dev/pts/N fails with EACCES")
			}
			return
		}
	}
	t.Fatal("PID 1 mounts no devpts")
}

func TestIsMountpoint(t *testing.T) {
	if !isMountpoint("/proc") {
		t.Error("/proc is not a mountpoint?")
	}
	if isMountpoint(t.TempDir()) {
		t.Error("temp dir is a mountpoint?")
	}
}

func TestLoadModulesOrder(t *testing.T) {
	dir := t.TempDir()
	if err := LoadModules(t.Logf, dir); err != nil {
		t.Fatalf("no order file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "order"), []byte("missing_module\n"), 0o644)
	if err := LoadModules(t.Logf, dir); err == nil {
		t.Fatal("missing .ko accepted")
	}
}
