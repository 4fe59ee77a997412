package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/proto"
)

// DefaultCwd is the working directory when a request gives none; it is
// created if missing.
const DefaultCwd = "/root"

// DrainGrace is how long output pipes are read after the process exits,
// for children that still hold them (daemonised background jobs). Bytes
// already in the pipes when it passes are still sent.
const DrainGrace = 100 * time.Millisecond

// BaseEnv returns the base environment requests' env is merged over.
func BaseEnv() map[string]string {
	return map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": "/root",
		"LANG": "C.UTF-8",
		"TERM": "xterm",
	}
}

// MergeEnv merges over onto BaseEnv and returns sorted KEY=VALUE strings.
func MergeEnv(over map[string]string) []string {
	m := BaseEnv()
	for k, v := range over {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// Spec is what to run.
type Spec struct {
	Argv      []string // argv[0] is looked up in Env's PATH unless it has a '/'
	Env       []string
	Dir       string // "" means DefaultCwd
	Stdin     bool   // false: /dev/null
	Timeout   time.Duration
	MaxOutput int64 // per stream
	// PTY, when set, runs the process on a new terminal of that size: its
	// output is one stream (stdout) and stdin is the terminal's input.
	PTY *Winsize
}

// SpecFromRequest turns a validated EXEC request into a Spec.
func SpecFromRequest(req *proto.Exec, l proto.Limits) Spec {
	argv := req.Argv
	if req.Shell != nil {
		argv = []string{"/bin/sh", "-c", *req.Shell}
	}
	return Spec{
		Argv:      argv,
		Env:       MergeEnv(req.Env),
		Dir:       req.Cwd,
		Stdin:     req.Stdin,
		Timeout:   time.Duration(req.TimeoutMs) * time.Millisecond,
		MaxOutput: req.OutputCap(l),
	}
}

// Result is how a process ended.
type Result struct {
	ExitCode  *int
	Signal    *string
	TimedOut  bool
	Truncated bool
	Duration  time.Duration
}

// Payload converts a Result to EXEC_EXITED.
func (r Result) Payload() proto.ExecExited {
	return proto.ExecExited{ExitCode: r.ExitCode, Signal: r.Signal, TimedOut: r.TimedOut,
		Truncated: r.Truncated, DurationMs: r.Duration.Milliseconds()}
}

// Process is a started process in its own process group.
type Process struct {
	pid     int
	clk     clock.Clock
	spec    Spec
	start   time.Time
	wait    <-chan syscall.WaitStatus
	stdinW  *os.File
	stdout  *os.File
	stderr  *os.File // nil on a terminal
	tty     *os.File // the terminal's master, for Resize; nil without PTY
	closeIn sync.Once

	mu       sync.Mutex
	exited   bool
	timedOut bool
}

// Start starts spec. Errors are *proto.Error with the code to reply with.
func Start(r *Reaper, clk clock.Clock, spec Spec) (p *Process, err error) {
	if len(spec.Argv) == 0 {
		return nil, proto.Errorf(proto.CodeInvalidArgument, "empty argv")
	}
	dir := spec.Dir
	if dir == "" {
		dir = DefaultCwd
	}
	st, err := os.Stat(dir)
	if err != nil && spec.Dir == "" && errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, proto.Errorf(proto.CodeForErrno(err, proto.CodeIOError), "create cwd %s: %v", dir, err)
		}
		st, err = os.Stat(dir)
	}
	if err != nil {
		return nil, proto.Errorf(proto.CodeForErrno(err, proto.CodeIOError), "cwd: %v", err)
	} else if !st.IsDir() {
		return nil, proto.Errorf(proto.CodeInvalidArgument, "cwd %s is not a directory", dir)
	}
	path, err := lookPath(spec.Argv[0], envValue(spec.Env, "PATH"))
	if err != nil {
		return nil, err
	}
	if spec.PTY != nil {
		p = &Process{clk: clk, spec: spec}
		if err := startPTY(r, p, path, dir); err != nil {
			return nil, err
		}
		return p, nil
	}

	var closeAfter, closeOnErr []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
		if err != nil {
			for _, f := range closeOnErr {
				f.Close()
			}
		}
	}()
	p = &Process{clk: clk, spec: spec}
	var stdin *os.File
	if spec.Stdin {
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, proto.Errorf(proto.CodeInternal, "stdin pipe: %v", err)
		}
		stdin, p.stdinW = rd, wr
		closeAfter, closeOnErr = append(closeAfter, rd), append(closeOnErr, wr)
	} else if stdin, err = os.Open(os.DevNull); err == nil {
		closeAfter = append(closeAfter, stdin)
	} else {
		// No /dev/null (very early boot): an empty pipe reads as EOF.
		rd, wr, err := os.Pipe()
		if err != nil {
			return nil, proto.Errorf(proto.CodeInternal, "stdin pipe: %v", err)
		}
		wr.Close()
		stdin = rd
		closeAfter = append(closeAfter, rd)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "stdout pipe: %v", err)
	}
	closeAfter, closeOnErr = append(closeAfter, outW), append(closeOnErr, outR)
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "stderr pipe: %v", err)
	}
	closeAfter, closeOnErr = append(closeAfter, errW), append(closeOnErr, errR)
	p.stdout, p.stderr = outR, errR

	attr := &os.ProcAttr{
		Dir:   dir,
		Env:   spec.Env,
		Files: []*os.File{stdin, outW, errW},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	p.start = clk.Now()
	pid, wait, err := r.Start(path, spec.Argv, attr)
	if err != nil {
		return nil, proto.Errorf(proto.CodeForErrno(err, proto.CodeInternal), "start %s: %v", spec.Argv[0], err)
	}
	p.pid, p.wait = pid, wait
	return p, nil
}

