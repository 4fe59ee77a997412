package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ProtocolVersion is the protocol spoken in HELLO payloads.
const ProtocolVersion = 1

// Limits bounds what one request may ask of the agent (docs/protocol.md,
// "Limits").
type Limits struct {
	MaxArgv            int   // argv entries
	MaxEnv             int   // env entries
	MaxCommandBytes    int   // argv + env + shell bytes in total
	MaxPath            int   // bytes in a path (cwd, file paths)
	DefaultOutputBytes int64 // maxOutputBytes when the request says 0
	MaxOutputBytes     int64 // largest maxOutputBytes honoured (larger is clamped)
	MaxInFlight        int   // concurrent requests
}

// DefaultLimits are the limits protocol.md documents.
func DefaultLimits() Limits {
	return Limits{
		MaxArgv:            4096,
		MaxEnv:             4096,
		MaxCommandBytes:    256 << 10,
		MaxPath:            4096,
		DefaultOutputBytes: 1 << 20,
		MaxOutputBytes:     64 << 20,
		MaxInFlight:        256,
	}
}

// Hello is the host's HELLO request.
type Hello struct {
	Protocol int    `json:"protocol"`
	Client   string `json:"client"`
}

// HelloReply is the agent's HELLO reply.
type HelloReply struct {
	Protocol int      `json:"protocol"`
	Agent    string   `json:"agent"`
	Caps     []string `json:"caps"`
	InitMode string   `json:"initMode"`
	PID      int      `json:"pid"`
	BootMs   int64    `json:"bootMs"`
}

// ErrorReply is an ERROR payload.
type ErrorReply struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Exec is an EXEC request.
type Exec struct {
	Argv           []string          `json:"argv"`
	Shell          *string           `json:"shell"`
	Env            map[string]string `json:"env"`
	Cwd            string            `json:"cwd"`
	Stdin          bool              `json:"stdin"`
	TimeoutMs      int64             `json:"timeoutMs"`
	MaxOutputBytes int64             `json:"maxOutputBytes"`
}

// Validate checks an EXEC request against the limits.
func (e *Exec) Validate(l Limits) error {
	hasArgv, hasShell := len(e.Argv) > 0, e.Shell != nil
	if hasArgv == hasShell {
		return errors.New("exactly one of argv (non-empty) or shell is required")
	}
	if len(e.Argv) > l.MaxArgv {
		return fmt.Errorf("argv has %d entries, limit %d", len(e.Argv), l.MaxArgv)
	}
	if len(e.Env) > l.MaxEnv {
		return fmt.Errorf("env has %d entries, limit %d", len(e.Env), l.MaxEnv)
	}
	total := 0
	for i, a := range e.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("argv[%d] contains NUL", i)
		}
		total += len(a)
	}
	if hasArgv && e.Argv[0] == "" {
		return errors.New("argv[0] is empty")
	}
	if hasShell {
		if strings.IndexByte(*e.Shell, 0) >= 0 {
			return errors.New("shell contains NUL")
		}
		total += len(*e.Shell)
	}
	for k, v := range e.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env name %q is invalid", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env %s contains NUL", k)
		}
		total += len(k) + len(v)
	}
	if total > l.MaxCommandBytes {
		return fmt.Errorf("argv + env + shell is %d bytes, limit %d", total, l.MaxCommandBytes)
	}
	if err := checkPath("cwd", e.Cwd, true, l); err != nil {
		return err
	}
	if e.TimeoutMs < 0 {
		return errors.New("timeoutMs is negative")
	}
	if e.MaxOutputBytes < 0 {
		return errors.New("maxOutputBytes is negative")
	}
	return nil
}

// OutputCap is the per-stream cap the request gets: the default for 0, and
// at most the agent's maximum.
func (e *Exec) OutputCap(l Limits) int64 {
	switch {
	case e.MaxOutputBytes == 0:
		return l.DefaultOutputBytes
	case e.MaxOutputBytes > l.MaxOutputBytes:
		return l.MaxOutputBytes
	}
	return e.MaxOutputBytes
}

func checkPath(name, p string, optional bool, l Limits) error {
	if p == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("%s is required", name)
	}
	if len(p) > l.MaxPath {
		return fmt.Errorf("%s is %d bytes, limit %d", name, len(p), l.MaxPath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%s contains NUL", name)
	}
	if p[0] != '/' {
		return fmt.Errorf("%s %q is not absolute", name, p)
	}
	return nil
}

// ExecStarted is the EXEC_STARTED payload.
type ExecStarted struct {
	PID int `json:"pid"`
}

// ExecExited is the EXEC_EXITED payload.
type ExecExited struct {
	ExitCode   *int    `json:"exitCode"`
	Signal     *string `json:"signal"`
	TimedOut   bool    `json:"timedOut"`
	Truncated  bool    `json:"truncated"`
	DurationMs int64   `json:"durationMs"`
}

// Signal is a SIGNAL request.
type Signal struct {
	Signal string `json:"signal"`
}

