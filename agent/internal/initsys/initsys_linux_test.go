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

func TestCopyExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "init")
	os.WriteFile(src, []byte("agent-bytes"), 0o644)
	dst := filepath.Join(dir, "root", "run", "islet", "islet-agent")
	if err := copyExecutable(src, dst); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("copy: %v %v", st, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "agent-bytes" {
		t.Fatalf("content %q", b)
	}
}
