package server

// Exec over the protocol: output, exit codes, env, stdin, timeouts that kill
// the process group, output caps, concurrency and signals.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"islet/agent/internal/info"
	"islet/agent/internal/proto"
)

func TestHello(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1, Client: "test"})
	var hello proto.HelloReply
	decode(t, h.final(1)[0], proto.TypeHello, &hello)
	if hello.Protocol != 1 || hello.Agent != info.AgentVersion || len(hello.Caps) != 14 || hello.InitMode != "service" {
		t.Fatalf("%+v", hello)
	}
	h.send(proto.TypeHello, 2, proto.Hello{Protocol: 2})
	expectError(t, h.final(2), proto.CodeProtocolMismatch)
	h.send(proto.TypeHello, 3, `{"protocol":`)
	expectError(t, h.final(3), proto.CodeInvalidArgument)
}

func TestExecEcho(t *testing.T) {
	h := newHarness(t, nil)
	r := h.exec(1, map[string]interface{}{"argv": []string{"echo", "hi"}})
	if string(r.stdout) != "hi\n" || len(r.stderr) != 0 || exitCode(r) != 0 || r.exited.Signal != nil || r.exited.TimedOut || r.exited.Truncated {
		t.Fatalf("%q %q %+v", r.stdout, r.stderr, r.exited)
	}
	if r.pid <= 0 {
		t.Fatalf("pid %d", r.pid)
	}
}

func TestExecStderrAndExitCode(t *testing.T) {
	h := newHarness(t, nil)
	r := h.exec(1, map[string]interface{}{"shell": "echo out; echo oops >&2; exit 3"})
	if string(r.stdout) != "out\n" || string(r.stderr) != "oops\n" || exitCode(r) != 3 {
		t.Fatalf("%q %q %+v", r.stdout, r.stderr, r.exited)
	}
}

func TestExecEnvCwd(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	r := h.exec(1, map[string]interface{}{"shell": `echo "$FOO $HOME $LANG"; pwd`, "env": map[string]string{"FOO": "bar"}, "cwd": dir})
	if want := "bar /root C.UTF-8\n" + dir + "\n"; string(r.stdout) != want {
		t.Fatalf("got %q want %q", r.stdout, want)
	}
	h.send(proto.TypeExec, 2, map[string]interface{}{"argv": []string{"true"}, "cwd": filepath.Join(dir, "missing")})
	expectError(t, h.final(2), proto.CodeNotFound)
}

func TestExecStdin(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeExec, 1, map[string]interface{}{"argv": []string{"cat"}, "stdin": true})
	h.sendData(1, []byte("abc"), false)
	h.sendData(1, nil, false)
	h.sendData(1, []byte("def"), true)
	r := checkExec(t, h.final(1))
	if string(r.stdout) != "abcdef" || exitCode(r) != 0 {
		t.Fatalf("%q %+v", r.stdout, r.exited)
	}
	// Without stdin the process reads /dev/null.
	r = h.exec(2, map[string]interface{}{"argv": []string{"cat"}})
	if len(r.stdout) != 0 || exitCode(r) != 0 {
		t.Fatalf("%q %+v", r.stdout, r.exited)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	h := newHarness(t, nil)
	start := time.Now()
	r := h.exec(1, map[string]interface{}{"shell": "sleep 100 & echo $!; sleep 100", "timeoutMs": 300})
	if !r.exited.TimedOut || r.exited.ExitCode != nil || r.exited.Signal == nil || *r.exited.Signal != "KILL" {
		t.Fatalf("%+v", r.exited)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	bg, err := strconv.Atoi(strings.TrimSpace(string(r.stdout)))
	if err != nil {
		t.Fatalf("background pid %q", r.stdout)
	}
	waitGone(t, bg)
	waitGone(t, r.pid)
}

// waitGone waits until pid no longer exists or is a zombie (killed, not yet
// reaped by whoever its parent is now).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecOutputCap(t *testing.T) {
	h := newHarness(t, nil)
	r := h.exec(1, map[string]interface{}{"shell": "head -c 300000 /dev/zero; echo done >&2", "maxOutputBytes": 1000})
	if len(r.stdout) != 1000 || !r.exited.Truncated || string(r.stderr) != "done\n" || exitCode(r) != 0 {
		t.Fatalf("len %d %q %+v", len(r.stdout), r.stderr, r.exited)
	}
}

func TestExecConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	const n = 5
	for i := 1; i <= n; i++ {
		h.send(proto.TypeExec, uint32(i), map[string]interface{}{
			"shell": "for i in 1 2 3; do echo $ID-$i; echo e$ID-$i >&2; sleep 0.05; done",
			"env":   map[string]string{"ID": strconv.Itoa(i)},
		})
	}
	for i := 1; i <= n; i++ {
		r := checkExec(t, h.final(uint32(i)))
		want := fmt.Sprintf("%d-1\n%d-2\n%d-3\n", i, i, i)
		if string(r.stdout) != want {
			t.Fatalf("request %d: stdout %q", i, r.stdout)
		}
		if want := fmt.Sprintf("e%d-1\ne%d-2\ne%d-3\n", i, i, i); string(r.stderr) != want {
			t.Fatalf("request %d: stderr %q", i, r.stderr)
		}
	}
}

func TestExecSignalKill(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeExec, 1, map[string]interface{}{"argv": []string{"sleep", "100"}})
	h.wait(1, "EXEC_STARTED", func(fs []proto.Frame) bool { return len(fs) > 0 })
	h.send(proto.TypeSignal, 1, proto.Signal{Signal: "BOGUS"}) // ignored, no reply
	h.send(proto.TypeSignal, 1, proto.Signal{Signal: "KILL"})
	r := checkExec(t, h.final(1))
	if r.exited.ExitCode != nil || r.exited.Signal == nil || *r.exited.Signal != "KILL" || r.exited.TimedOut {
		t.Fatalf("%+v", r.exited)
	}
	// A SIGNAL for a finished request is ignored.
	h.send(proto.TypeSignal, 1, proto.Signal{Signal: "KILL"})
	h.send(proto.TypeHello, 2, proto.Hello{Protocol: 1})
	h.final(2)
	if fs := h.final(1); len(fs) != len(h.final(1)) || !isFinal(fs[len(fs)-1]) {
		t.Fatal("extra frames")
	}
}

func TestExecErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeExec, 1, map[string]interface{}{"argv": []string{"no-such-command-xyz"}})
	fs := h.final(1)
	if len(fs) != 1 {
		t.Fatalf("want only ERROR, got %s", describe(fs))
	}
	expectError(t, fs, proto.CodeNotFound)
	h.send(proto.TypeExec, 2, `{"argv": ["ls"`)
	expectError(t, h.final(2), proto.CodeInvalidArgument)
	h.send(proto.TypeExec, 3, map[string]interface{}{"argv": []string{"ls"}, "shell": "ls"})
	expectError(t, h.final(3), proto.CodeInvalidArgument)
	h.send(proto.TypeExec, 4, `null`)
	expectError(t, h.final(4), proto.CodeInvalidArgument)
}
