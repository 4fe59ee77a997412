package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// banned maps an import path to the reason it must not be in the agent.
func banned() map[string]string {
	return map[string]string{
		"C":            "cgo: the agent must build static with CGO_ENABLED=0",
		"runtime/cgo":  "cgo: the agent must build static with CGO_ENABLED=0",
		"net/http":     "size (~+4 MB) and attack surface; the agent speaks only the frame protocol",
		"net":          "the agent has no network surface; net also pulls in the cgo resolver",
		"os/user":      "uses cgo (getpwnam) unless built with netgo/osusergo; not needed",
		"plugin":       "dynamic loading needs cgo",
		"os/exec":      "its Wait races the PID 1 reaper; use internal/exec (os.StartProcess + Reaper)",
		"encoding/gob": "size; JSON is the protocol",
	}
}

// TestDeps is a negative dependency test: the agent imports only the
// standard library (and itself), and none of the banned packages.
func TestDeps(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go binary")
		}
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", "./...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	bad := banned()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("bad go list line %q", line)
		}
		pkg, std := f[0], f[1] == "true"
		n++
		if reason, ok := bad[pkg]; ok {
			t.Errorf("agent depends on %s: %s", pkg, reason)
		}
		if !std && pkg != "islet/agent" && !strings.HasPrefix(pkg, "islet/agent/") {
			t.Errorf("agent depends on non-standard package %s: standard library only (no module downloads, small static binary)", pkg)
		}
	}
	if n < 10 {
		t.Fatalf("go list returned only %d packages", n)
	}
}