// Validate checks the signal name is one protocol.md allows.
func (s *Signal) Validate(Limits) error {
	switch s.Signal {
	case "KILL", "TERM", "INT", "HUP", "QUIT", "USR1", "USR2":
		return nil
	}
	return fmt.Errorf("signal %q is not one of KILL TERM INT HUP QUIT USR1 USR2", s.Signal)
}

// DefaultFileMode is FILE_WRITE's mode when the request has none.
const DefaultFileMode = 0o644

// FileWrite is a FILE_WRITE request.
type FileWrite struct {
	Path          string  `json:"path"`
	Mode          *uint32 `json:"mode,omitempty"`
	CreateParents bool    `json:"createParents"`
	Append        bool    `json:"append"`
}

// Validate checks a FILE_WRITE request.
func (w *FileWrite) Validate(l Limits) error {
	if err := checkPath("path", w.Path, false, l); err != nil {
		return err
	}
	if w.Mode != nil && *w.Mode > 0o7777 {
		return fmt.Errorf("mode %#o has bits beyond 07777", *w.Mode)
	}
	return nil
}

// FileMode returns the requested mode or the default.
func (w *FileWrite) FileMode() uint32 {
	if w.Mode == nil {
		return DefaultFileMode
	}
	return *w.Mode
}

// FileWriteOK is FILE_WRITE's OK payload.
type FileWriteOK struct {
	Bytes int64 `json:"bytes"`
}

// FileRead is a FILE_READ request. With Length set (capability
// "file.range") it reads at most Length bytes from Offset, so that the host
// can stream a file of any size with bounded memory, a window at a time;
// MaxBytes then bounds only the window.
type FileRead struct {
	Path     string `json:"path"`
	MaxBytes *int64 `json:"maxBytes"`
	Offset   int64  `json:"offset,omitempty"`
	Length   *int64 `json:"length,omitempty"`
}

// Validate checks a FILE_READ request.
func (r *FileRead) Validate(l Limits) error {
	if err := checkPath("path", r.Path, false, l); err != nil {
		return err
	}
	if r.MaxBytes == nil {
		return errors.New("maxBytes is required")
	}
	if *r.MaxBytes < 0 {
		return errors.New("maxBytes is negative")
	}
	if r.Offset < 0 {
		return errors.New("offset is negative")
	}
	if r.Length == nil && r.Offset != 0 {
		return errors.New("offset needs length")
	}
	if r.Length != nil && (*r.Length < 0 || *r.Length > *r.MaxBytes) {
		return fmt.Errorf("length %d is outside 0..maxBytes (%d)", *r.Length, *r.MaxBytes)
	}
	return nil
}

// FileReadOK is FILE_READ's OK payload.
type FileReadOK struct {
	Size int64  `json:"size"`
	Mode uint32 `json:"mode"`
	// FileSize is the whole file's size when the request was a window.
	FileSize int64 `json:"fileSize,omitempty"`
}

// Health is a HEALTH request (no fields).
type Health struct{}

// HealthOK is HEALTH's OK payload.
type HealthOK struct {
	Agent          string  `json:"agent"`
	Protocol       int     `json:"protocol"`
	UptimeMs       int64   `json:"uptimeMs"`
	TimeUnixMs     int64   `json:"timeUnixMs"`
	MemTotalKb     int64   `json:"memTotalKb"`
	MemAvailableKb int64   `json:"memAvailableKb"`
	Load1          float64 `json:"load1"`
}

// TimeSync is a TIME_SYNC request.
type TimeSync struct {
	UnixMs int64 `json:"unixMs"`
}

// Validate checks a TIME_SYNC request.
func (t *TimeSync) Validate(Limits) error {
	if t.UnixMs <= 0 {
		return errors.New("unixMs must be positive")
	}
	return nil
}

// TimeSyncOK is TIME_SYNC's OK payload.
type TimeSyncOK struct {
	SkewMs int64 `json:"skewMs"`
}

// Poweroff is a POWEROFF request (no fields).
type Poweroff struct{}

// Empty is an empty JSON object payload ("OK {}").
type Empty struct{}

// MarshalJSON encodes v deterministically (struct field order, sorted map
// keys), without HTML escaping and without a trailing newline.
func MarshalJSON(v interface{}) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// JSONFrame builds a frame with a JSON payload.
func JSONFrame(t Type, id uint32, v interface{}) (Frame, error) {
	p, err := MarshalJSON(v)
	if err != nil {
		return Frame{}, err
	}
	if len(p) > MaxPayload {
		return Frame{}, fmt.Errorf("%s payload %d > %d", t, len(p), MaxPayload)
	}
	return Frame{Type: t, RequestID: id, Payload: p}, nil
}

// DecodeJSON parses a payload that must be one JSON object into v. Unknown
// fields are ignored.
func DecodeJSON(payload []byte, v interface{}) error {
	p := bytes.TrimLeft(payload, " \t\r\n")
	if len(p) == 0 || p[0] != '{' {
		return errors.New("payload is not a JSON object")
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("bad JSON payload: %v", err)
	}
	return nil
}
