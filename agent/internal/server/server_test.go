package server

// The harness every server test uses: a Server over net.Pipe with the test
// playing the host, frame helpers, the goroutine leak check and TestMain.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/exec"
	"islet/agent/internal/info"
	"islet/agent/internal/proto"
)

const waitTimeout = 10 * time.Second

// harness drives a Server over net.Pipe, playing the host.
type harness struct {
	t        *testing.T
	srv      *Server
	reaper   *exec.Reaper
	conn     net.Conn
	serveErr chan error
	readDone chan struct{}

	mu      sync.Mutex
	byID    map[uint32][]proto.Frame
	updated chan struct{}
}

// goroutineBaseline and checkLeaks implement the leak check: every test
// starts from and must return to the goroutine count it began with.
func goroutineBaseline() int { return runtime.NumGoroutine() }

func checkLeaks(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConfig(t *testing.T, r *exec.Reaper) Config {
	return Config{
		Logf:    t.Logf,
		Clock:   clock.Real{},
		Limits:  proto.DefaultLimits(),
		Reaper:  r,
		Hello:   func() proto.HelloReply { return info.Hello(info.InitService, os.Getpid(), 5) },
		SetTime: func(time.Time) error { return nil },
	}
}

// newHarness starts a server; the whole test (including the leak check) is
// cleaned up by t.Cleanup.
func newHarness(t *testing.T, mod func(*Config)) *harness {
	base := goroutineBaseline()
	r := exec.NewReaper(t.Logf)
	cfg := testConfig(t, r)
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{t: t, srv: New(cfg), reaper: r}
	h.connect()
	t.Cleanup(func() {
		h.disconnect()
		h.srv.Wait()
		r.Close()
		checkLeaks(t, base)
	})
	return h
}

// connect starts a new host connection (a new Serve session).
func (h *harness) connect() {
	host, agent := net.Pipe()
	h.conn = host
	h.serveErr = make(chan error, 1)
	h.readDone = make(chan struct{})
	h.byID = make(map[uint32][]proto.Frame)
	h.updated = make(chan struct{})
	go func() { h.serveErr <- h.srv.Serve(agent) }()
	go func() {
		defer close(h.readDone)
		rd := proto.NewReader(host)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.byID[f.RequestID] = append(h.byID[f.RequestID], f)
			close(h.updated)
			h.updated = make(chan struct{})
			h.mu.Unlock()
		}
	}()
}

// disconnect closes the host side and waits for Serve to return.
func (h *harness) disconnect() error {
	if h.conn == nil {
		return nil
	}
	h.conn.Close()
	var err error
	select {
	case err = <-h.serveErr:
	case <-time.After(waitTimeout):
		h.t.Fatal("Serve did not return after disconnect")
	}
	<-h.readDone
	h.conn = nil
	return err
}

func (h *harness) sendRaw(b []byte) {
	h.t.Helper()
	if _, err := h.conn.Write(b); err != nil {
		h.t.Fatalf("write: %v", err)
	}
}

func (h *harness) sendFrame(f proto.Frame) {
	h.t.Helper()
	b, err := proto.AppendFrame(nil, f)
	if err != nil {
		h.t.Fatal(err)
	}
	h.sendRaw(b)
}

func (h *harness) send(t proto.Type, id uint32, v interface{}) {
	h.t.Helper()
	var p []byte
	switch v := v.(type) {
	case string:
		p = []byte(v)
	default:
		var err error
		if p, err = json.Marshal(v); err != nil {
			h.t.Fatal(err)
		}
	}
	h.sendFrame(proto.Frame{Type: t, RequestID: id, Payload: p})
}

func (h *harness) sendData(id uint32, b []byte, eof bool) {
	h.t.Helper()
	var flags uint16
	if eof {
		flags = proto.FlagEOF
	}
	h.sendFrame(proto.Frame{Type: proto.TypeData, Flags: flags, RequestID: id, Payload: b})
}

func isFinal(f proto.Frame) bool {
	switch f.Type {
	case proto.TypeHello, proto.TypeError, proto.TypeOK, proto.TypeExecExited:
		return true
	}
	return false
}

