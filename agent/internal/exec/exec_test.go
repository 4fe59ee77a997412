package exec

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/proto"
)

type output struct {
	mu       sync.Mutex
	out, err bytes.Buffer
	eofs     int
}

func (o *output) emit(stream uint16, b []byte, eof bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(b) > proto.DataChunk {
		panic("chunk too big")
	}
	if stream == proto.StreamStdout {
		o.out.Write(b)
	} else {
		o.err.Write(b)
	}
	if eof {
		o.eofs++
	}
}

func run(t *testing.T, r *Reaper, spec Spec) (Result, *output) {
	t.Helper()
	if spec.Env == nil {
		spec.Env = MergeEnv(nil)
	}
	if spec.MaxOutput == 0 {
		spec.MaxOutput = 1 << 20
	}
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	p, err := Start(r, clock.Real{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	o := &output{}
	res := p.Wait(o.emit)
	if o.eofs != 2 {
		t.Fatalf("got %d EOFs", o.eofs)
	}
	return res, o
}

func TestExec(t *testing.T) {
	r := NewReaper(t.Logf)
	defer r.Close()

	res, o := run(t, r, Spec{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if o.out.String() != "out\n" || o.err.String() != "err\n" || res.ExitCode == nil || *res.ExitCode != 3 {
		t.Fatalf("got %q %q %+v", o.out.String(), o.err.String(), res)
	}

	res, _ = run(t, r, Spec{Argv: []string{"sh", "-c", "kill -TERM $$"}})
	if res.ExitCode != nil || res.Signal == nil || *res.Signal != "TERM" {
		t.Fatalf("signal: %+v", res)
	}

	res, o = run(t, r, Spec{Argv: []string{"head", "-c", "300000", "/dev/zero"}, MaxOutput: 1000})
	if !res.Truncated || o.out.Len() != 1000 || *res.ExitCode != 0 {
		t.Fatalf("cap: truncated=%v len=%d", res.Truncated, o.out.Len())
	}

	_, err := Start(r, clock.Real{}, Spec{Argv: []string{"no-such-command-xyz"}, Env: MergeEnv(nil)})
	if proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("not found: %v", err)
	}
	_, err = Start(r, clock.Real{}, Spec{Argv: []string{"true"}, Env: MergeEnv(nil), Dir: "/no/such/dir"})
	if proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("bad cwd: %v", err)
	}
	_, err = Start(r, clock.Real{}, Spec{Argv: []string{"/etc/passwd"}, Env: MergeEnv(nil)})
	if proto.CodeOf(err) != proto.CodePermissionDenied {
		t.Fatalf("not executable: %v", err)
	}
}

func TestEnvMerge(t *testing.T) {
	env := MergeEnv(map[string]string{"HOME": "/x", "A": "b"})
	got := strings.Join(env, " ")
	want := "A=b HOME=/x LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=xterm"
	if got != want {
		t.Fatalf("got %s", got)
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	r := NewReaper(t.Logf)
	defer r.Close()
	start := time.Now()
	p, err := Start(r, clock.Real{}, Spec{Argv: []string{"sh", "-c", "sleep 100 & sleep 100"}, Env: MergeEnv(nil),
		Dir: t.TempDir(), Timeout: 200 * time.Millisecond, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Wait((&output{}).emit)
	if !res.TimedOut || res.Signal == nil || *res.Signal != "KILL" {
		t.Fatalf("got %+v", res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	// The whole group is gone, background sleep included (once the reaper
	// has reaped the orphaned zombie: kill(2) still finds zombies).
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := syscall.Kill(-p.PID(), 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group still exists: %v", err)
		}
	}
}

func TestBackgroundHolderDoesNotHang(t *testing.T) {
	r := NewReaper(t.Logf)
	defer r.Close()
	start := time.Now()
	p, err := Start(r, clock.Real{}, Spec{Argv: []string{"sh", "-c", "sleep 5 & echo hi"}, Env: MergeEnv(nil),
		Dir: t.TempDir(), MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	o := &output{}
	res := p.Wait(o.emit)
	defer syscall.Kill(-p.PID(), syscall.SIGKILL)
	if o.out.String() != "hi\n" || *res.ExitCode != 0 {
		t.Fatalf("got %q %+v", o.out.String(), res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v for a background holder", d)
	}
}

func TestStdin(t *testing.T) {
	r := NewReaper(t.Logf)
	defer r.Close()
	p, err := Start(r, clock.Real{}, Spec{Argv: []string{"cat"}, Env: MergeEnv(nil), Dir: t.TempDir(), Stdin: true, MaxOutput: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		p.WriteStdin([]byte("hello "))
		p.WriteStdin([]byte("world"))
		p.CloseStdin()
	}()
	o := &output{}
	p.Wait(o.emit)
	if o.out.String() != "hello world" {
		t.Fatalf("got %q", o.out.String())
	}
}

func TestSignalName(t *testing.T) {
	if SignalName(syscall.SIGKILL) != "KILL" || SignalName(syscall.Signal(64)) != "64" {
		t.Fatal("names")
	}
	for _, n := range []string{"KILL", "TERM", "INT", "HUP", "QUIT", "USR1", "USR2"} {
		s, err := ParseSignal(n)
		if err != nil || SignalName(s) != n {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if _, err := ParseSignal("STOP"); err == nil {
		t.Fatal("STOP accepted")
	}
}

func TestMain(m *testing.M) {
	// Orphans re-parent to this process, as they would to PID 1.
	if err := setSubreaper(); err != nil {
		os.Stderr.WriteString("subreaper: " + err.Error() + "\n")
	}
	os.Exit(m.Run())
}
