package server

// Background processes over the protocol: start, output by offset with
// stream tags, follow (waitMs), stdin, signals, wait, and survival across
// host connections.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"islet/agent/internal/proto"
)

func (h *harness) procStart(id uint32, req map[string]interface{}) proto.ProcStarted {
	h.t.Helper()
	h.send(proto.TypeProcStart, id, req)
	var s proto.ProcStarted
	decode(h.t, h.final(id)[0], proto.TypeOK, &s)
	if s.ID <= 0 || s.PID <= 0 {
		h.t.Fatalf("started %+v", s)
	}
	return s
}

type procOut struct {
	out, err string
	tags     []uint16
	ok       proto.ProcOutputOK
}

func (h *harness) procOutput(id uint32, req proto.ProcOutput) procOut {
	h.t.Helper()
	h.send(proto.TypeProcOutput, id, req)
	fs := h.final(id)
	var r procOut
	for _, f := range fs[:len(fs)-1] {
		if f.Type != proto.TypeData || f.EOF() || len(f.Payload) > proto.DataChunk {
			h.t.Fatalf("unexpected frame in output: %s", describe(fs))
		}
		r.tags = append(r.tags, f.Stream())
		if f.Stream() == proto.StreamStdout {
			r.out += string(f.Payload)
		} else {
			r.err += string(f.Payload)
		}
	}
	decode(h.t, fs[len(fs)-1], proto.TypeOK, &r.ok)
	return r
}

func (h *harness) procWait(id uint32, pid int, ms int64) proto.ProcInfo {
	h.t.Helper()
	h.send(proto.TypeProcWait, id, proto.ProcWait{ProcRef: proto.ProcRef{ID: pid}, TimeoutMs: ms})
	var i proto.ProcInfo
	decode(h.t, h.final(id)[0], proto.TypeOK, &i)
	return i
}

func ref(id int) proto.ProcRef { return proto.ProcRef{ID: id} }

func TestProcOutputByOffset(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"})
	if i := h.procWait(2, s.ID, 5000); i.Running || i.ExitCode == nil || *i.ExitCode != 0 || i.OutputBytes != 14 {
		t.Fatalf("%+v", i)
	}
	all := h.procOutput(3, proto.ProcOutput{ProcRef: ref(s.ID)})
	if all.out != "one\nthree\n" || all.err != "two\n" || all.ok.Start != 0 || all.ok.Next != 14 || all.ok.Dropped != 0 || all.ok.Proc.Running {
		t.Fatalf("%+v", all)
	}
	later := h.procOutput(4, proto.ProcOutput{ProcRef: ref(s.ID), Offset: 4, MaxBytes: 6})
	if later.err != "two\n" || later.out != "th" || later.ok.Start != 4 || later.ok.Next != 10 {
		t.Fatalf("%+v", later)
	}
	h.send(proto.TypeProcOutput, 5, proto.ProcOutput{ProcRef: ref(s.ID), Offset: 15})
	expectError(t, h.final(5), proto.CodeInvalidArgument)
	h.send(proto.TypeProcOutput, 6, proto.ProcOutput{ProcRef: ref(999)})
	expectError(t, h.final(6), proto.CodeNotFound)
}

func TestProcFollowWaitsForOutput(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "sleep 0.3; echo late"})
	t0 := time.Now()
	r := h.procOutput(2, proto.ProcOutput{ProcRef: ref(s.ID), WaitMs: 5000})
	if r.out != "late\n" || time.Since(t0) < 200*time.Millisecond {
		t.Fatalf("%+v after %v", r, time.Since(t0))
	}
	// Nothing new and the process has exited: returns at once, empty.
	h.procWait(3, s.ID, 5000)
	t0 = time.Now()
	if r := h.procOutput(4, proto.ProcOutput{ProcRef: ref(s.ID), Offset: r.ok.Next, WaitMs: 5000}); r.out != "" || r.ok.Proc.Running || time.Since(t0) > 2*time.Second {
		t.Fatalf("%+v", r)
	}
}

func TestProcFollowTimesOut(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "sleep 30"})
	t0 := time.Now()
	r := h.procOutput(2, proto.ProcOutput{ProcRef: ref(s.ID), WaitMs: 200})
	if r.out != "" || !r.ok.Proc.Running || time.Since(t0) < 150*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	h.send(proto.TypeProcSignal, 3, proto.ProcSignal{ProcRef: ref(s.ID), Signal: "TERM"})
	h.final(3)
	if i := h.procWait(4, s.ID, 5000); i.Running || i.Signal == nil || *i.Signal != "TERM" || i.ExitCode != nil {
		t.Fatalf("%+v", i)
	}
}