// wait returns id's frames once pred holds for them.
func (h *harness) wait(id uint32, what string, pred func([]proto.Frame) bool) []proto.Frame {
	h.t.Helper()
	timeout := time.After(waitTimeout)
	for {
		h.mu.Lock()
		fs := append([]proto.Frame(nil), h.byID[id]...)
		upd := h.updated
		h.mu.Unlock()
		if pred(fs) {
			return fs
		}
		select {
		case <-upd:
		case <-timeout:
			h.t.Fatalf("request %d: timed out waiting for %s; have %s", id, what, describe(fs))
		}
	}
}

// final waits for id's final frame and returns all its frames.
func (h *harness) final(id uint32) []proto.Frame {
	h.t.Helper()
	return h.wait(id, "final frame", func(fs []proto.Frame) bool { return len(fs) > 0 && isFinal(fs[len(fs)-1]) })
}

func describe(fs []proto.Frame) string {
	var parts []string
	for _, f := range fs {
		if f.Type == proto.TypeData {
			parts = append(parts, fmt.Sprintf("DATA(%#x,%d)", f.Flags, len(f.Payload)))
		} else {
			parts = append(parts, fmt.Sprintf("%v%s", f.Type, f.Payload))
		}
	}
	return strings.Join(parts, " ")
}

func decode(t *testing.T, f proto.Frame, want proto.Type, v interface{}) {
	t.Helper()
	if f.Type != want {
		t.Fatalf("got %v %s, want %v", f.Type, f.Payload, want)
	}
	if err := json.Unmarshal(f.Payload, v); err != nil {
		t.Fatalf("%v payload %s: %v", f.Type, f.Payload, err)
	}
}

func expectError(t *testing.T, fs []proto.Frame, code proto.Code) {
	t.Helper()
	var e proto.ErrorReply
	decode(t, fs[len(fs)-1], proto.TypeError, &e)
	if e.Code != code {
		t.Fatalf("error %+v, want %s", e, code)
	}
}

type execResult struct {
	pid            int
	stdout, stderr []byte
	exited         proto.ExecExited
}

// checkExec verifies the EXEC reply sequence and returns its parts.
func checkExec(t *testing.T, fs []proto.Frame) execResult {
	t.Helper()
	var r execResult
	var started proto.ExecStarted
	decode(t, fs[0], proto.TypeExecStarted, &started)
	r.pid = started.PID
	eof := map[uint16]bool{}
	for _, f := range fs[1 : len(fs)-1] {
		if f.Type != proto.TypeData {
			t.Fatalf("unexpected %v in exec stream: %s", f.Type, describe(fs))
		}
		if len(f.Payload) > proto.DataChunk {
			t.Fatalf("DATA of %d bytes", len(f.Payload))
		}
		s := f.Stream()
		if eof[s] {
			t.Fatalf("DATA after EOF on stream %d", s)
		}
		eof[s] = f.EOF()
		switch s {
		case proto.StreamStdout:
			r.stdout = append(r.stdout, f.Payload...)
		case proto.StreamStderr:
			r.stderr = append(r.stderr, f.Payload...)
		default:
			t.Fatalf("stream %d", s)
		}
	}
	if !eof[1] || !eof[2] {
		t.Fatalf("missing EOF: %s", describe(fs))
	}
	decode(t, fs[len(fs)-1], proto.TypeExecExited, &r.exited)
	return r
}

func (h *harness) exec(id uint32, req map[string]interface{}) execResult {
	h.t.Helper()
	h.send(proto.TypeExec, id, req)
	return checkExec(h.t, h.final(id))
}

func exitCode(r execResult) int {
	if r.exited.ExitCode == nil {
		return -1000
	}
	return *r.exited.ExitCode
}

func TestMain(m *testing.M) {
	// Orphans re-parent to this process, as they would to the PID 1 agent.
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	// os/signal starts its delivery goroutine on first use and keeps it;
	// start it now so the leak checks' baselines include it.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGCHLD)
	signal.Stop(c)
	os.Exit(m.Run())
}
