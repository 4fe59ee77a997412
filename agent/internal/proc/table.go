package proc

import (
	"strings"
	"sync"
	"syscall"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/exec"
	"islet/agent/internal/logger"
	"islet/agent/internal/proto"
)

// Table limits: how many processes it holds (running or exited, whose
// output can still be read) and how many ring bytes all of them may hold.
const (
	MaxProcs     = 64
	MaxRingTotal = 64 << 20
	// StdinWriteTimeout bounds one PROC_WRITE to a process that does not read.
	StdinWriteTimeout = 5 * time.Second
	commandChars      = 256
)

// Proc is one background process.
type Proc struct {
	id      int
	command string
	stdin   bool
	pty     bool
	started time.Time
	p       *exec.Process
	done    chan struct{} // closed once exited and drained

	mu      sync.Mutex
	ring    *ring
	changed chan struct{} // closed and replaced on every write and at the exit
	res     *exec.Result
}

// Table is the agent's process table; safe for concurrent use.
type Table struct {
	reaper *exec.Reaper
	clk    clock.Clock
	logf   logger.Logf

	mu    sync.Mutex
	procs map[int]*Proc
	order []int // start order, for eviction and listing
	next  int
	rings int64 // ring bytes of the processes held
}

// NewTable returns an empty table.
func NewTable(r *exec.Reaper, clk clock.Clock, logf logger.Logf) *Table {
	return &Table{reaper: r, clk: clk, logf: logf, procs: make(map[int]*Proc), next: 1}
}

// Start starts a background process. When the table is full it forgets the
// oldest exited process; if none has exited it fails with BUSY.
func (t *Table) Start(req *proto.ProcStart, l proto.Limits) (*Proc, error) {
	ringBytes := req.Ring()
	spec := exec.SpecFromRequest(req.AsExec(), l)
	spec.MaxOutput = 1<<63 - 1 // the ring bounds what is kept
	if req.Pty != nil {
		spec.PTY = &exec.Winsize{Cols: uint16(req.Pty.Cols), Rows: uint16(req.Pty.Rows)}
		spec.Stdin = true // the terminal's input
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.procs) >= MaxProcs || t.rings+ringBytes > MaxRingTotal {
		if !t.evictLocked() {
			return nil, proto.Errorf(proto.CodeBusy, "process table full: %d processes, %d ring bytes held (limits %d, %d); kill or wait for some",
				len(t.procs), t.rings, MaxProcs, MaxRingTotal)
		}
	}
	p, err := exec.Start(t.reaper, t.clk, spec)
	if err != nil {
		return nil, err
	}
	cmd := strings.Join(spec.Argv, " ")
	if req.Shell != nil {
		cmd = *req.Shell
	}
	if len(cmd) > commandChars {
		cmd = cmd[:commandChars]
	}
	pr := &Proc{id: t.next, command: cmd, stdin: spec.Stdin, pty: spec.PTY != nil, started: t.clk.Now(), p: p, done: make(chan struct{}),
		ring: newRing(ringBytes), changed: make(chan struct{})}
	t.next++
	t.procs[pr.id] = pr
	t.order = append(t.order, pr.id)
	t.rings += ringBytes
	go pr.run()
	return pr, nil
}

// evictLocked forgets the oldest exited process.
func (t *Table) evictLocked() bool {
	for i, id := range t.order {
		pr := t.procs[id]
		select {
		case <-pr.done:
		default:
			continue
		}
		delete(t.procs, id)
		t.order = append(t.order[:i:i], t.order[i+1:]...)
		t.rings -= pr.ring.cap
		return true
	}
	return false
}

// Get returns a process or a NOT_FOUND error.
func (t *Table) Get(id int) (*Proc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pr := t.procs[id]; pr != nil {
		return pr, nil
	}
	return nil, proto.Errorf(proto.CodeNotFound, "no process %d (it never existed, or exited and was forgotten to make room)", id)
}

// List describes every process held, oldest first.
func (t *Table) List() []proto.ProcInfo {
	t.mu.Lock()
	ps := make([]*Proc, 0, len(t.order))
	for _, id := range t.order {
		ps = append(ps, t.procs[id])
	}
	t.mu.Unlock()
	out := make([]proto.ProcInfo, 0, len(ps))
	for _, pr := range ps {
		out = append(out, pr.Info(t.clk))
	}
	return out
}

func (pr *Proc) run() {
	res := pr.p.Wait(func(stream uint16, b []byte, eof bool) {
		if len(b) == 0 {
			return
		}
		pr.mu.Lock()
		pr.ring.write(stream, b) // copies: b is the pump's buffer
		pr.notifyLocked()
		pr.mu.Unlock()
	})
	pr.mu.Lock()
	pr.res = &res
	pr.notifyLocked()
	pr.mu.Unlock()
	close(pr.done)
}

