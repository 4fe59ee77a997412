package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
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

func TestHello(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1, Client: "test"})
	var hello proto.HelloReply
	decode(t, h.final(1)[0], proto.TypeHello, &hello)
	if hello.Protocol != 1 || hello.Agent != info.AgentVersion || len(hello.Caps) != 8 || hello.InitMode != "service" {
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

func TestFileWriteReadBinary(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "blob")
	content := make([]byte, 1<<20)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	h.send(proto.TypeFileWrite, 1, map[string]interface{}{"path": path, "mode": 0o600, "createParents": true})
	for off := 0; off < len(content); off += proto.DataChunk {
		end := off + proto.DataChunk
		h.sendData(1, content[off:end], end == len(content))
	}
	var wok proto.FileWriteOK
	decode(t, h.final(1)[0], proto.TypeOK, &wok)
	if wok.Bytes != int64(len(content)) {
		t.Fatalf("%+v", wok)
	}

	h.send(proto.TypeFileRead, 2, map[string]interface{}{"path": path, "maxBytes": 2 << 20})
	fs := h.final(2)
	var got []byte
	for i, f := range fs[:len(fs)-1] {
		if f.Type != proto.TypeData || f.Stream() != 0 || len(f.Payload) > proto.DataChunk || f.EOF() != (i == len(fs)-2) {
			t.Fatalf("frame %d: %s", i, describe(fs[i:i+1]))
		}
		got = append(got, f.Payload...)
	}
	var rok proto.FileReadOK
	decode(t, fs[len(fs)-1], proto.TypeOK, &rok)
	if !bytes.Equal(got, content) || rok.Size != int64(len(content)) || rok.Mode != 0o600 {
		t.Fatalf("read back %d bytes, %+v", len(got), rok)
	}

	h.send(proto.TypeFileRead, 3, map[string]interface{}{"path": path, "maxBytes": 10})
	fs = h.final(3)
	if len(fs) != 1 {
		t.Fatalf("too large must not send data: %s", describe(fs))
	}
	expectError(t, fs, proto.CodeFileTooLarge)
	h.send(proto.TypeFileRead, 4, map[string]interface{}{"path": dir, "maxBytes": 10})
	expectError(t, h.final(4), proto.CodeIsDirectory)
	h.send(proto.TypeFileRead, 5, map[string]interface{}{"path": path})
	expectError(t, h.final(5), proto.CodeInvalidArgument)
}

func TestFileWriteAbortedByDisconnect(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	h.send(proto.TypeFileWrite, 1, map[string]interface{}{"path": filepath.Join(dir, "f")})
	h.sendData(1, []byte("partial"), false)
	h.disconnect()
	h.srv.Wait()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	h.connect()
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1})
	decode(t, h.final(1)[0], proto.TypeHello, &proto.HelloReply{})
}

func TestUnknownTypeKeepsServing(t *testing.T) {
	h := newHarness(t, nil)
	h.sendFrame(proto.Frame{Type: 99, RequestID: 1, Payload: []byte("whatever")})
	expectError(t, h.final(1), proto.CodeUnknownType)
	h.send(proto.TypeOK, 2, `{}`)
	expectError(t, h.final(2), proto.CodeInvalidArgument)
	h.sendData(77, []byte("stray"), true) // DATA for nothing: dropped silently
	h.send(proto.TypeHello, 3, proto.Hello{Protocol: 1})
	decode(t, h.final(3)[0], proto.TypeHello, &proto.HelloReply{})
	if fs := h.byID[77]; len(fs) != 0 {
		t.Fatalf("reply to stray DATA: %s", describe(fs))
	}
}

