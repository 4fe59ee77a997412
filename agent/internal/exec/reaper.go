// Package exec runs processes for EXEC requests: start, stream output, wait,
// signal. All child processes are reaped in one place (Reaper), which also
// reaps orphans re-parented to the agent when it is PID 1.
package exec

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"islet/agent/internal/logger"
)

// Reaper owns every wait4 call of the process. As PID 1 the agent inherits
// orphans and must reap them, but a wait4(-1) would also steal the status of
// children the agent is waiting for. So all waiting happens here: children
// are started under mu and registered before mu is released, and the reaping
// loop holds mu while it calls wait4(-1), so every status it collects is
// either for a registered child (delivered to its waiter) or for an orphan
// (dropped). Nothing else in the process may call wait4 or os/exec's Wait.
// Use one Reaper per process.
type Reaper struct {
	logf    logger.Logf
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	sigs    chan os.Signal
	stop    chan struct{}
	done    chan struct{}
}

// NewReaper starts the reaping goroutine. Call Close to stop it (tests).
func NewReaper(logf logger.Logf) *Reaper {
	r := &Reaper{
		logf:    logf,
		waiters: make(map[int]chan syscall.WaitStatus),
		sigs:    make(chan os.Signal, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r
}

// Close stops reaping. Registered waiters that have not been delivered stay
// blocked, so close only when no child is running.
func (r *Reaper) Close() {
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.done
}

func (r *Reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.sigs:
			r.reap()
		}
	}
}

// reap collects every exited child. SIGCHLD coalesces, so loop until none.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws // buffered, never blocks
		}
	}
}

// Start starts a process and registers it; the returned channel receives
// its wait status exactly once.
func (r *Reaper) Start(path string, argv []string, attr *os.ProcAttr) (pid int, wait <-chan syscall.WaitStatus, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	pid = p.Pid
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	_ = p.Release() // the Reaper waits, never os.Process.Wait; Release sets p.Pid to -1
	// A SIGCHLD that arrived before registration was either handled already
	// (child still running then) or is pending and will be handled after mu
	// is released. Nudge anyway, in case the child exited and its SIGCHLD was
	// coalesced with an earlier one that reap() has already consumed.
	select {
	case r.sigs <- syscall.SIGCHLD:
	default:
	}
	return pid, ch, nil
}