func TestProcStdin(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"argv": []string{"cat"}, "stdin": true})
	h.send(proto.TypeProcWrite, 2, proto.ProcWrite{ProcRef: ref(s.ID), Data: []byte("ping\n")})
	var w proto.ProcWriteOK
	decode(t, h.final(2)[0], proto.TypeOK, &w)
	if w.Bytes != 5 {
		t.Fatalf("%+v", w)
	}
	if r := h.procOutput(3, proto.ProcOutput{ProcRef: ref(s.ID), WaitMs: 5000}); r.out != "ping\n" || !r.ok.Proc.Running {
		t.Fatalf("%+v", r)
	}
	h.send(proto.TypeProcWrite, 4, proto.ProcWrite{ProcRef: ref(s.ID), Close: true})
	h.final(4)
	if i := h.procWait(5, s.ID, 5000); i.Running || *i.ExitCode != 0 {
		t.Fatalf("%+v", i)
	}
	// No stdin asked for: writes are refused.
	s2 := h.procStart(6, map[string]interface{}{"argv": []string{"true"}})
	h.send(proto.TypeProcWrite, 7, proto.ProcWrite{ProcRef: ref(s2.ID), Data: []byte("x")})
	expectError(t, h.final(7), proto.CodeInvalidArgument)
	h.procWait(8, s2.ID, 5000)
}

func TestProcSurvivesReconnect(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "echo before; read x; echo after $x"})
	_ = s
	h.procStart(2, map[string]interface{}{"shell": "echo x", "stdin": true}) // a second process, listed too
	h.disconnect()
	h.connect()
	h.send(proto.TypeProcList, 3, proto.ProcList{})
	var l proto.ProcListOK
	decode(t, h.final(3)[0], proto.TypeOK, &l)
	if len(l.Procs) != 2 || l.Procs[0].ID != s.ID || !strings.Contains(l.Procs[0].Command, "read x") {
		b, _ := json.Marshal(l)
		t.Fatalf("%s", b)
	}
	// The first has stdin /dev/null: read fails at once and it exits.
	if i := h.procWait(4, s.ID, 5000); i.Running {
		t.Fatalf("%+v", i)
	}
	if r := h.procOutput(5, proto.ProcOutput{ProcRef: ref(s.ID)}); r.out != "before\nafter\n" {
		t.Fatalf("%+v", r)
	}
	h.procWait(6, l.Procs[1].ID, 5000)
}

func TestProcRingDropsOldOutput(t *testing.T) {
	h := newHarness(t, nil)
	// 2 MB through a 64 KiB ring.
	s := h.procStart(1, map[string]interface{}{"shell": "head -c 2000000 /dev/zero", "ringBytes": 64 << 10})
	i := h.procWait(2, s.ID, 10000)
	if i.Running || i.OutputBytes != 2000000 || i.DroppedBytes < 2000000-(64<<10) {
		t.Fatalf("%+v", i)
	}
	r := h.procOutput(3, proto.ProcOutput{ProcRef: ref(s.ID), MaxBytes: 1 << 20})
	if r.ok.Dropped != i.DroppedBytes || r.ok.Start != i.DroppedBytes || r.ok.Next != 2000000 || int64(len(r.out)) != r.ok.Next-r.ok.Start {
		t.Fatalf("%+v (%d bytes)", r.ok, len(r.out))
	}
}

func TestProcTableFull(t *testing.T) {
	h := newHarness(t, nil)
	var ids []int
	for i := 0; i < 64; i++ {
		ids = append(ids, h.procStart(uint32(i+1), map[string]interface{}{"argv": []string{"sleep", "30"}}).ID)
	}
	h.send(proto.TypeProcStart, 100, map[string]interface{}{"argv": []string{"true"}})
	expectError(t, h.final(100), proto.CodeBusy)
	// An exited process is forgotten to make room.
	h.send(proto.TypeProcSignal, 101, proto.ProcSignal{ProcRef: ref(ids[0]), Signal: "KILL"})
	h.final(101)
	h.procWait(102, ids[0], 5000)
	h.procStart(103, map[string]interface{}{"argv": []string{"true"}})
	h.send(proto.TypeProcOutput, 104, proto.ProcOutput{ProcRef: ref(ids[0])})
	expectError(t, h.final(104), proto.CodeNotFound)
	for i, id := range ids[1:] {
		h.send(proto.TypeProcSignal, uint32(200+i), proto.ProcSignal{ProcRef: ref(id), Signal: "KILL"})
		h.final(uint32(200 + i))
		h.procWait(uint32(300+i), id, 5000)
	}
}