func (pr *Proc) notifyLocked() {
	close(pr.changed)
	pr.changed = make(chan struct{})
}

// ID is the table's id for the process.
func (pr *Proc) ID() int { return pr.id }

// PID is the guest pid (and process group).
func (pr *Proc) PID() int { return pr.p.PID() }

// Done is closed once the process has exited and its output is all in.
func (pr *Proc) Done() <-chan struct{} { return pr.done }

// Info describes the process.
func (pr *Proc) Info(clk clock.Clock) proto.ProcInfo {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.infoLocked(clk)
}

func (pr *Proc) infoLocked(clk clock.Clock) proto.ProcInfo {
	i := proto.ProcInfo{ID: pr.id, PID: pr.p.PID(), Command: pr.command, Running: pr.res == nil, Stdin: pr.stdin, Pty: pr.pty,
		StartedUnixMs: pr.started.UnixMilli(), OutputBytes: pr.ring.end, DroppedBytes: pr.ring.base()}
	if pr.res != nil {
		i.ExitCode, i.Signal, i.TimedOut, i.DurationMs = pr.res.ExitCode, pr.res.Signal, pr.res.TimedOut, pr.res.Duration.Milliseconds()
	} else {
		i.DurationMs = clk.Now().Sub(pr.started).Milliseconds()
	}
	return i
}

// Read returns output from offset off (at most max bytes) once there is
// some, the process has exited, wait has passed, or cancel is closed.
// An offset past the end of the output is INVALID_ARGUMENT.
func (pr *Proc) Read(clk clock.Clock, off, max int64, wait time.Duration, cancel <-chan struct{}) ([]Part, proto.ProcOutputOK, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		timeout = tm.C
	}
	for {
		pr.mu.Lock()
		if off > pr.ring.end {
			end := pr.ring.end
			pr.mu.Unlock()
			return nil, proto.ProcOutputOK{}, proto.Errorf(proto.CodeInvalidArgument, "offset %d is past the end of the output (%d bytes)", off, end)
		}
		start, parts, next := pr.ring.read(off, max)
		ok := proto.ProcOutputOK{Start: start, Next: next, Dropped: start - off, Proc: pr.infoLocked(clk)}
		changed := pr.changed
		exited := pr.res != nil
		pr.mu.Unlock()
		if len(parts) > 0 || exited || timeout == nil {
			return parts, ok, nil
		}
		select {
		case <-changed:
		case <-timeout:
			timeout = nil // one more read, then return whatever it finds
		case <-cancel:
			return parts, ok, nil
		}
	}
}

// Wait waits up to d (0: do not wait) for the exit, or until cancel closes.
func (pr *Proc) Wait(clk clock.Clock, d time.Duration, cancel <-chan struct{}) proto.ProcInfo {
	if d > 0 {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-pr.done:
		case <-tm.C:
		case <-cancel:
		}
	}
	return pr.Info(clk)
}

// Write writes to the process's stdin (and closes it when close is set).
func (pr *Proc) Write(b []byte, close bool) (int, error) {
	if !pr.stdin {
		return 0, proto.Errorf(proto.CodeInvalidArgument, "process %d was started without stdin", pr.id)
	}
	n := 0
	if len(b) > 0 {
		var err error
		n, err = pr.p.WriteStdinBy(b, time.Now().Add(StdinWriteTimeout))
		if err != nil {
			return n, proto.Errorf(proto.CodeIOError, "stdin of process %d: wrote %d of %d bytes: %v", pr.id, n, len(b), err)
		}
	}
	if close && pr.pty {
		// Closing one descriptor of the terminal's master is no EOF for the
		// process; end-of-input on a terminal is ^D.
		if _, err := pr.p.WriteStdinBy([]byte{4}, time.Now().Add(StdinWriteTimeout)); err != nil {
			return n, proto.Errorf(proto.CodeIOError, "terminal of process %d: %v", pr.id, err)
		}
	} else if close {
		pr.p.CloseStdin()
	}
	return n, nil
}

// Resize sets the size of the process's terminal.
func (pr *Proc) Resize(ws proto.PtySize) error {
	if !pr.pty {
		return proto.Errorf(proto.CodeInvalidArgument, "process %d has no terminal", pr.id)
	}
	if err := pr.p.Resize(exec.Winsize{Cols: uint16(ws.Cols), Rows: uint16(ws.Rows)}); err != nil {
		return proto.Errorf(proto.CodeInvalidArgument, "resize process %d: %v", pr.id, err)
	}
	return nil
}

// Signal delivers sig to the process group; nothing after the exit.
func (pr *Proc) Signal(sig syscall.Signal) error { return pr.p.Signal(sig) }
