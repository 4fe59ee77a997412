package proto

import (
	"errors"
	"fmt"
)

// Background processes (caps "proc"): the agent owns them, so they outlive
// the request and the host connection that started them.

// Proc limits (docs/protocol.md, "Background processes").
const (
	DefaultRingBytes  = 1 << 20
	MaxRingBytes      = 16 << 20
	DefaultReadBytes  = 256 << 10
	MaxReadBytes      = 4 << 20
	MaxWaitMs         = 10 * 60 * 1000
	MaxProcWriteBytes = 512 << 10
)

// ProcStart is a PROC_START request: an EXEC without stdin data or output
// cap, plus the size of the process's output ring.
type ProcStart struct {
	Argv      []string          `json:"argv"`
	Shell     *string           `json:"shell"`
	Env       map[string]string `json:"env"`
	Cwd       string            `json:"cwd"`
	Stdin     bool              `json:"stdin"`
	TimeoutMs int64             `json:"timeoutMs"`
	RingBytes int64             `json:"ringBytes"`
	// Pty, when set, runs the process on a new terminal (caps "proc.pty").
	Pty *PtySize `json:"pty,omitempty"`
}

// PtySize is a terminal size in character cells.
type PtySize struct {
	Cols int `json:"cols"`
	Rows int `json:"rows"`
}

func (p PtySize) check() error {
	if p.Cols < 1 || p.Cols > 10000 || p.Rows < 1 || p.Rows > 10000 {
		return fmt.Errorf("terminal size %dx%d is not 1-10000 columns by 1-10000 rows", p.Cols, p.Rows)
	}
	return nil
}

// AsExec is the EXEC the start runs.
func (s *ProcStart) AsExec() *Exec {
	return &Exec{Argv: s.Argv, Shell: s.Shell, Env: s.Env, Cwd: s.Cwd, Stdin: s.Stdin, TimeoutMs: s.TimeoutMs}
}

// Validate checks a PROC_START request.
func (s *ProcStart) Validate(l Limits) error {
	if err := s.AsExec().Validate(l); err != nil {
		return err
	}
	if s.RingBytes < 0 {
		return errors.New("ringBytes is negative")
	}
	if s.Pty != nil {
		return s.Pty.check()
	}
	return nil
}

// Ring is the ring size the start gets: the default for 0, at most the maximum.
func (s *ProcStart) Ring() int64 {
	switch {
	case s.RingBytes == 0:
		return DefaultRingBytes
	case s.RingBytes > MaxRingBytes:
		return MaxRingBytes
	}
	return s.RingBytes
}

// ProcStarted is PROC_START's OK payload.
type ProcStarted struct {
	ID  int `json:"id"`
	PID int `json:"pid"`
}

// ProcInfo describes one process of the table.
type ProcInfo struct {
	ID            int     `json:"id"`
	PID           int     `json:"pid"`
	Command       string  `json:"command"`
	Running       bool    `json:"running"`
	ExitCode      *int    `json:"exitCode"`
	Signal        *string `json:"signal"`
	TimedOut      bool    `json:"timedOut"`
	StartedUnixMs int64   `json:"startedUnixMs"`
	DurationMs    int64   `json:"durationMs"`
	OutputBytes   int64   `json:"outputBytes"`
	DroppedBytes  int64   `json:"droppedBytes"`
	Stdin         bool    `json:"stdin"`
	Pty           bool    `json:"pty"`
}

// ProcList is a PROC_LIST request (no fields).
type ProcList struct{}

// ProcListOK is PROC_LIST's OK payload.
type ProcListOK struct {
	Procs []ProcInfo `json:"procs"`
}

// ProcRef names a process.
type ProcRef struct {
	ID int `json:"id"`
}

func (r ProcRef) checkRef() error {
	if r.ID <= 0 {
		return errors.New("id must be a positive process id")
	}
	return nil
}

// ProcOutput is a PROC_OUTPUT request.
type ProcOutput struct {
	ProcRef
	Offset   int64 `json:"offset"`
	MaxBytes int64 `json:"maxBytes"`
	WaitMs   int64 `json:"waitMs"`
}

// Validate checks a PROC_OUTPUT request.
func (o *ProcOutput) Validate(Limits) error {
	if err := o.checkRef(); err != nil {
		return err
	}
	if o.Offset < 0 || o.MaxBytes < 0 || o.WaitMs < 0 {
		return errors.New("offset, maxBytes and waitMs must not be negative")
	}
	if o.WaitMs > MaxWaitMs {
		return fmt.Errorf("waitMs %d is over %d", o.WaitMs, MaxWaitMs)
	}
	return nil
}

// Limit is the read size: the default for 0, at most the maximum.
func (o *ProcOutput) Limit() int64 {
	switch {
	case o.MaxBytes == 0:
		return DefaultReadBytes
	case o.MaxBytes > MaxReadBytes:
		return MaxReadBytes
	}
	return o.MaxBytes
}

// ProcOutputOK is PROC_OUTPUT's OK payload, after the DATA frames.
type ProcOutputOK struct {
	Start   int64    `json:"start"`
	Next    int64    `json:"next"`
	Dropped int64    `json:"dropped"`
	Proc    ProcInfo `json:"proc"`
}

// ProcWrite is a PROC_WRITE request.
type ProcWrite struct {
	ProcRef
	Data  []byte `json:"data"` // base64 in JSON
	Close bool   `json:"close"`
}

// Validate checks a PROC_WRITE request.
func (w *ProcWrite) Validate(Limits) error {
	if err := w.checkRef(); err != nil {
		return err
	}
	if len(w.Data) > MaxProcWriteBytes {
		return fmt.Errorf("data is %d bytes, limit %d", len(w.Data), MaxProcWriteBytes)
	}
	return nil
}

// ProcWriteOK is PROC_WRITE's OK payload.
type ProcWriteOK struct {
	Bytes int `json:"bytes"`
}

// ProcSignal is a PROC_SIGNAL request.
type ProcSignal struct {
	ProcRef
	Signal string `json:"signal"`
}

// Validate checks a PROC_SIGNAL request.
func (s *ProcSignal) Validate(l Limits) error {
	if err := s.checkRef(); err != nil {
		return err
	}
	return (&Signal{Signal: s.Signal}).Validate(l)
}

// ProcWait is a PROC_WAIT request.
type ProcWait struct {
	ProcRef
	TimeoutMs int64 `json:"timeoutMs"`
}

// Validate checks a PROC_WAIT request.
func (w *ProcWait) Validate(Limits) error {
	if err := w.checkRef(); err != nil {
		return err
	}
	if w.TimeoutMs < 0 || w.TimeoutMs > MaxWaitMs {
		return fmt.Errorf("timeoutMs must be 0 to %d", MaxWaitMs)
	}
	return nil
}

// ProcResize is a PROC_RESIZE request: a new size for a process's terminal.
type ProcResize struct {
	ProcRef
	PtySize
}

// Validate checks a PROC_RESIZE request.
func (r *ProcResize) Validate(Limits) error {
	if err := r.checkRef(); err != nil {
		return err
	}
	return r.PtySize.check()
}