func TestProcBadRequests(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeProcStart, 1, map[string]interface{}{"argv": []string{}})
	expectError(t, h.final(1), proto.CodeInvalidArgument)
	h.send(proto.TypeProcStart, 2, map[string]interface{}{"argv": []string{"/nonexistent"}})
	expectError(t, h.final(2), proto.CodeNotFound)
	h.send(proto.TypeProcSignal, 3, proto.ProcSignal{ProcRef: ref(1), Signal: "STOP"})
	expectError(t, h.final(3), proto.CodeInvalidArgument)
	h.send(proto.TypeProcWait, 4, proto.ProcWait{ProcRef: ref(1), TimeoutMs: proto.MaxWaitMs + 1})
	expectError(t, h.final(4), proto.CodeInvalidArgument)
	h.send(proto.TypeProcWrite, 5, proto.ProcWrite{ProcRef: ref(0)})
	expectError(t, h.final(5), proto.CodeInvalidArgument)
}

func TestProcPty(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "stty size; read x; echo got $x; tty", "pty": map[string]int{"cols": 100, "rows": 30}})
	r := h.procOutput(2, proto.ProcOutput{ProcRef: ref(s.ID), WaitMs: 5000})
	if !strings.Contains(r.out, "30 100") || r.err != "" {
		t.Fatalf("%+v", r)
	}
	h.send(proto.TypeProcWrite, 3, proto.ProcWrite{ProcRef: ref(s.ID), Data: []byte("hi\n")})
	h.final(3)
	i := h.procWait(4, s.ID, 5000)
	all := h.procOutput(5, proto.ProcOutput{ProcRef: ref(s.ID)})
	// The terminal echoes the input, and the process's stdout is a tty.
	if i.Running || !i.Pty || !strings.Contains(all.out, "hi\r\n") || !strings.Contains(all.out, "got hi\r\n") || !strings.Contains(all.out, "/dev/pts/") {
		t.Fatalf("%+v %q", i, all.out)
	}
}

func TestProcPtyResizeAndInterrupt(t *testing.T) {
	h := newHarness(t, nil)
	s := h.procStart(1, map[string]interface{}{"shell": "trap 'stty size' WINCH; echo ready; while :; do sleep 0.05; done",
		"pty": map[string]int{"cols": 80, "rows": 24}})
	r := h.procOutput(2, proto.ProcOutput{ProcRef: ref(s.ID), WaitMs: 5000})
	if !strings.Contains(r.out, "ready") {
		t.Fatalf("%+v", r)
	}
	h.send(proto.TypeProcResize, 3, proto.ProcResize{ProcRef: ref(s.ID), PtySize: proto.PtySize{Cols: 132, Rows: 43}})
	h.final(3)
	got := ""
	next := r.ok.Next
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(got, "43 132") && time.Now().Before(deadline); {
		r := h.procOutput(4, proto.ProcOutput{ProcRef: ref(s.ID), Offset: next, WaitMs: 1000})
		got += r.out
		next = r.ok.Next
	}
	if !strings.Contains(got, "43 132") {
		t.Fatalf("no new size after resize: %q", got)
	}
	// ^C on the terminal interrupts its foreground process group.
	h.send(proto.TypeProcWrite, 5, proto.ProcWrite{ProcRef: ref(s.ID), Data: []byte{3}})
	h.final(5)
	if i := h.procWait(6, s.ID, 5000); i.Running || i.Signal == nil || *i.Signal != "INT" {
		t.Fatalf("%+v", i)
	}
	// Not a terminal: resize is refused.
	s2 := h.procStart(7, map[string]interface{}{"argv": []string{"true"}})
	h.send(proto.TypeProcResize, 8, proto.ProcResize{ProcRef: ref(s2.ID), PtySize: proto.PtySize{Cols: 10, Rows: 10}})
	expectError(t, h.final(8), proto.CodeInvalidArgument)
	h.procWait(9, s2.ID, 5000)
}