// PID is the process id (and process group id).
func (p *Process) PID() int { return p.pid }

// Signal sends sig to the process group. After the process has exited and
// been waited for it does nothing.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	return killGroup(p.pid, sig)
}

// WriteStdin writes to the process's stdin. It fails once the process has
// finished (Wait closes the pipe) or CloseStdin was called.
func (p *Process) WriteStdin(b []byte) error {
	if p.stdinW == nil {
		return errors.New("stdin is not a pipe")
	}
	_, err := p.stdinW.Write(b)
	return err
}

// Resize sets the size of the process's terminal. It fails for a process
// without one, and after the exit.
func (p *Process) Resize(ws Winsize) error {
	if p.tty == nil {
		return errors.New("the process has no terminal")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return errors.New("the process has exited")
	}
	return SetWinsize(p.tty, ws)
}

// CloseStdin closes the process's stdin (EOF for the process). Idempotent.
func (p *Process) CloseStdin() {
	p.closeIn.Do(func() {
		if p.stdinW != nil {
			p.stdinW.Close()
		}
	})
}

// Emit receives output: stream is proto.StreamStdout or StreamStderr, b at
// most proto.DataChunk bytes (empty with eof). Calls for one stream are
// sequential; the two streams call concurrently. b is only valid during the
// call (the buffer is reused): copy what must outlive it.
type Emit func(stream uint16, b []byte, eof bool)

// Wait streams output to emit until the process exits and its pipes are
// drained (both streams' eof calls happen before Wait returns), enforcing
// the timeout and output cap. Call it exactly once.
func (p *Process) Wait(emit Emit) Result {
	var wg sync.WaitGroup
	var truncated [2]bool
	for i, f := range []*os.File{p.stdout, p.stderr} {
		if f == nil {
			continue
		}
		wg.Add(1)
		go func(i int, f *os.File) {
			defer wg.Done()
			truncated[i] = pump(f, uint16(i+1), p.spec.MaxOutput, emit)
		}(i, f)
	}
	var timer clock.Timer
	if p.spec.Timeout > 0 {
		timer = p.clk.AfterFunc(p.spec.Timeout, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.exited {
				p.timedOut = true
				_ = killGroup(p.pid, syscall.SIGKILL)
			}
		})
	}
	ws := <-p.wait
	end := p.clk.Now()
	if timer != nil {
		timer.Stop()
	}
	p.mu.Lock()
	p.exited = true
	timedOut := p.timedOut
	p.mu.Unlock()

	deadline := time.Now().Add(DrainGrace)
	for _, f := range []*os.File{p.stdout, p.stderr} {
		if f != nil {
			_ = f.SetReadDeadline(deadline)
		}
	}
	wg.Wait()
	p.stdout.Close()
	if p.stderr != nil {
		p.stderr.Close()
	}
	p.CloseStdin()

	res := Result{TimedOut: timedOut, Truncated: truncated[0] || truncated[1], Duration: end.Sub(p.start)}
	switch {
	case ws.Exited():
		c := ws.ExitStatus()
		res.ExitCode = &c
	case ws.Signaled():
		s := SignalName(ws.Signal())
		res.Signal = &s
	default:
		c := -1
		res.ExitCode = &c
	}
	return res
}