func TestGarbageDoesNotCrash(t *testing.T) {
	h := newHarness(t, nil)
	for i, garbage := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\nlots of garbage"),
		func() []byte { // valid magic, oversize length
			b := make([]byte, 16)
			proto.PutHeader(b, proto.Header{Version: 1, Type: proto.TypeData, RequestID: 1, Length: 1 << 30})
			return b
		}(),
		func() []byte { // valid frame then bad version
			b, _ := proto.AppendFrame(nil, proto.Frame{Type: proto.TypeHello, RequestID: 1, Payload: []byte(`{"protocol":1}`)})
			bad := make([]byte, 16)
			proto.PutHeader(bad, proto.Header{Version: 9, Type: 1, RequestID: 2})
			return append(b, bad...)
		}(),
	} {
		h.sendRaw(garbage)
		h.sendRaw([]byte("more bytes after the violation are discarded"))
		if err := h.disconnect(); !errors.Is(err, io.EOF) {
			t.Fatalf("case %d: Serve returned %v", i, err)
		}
		h.connect()
		h.send(proto.TypeHello, 5, proto.Hello{Protocol: 1})
		decode(t, h.final(5)[0], proto.TypeHello, &proto.HelloReply{})
	}
	// A connection that ends inside a frame.
	h.sendRaw([]byte("ISLT\x01"))
	if err := h.disconnect(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Serve returned %v", err)
	}
	h.connect()
}

func TestBusy(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxInFlight = 2 })
	for id := uint32(1); id <= 2; id++ {
		h.send(proto.TypeExec, id, map[string]interface{}{"argv": []string{"sleep", "100"}})
		h.wait(id, "EXEC_STARTED", func(fs []proto.Frame) bool { return len(fs) > 0 })
	}
	h.send(proto.TypeExec, 3, map[string]interface{}{"argv": []string{"true"}})
	expectError(t, h.final(3), proto.CodeBusy)
	h.send(proto.TypeExec, 1, map[string]interface{}{"argv": []string{"true"}})
	// Duplicate id while in flight.
	h.wait(1, "duplicate ERROR", func(fs []proto.Frame) bool { return len(fs) == 2 })
	for id := uint32(1); id <= 2; id++ {
		h.send(proto.TypeSignal, id, proto.Signal{Signal: "KILL"})
	}
	h.wait(1, "EXEC_EXITED", func(fs []proto.Frame) bool { return fs[len(fs)-1].Type == proto.TypeExecExited })
	h.final(2)
	h.send(proto.TypeExec, 4, map[string]interface{}{"argv": []string{"true"}})
	checkExec(t, h.final(4))
}

func TestHealthTimeSyncPoweroff(t *testing.T) {
	var setTo time.Time
	powered := make(chan struct{}, 1)
	h := newHarness(t, func(c *Config) {
		c.SetTime = func(t time.Time) error { setTo = t; return nil }
		c.PowerOff = func() error { powered <- struct{}{}; return nil }
	})
	h.send(proto.TypeHealth, 1, `{}`)
	var health proto.HealthOK
	decode(t, h.final(1)[0], proto.TypeOK, &health)
	if health.Protocol != 1 || health.MemTotalKb <= 0 || health.UptimeMs <= 0 {
		t.Fatalf("%+v", health)
	}
	host := time.Now().Add(-time.Hour)
	h.send(proto.TypeTimeSync, 2, proto.TimeSync{UnixMs: host.UnixMilli()})
	var ts proto.TimeSyncOK
	decode(t, h.final(2)[0], proto.TypeOK, &ts)
	if ts.SkewMs < 3590000 || ts.SkewMs > 3610000 || setTo.UnixMilli() != host.UnixMilli() {
		t.Fatalf("%+v %v", ts, setTo)
	}
	h.send(proto.TypeTimeSync, 3, `{}`)
	expectError(t, h.final(3), proto.CodeInvalidArgument)
	h.send(proto.TypePoweroff, 4, `{}`)
	decode(t, h.final(4)[0], proto.TypeOK, &proto.Empty{})
	select {
	case <-powered:
	case <-time.After(waitTimeout):
		t.Fatal("PowerOff not called")
	}
}

func TestProcessOutlivesConnection(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	h.send(proto.TypeExec, 1, map[string]interface{}{"shell": "sleep 0.3; echo done > " + dir + "/out; echo ignored"})
	h.wait(1, "EXEC_STARTED", func(fs []proto.Frame) bool { return len(fs) > 0 })
	h.disconnect()
	h.connect()
	h.srv.Wait() // the exec finishes; its frames are dropped
	if b, _ := os.ReadFile(dir + "/out"); string(b) != "done\n" {
		t.Fatalf("process did not finish: %q", b)
	}
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1}) // id 1 is free again
	fs := h.final(1)
	if len(fs) != 1 || fs[0].Type != proto.TypeHello {
		t.Fatalf("stale frames reached the new connection: %s", describe(fs))
	}
}

const prSetChildSubreaper = 36

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