// pump copies f to emit in chunks, keeping at most max bytes and discarding
// the rest (so the writer never blocks on a full pipe). It reports whether
// anything was discarded. On the drain deadline it reads what is buffered
// without waiting, then stops.
func pump(f *os.File, stream uint16, max int64, emit Emit) (truncated bool) {
	bp := pumpBufs.Get().(*[]byte)
	defer pumpBufs.Put(bp)
	buf := *bp
	var total int64
	take := func(b []byte) {
		if len(b) == 0 {
			return
		}
		if room := max - total; int64(len(b)) > room {
			if room < 0 {
				room = 0
			}
			b = b[:room]
			truncated = true
		}
		total += int64(len(b))
		if len(b) > 0 {
			emit(stream, b, false)
		}
	}
	for {
		n, err := f.Read(buf)
		take(buf[:n])
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			_ = f.SetReadDeadline(time.Time{})
			drainNonblocking(f, buf, take)
		}
		break
	}
	emit(stream, nil, true)
	return truncated
}

// pumpBufs recycles pump buffers: a fresh 64 KiB per stream per exec made
// the agent's heap grow by 128 KiB for every command, so the collector ran
// every few dozen execs and its pauses (milliseconds under TCG) were a part
// of the exec tail.
var pumpBufs = sync.Pool{New: func() interface{} { b := make([]byte, proto.DataChunk); return &b }}

// drainNonblocking reads whatever is buffered in f without waiting.
func drainNonblocking(f *os.File, buf []byte, take func([]byte)) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			if n <= 0 || err != nil {
				return true // done: EAGAIN, EOF or error
			}
			take(buf[:n])
		}
	})
}

// killGroup signals process group pgid. It refuses pgid <= 1: kill(-1)
// would signal every process, and group 1 is init's.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	return syscall.Kill(-pgid, sig)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// lookPath finds name in pathList like execvp, but with the request's PATH
// rather than the agent's.
func lookPath(name, pathList string) (string, error) {
	check := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return syscall.EACCES
		}
		return nil
	}
	if strings.Contains(name, "/") {
		if err := check(name); err != nil {
			return "", proto.Errorf(proto.CodeForErrno(err, proto.CodeInternal), "%s: %v", name, err)
		}
		return name, nil
	}
	denied := false
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := check(p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission) {
			denied = true
		}
	}
	if denied {
		return "", proto.Errorf(proto.CodePermissionDenied, "%s: permission denied", name)
	}
	return "", proto.Errorf(proto.CodeNotFound, "%s: not found in PATH", name)
}

// ParseSignal maps a SIGNAL request's name to a signal.
func ParseSignal(name string) (syscall.Signal, error) {
	switch name {
	case "KILL":
		return syscall.SIGKILL, nil
	case "TERM":
		return syscall.SIGTERM, nil
	case "INT":
		return syscall.SIGINT, nil
	case "HUP":
		return syscall.SIGHUP, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	}
	return 0, fmt.Errorf("unsupported signal %q", name)
}

// WriteStdinBy writes to stdin like WriteStdin but gives up at deadline, so
// a process that never reads cannot hold its writer forever. It returns how
// many bytes went in.
func (p *Process) WriteStdinBy(b []byte, deadline time.Time) (int, error) {
	if p.stdinW == nil {
		return 0, errors.New("stdin is not a pipe")
	}
	_ = p.stdinW.SetWriteDeadline(deadline)
	return p.stdinW.Write(b)
}

// ParseSignalOrZero is ParseSignal for a name already validated.
func ParseSignalOrZero(name string) syscall.Signal {
	s, _ := ParseSignal(name)
	return s
}
