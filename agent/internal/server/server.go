// Package server is the agent's dispatch loop: it decodes frames from one
// host connection at a time, routes each to the handler for its type, and
// serialises every reply through one writer. It never lets a frame crash the
// agent: malformed requests get ERROR replies, header violations drop the
// connection.
package server

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/exec"
	"islet/agent/internal/logger"
	"islet/agent/internal/netcfg"
	"islet/agent/internal/proc"
	"islet/agent/internal/proto"
)

// Config is everything the server depends on.
type Config struct {
	Logf    logger.Logf // should be rate-limited: frames are peer-controlled
	Clock   clock.Clock
	Limits  proto.Limits
	Reaper  *exec.Reaper
	Hello   func() proto.HelloReply
	ProcDir string                // /proc, for HEALTH
	SetTime func(time.Time) error // TIME_SYNC
	// Readdress re-addresses eth0 (NET_CONFIG); nil: the agent cannot.
	Readdress func(mac [6]byte, c netcfg.Config) error
	// Freeze and Thaw serve FS_FREEZE and FS_THAW (FIFREEZE, FITHAW); nil:
	// the agent cannot. Tests give fakes: the real ones on the host's root
	// would stop the host.
	Freeze func(path string) error
	Thaw   func(path string) error
	// PowerOff is called after POWEROFF's OK reply has been written. In the
	// VM it does not return; if it does, the error is logged.
	PowerOff func() error
}

// StdinQueue is how many host DATA frames may wait for one request (exec
// stdin or file content) before the dispatch loop waits for it to catch up.
const StdinQueue = 64

// Conn is one host connection: frames are read from it and written to it.
// If it also has SetWriteDeadline (os.File, net.Conn), a write blocked when
// the connection ends is abandoned, so no stale frame reaches the next
// client.
type Conn interface {
	io.Reader
	io.Writer
}

type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// Server serves host connections one after another. Requests belong to the
// connection that sent them: when it ends, their later frames are dropped,
// in-flight file writes are discarded and exec stdin is closed, but
// processes keep running.
type Server struct {
	cfg   Config
	wg    sync.WaitGroup  // request goroutines
	procs *proc.Table     // background processes, shared by all connections
	thaws freezeDeadlines // frozen filesystems, each with the timer that thaws it
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logf == nil {
		cfg.Logf = logger.Discard
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	return &Server{cfg: cfg, procs: proc.NewTable(cfg.Reaper, cfg.Clock, cfg.Logf)}
}

// Wait blocks until every request goroutine has finished (tests).
func (s *Server) Wait() { s.wg.Wait() }

// Serve serves one connection until it ends. It returns io.EOF when the
// client went away (a 0-byte read) or after a protocol violation once the
// rest of that connection has been discarded, io.ErrUnexpectedEOF if it went
// away inside a frame, or the read error.
func (s *Server) Serve(c Conn) error {
	ss := &session{s: s, conn: c, done: make(chan struct{}), reqs: make(map[uint32]*request)}
	defer ss.end()
	r := proto.NewReader(c)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			var v *proto.ViolationError
			if !errors.As(err, &v) {
				return err
			}
			s.cfg.Logf("dropping connection: %v", err)
			ss.end()
			// The host closes the connection on a violation; discard
			// everything until it does so the next client starts clean.
			if _, err := io.Copy(io.Discard, c); err != nil {
				return err
			}
			return io.EOF
		}
		ss.dispatch(f)
	}
}

type dataMsg struct {
	b   []byte
	eof bool
}

type request struct {
	id      uint32
	typ     proto.Type
	data    chan dataMsg  // nil: the request takes no DATA
	done    chan struct{} // closed when the request has ended
	dataEOF bool          // dispatch goroutine only

	abort     chan struct{} // closed by a SIGNAL to a FILE_WRITE: discard it
	abortOnce sync.Once

	// tail is sent just before the final frame, in the same write
	// (handler goroutine only).
	tail []proto.Frame

	// under session.mu
	proc       *exec.Process
	pendingSig []string // SIGNALs that arrived before the process started
}

type session struct {
	s       *Server
	conn    Conn
	done    chan struct{} // closed when the connection has ended
	endOnce sync.Once

	wmu    sync.Mutex
	closed bool // under wmu: frames are dropped

	mu   sync.Mutex
	reqs map[uint32]*request
}

// errClosed is returned by send after the connection ended.
type errClosed struct{}

func (errClosed) Error() string { return "connection closed" }

func (ss *session) end() {
	ss.endOnce.Do(func() {
		close(ss.done)
		d, ok := ss.conn.(writeDeadliner)
		if ok {
			_ = d.SetWriteDeadline(time.Unix(1, 0)) // fail a write blocked on a gone client
		}
		ss.wmu.Lock()
		ss.closed = true
		ss.wmu.Unlock()
		if ok {
			_ = d.SetWriteDeadline(time.Time{}) // the port is reused for the next client
		}
	})
}

func (ss *session) send(f proto.Frame) error { return ss.sendAll(f) }

// sendAll writes frames in one write: each write to the virtio-serial port
// is a guest exit and a host wake-up, so frames that are ready together (a
// command's end-of-output markers and its exit) go together.
func (ss *session) sendAll(fs ...proto.Frame) error {
	n := 0
	for _, f := range fs {
		n += proto.HeaderSize + len(f.Payload)
	}
	b := make([]byte, 0, n)
	for _, f := range fs {
		var err error
		if b, err = proto.AppendFrame(b, f); err != nil {
			ss.s.cfg.Logf("encode %v for request %d: %v", f.Type, f.RequestID, err)
			return err
		}
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	if ss.closed {
		return errClosed{}
	}
	if _, err := ss.conn.Write(b); err != nil {
		ss.closed = true
		ss.s.cfg.Logf("write failed, dropping further replies on this connection: %v", err)
		return err
	}
	return nil
}

func jsonFrame(t proto.Type, id uint32, v interface{}) proto.Frame {
	f, err := proto.JSONFrame(t, id, v)
	if err != nil { // only for payloads over 1 MiB, e.g. a huge error message
		return errorFrame(id, proto.Errorf(proto.CodeInternal, "encode %v: %v", t, err))
	}
	return f
}

func errorFrame(id uint32, err error) proto.Frame {
	msg := err.Error()
	var pe *proto.Error
	if errors.As(err, &pe) {
		msg = pe.Msg
	}
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	f, _ := proto.JSONFrame(proto.TypeError, id, proto.ErrorReply{Code: proto.CodeOf(err), Message: msg})
	return f
}

func (ss *session) sendJSON(t proto.Type, id uint32, v interface{}) error {
	return ss.send(jsonFrame(t, id, v))
}

func (ss *session) sendError(id uint32, code proto.Code, format string, args ...interface{}) {
	_ = ss.send(errorFrame(id, proto.Errorf(code, format, args...)))
}

func (ss *session) sendData(id uint32, stream uint16, b []byte, eof bool) error {
	flags := stream
	if eof {
		flags |= proto.FlagEOF
	}
	return ss.send(proto.Frame{Type: proto.TypeData, Flags: flags, RequestID: id, Payload: b})
}

// register adds a request that outlives dispatch. It replies ERROR and
// returns nil if the id is in use or too many requests are in flight.
func (ss *session) register(id uint32, t proto.Type, takesData bool) *request {
	ss.mu.Lock()
	_, dup := ss.reqs[id]
	busy := len(ss.reqs) >= ss.s.cfg.Limits.MaxInFlight
	var r *request
	if !dup && !busy {
		r = &request{id: id, typ: t, done: make(chan struct{}), abort: make(chan struct{})}
		if takesData {
			r.data = make(chan dataMsg, StdinQueue)
		}
		ss.reqs[id] = r
	}
	ss.mu.Unlock()
	switch {
	case dup:
		ss.sendError(id, proto.CodeInvalidArgument, "request id %d is already in flight", id)
	case busy:
		ss.sendError(id, proto.CodeBusy, "%d requests in flight", ss.s.cfg.Limits.MaxInFlight)
	}
	return r
}

func (ss *session) lookup(id uint32) *request {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.reqs[id]
}

// run runs a registered request's handler in its own goroutine. The handler
// returns the frame that ends the request; the request is removed before
// that frame is sent, so the host may reuse the id as soon as it sees it.
func (ss *session) run(r *request, h func(r *request) proto.Frame) {
	ss.s.wg.Add(1)
	go func() {
		defer ss.s.wg.Done()
		var final proto.Frame
		func() {
			defer func() {
				if p := recover(); p != nil {
					ss.s.cfg.Logf("panic in %v request %d: %v", r.typ, r.id, p)
					final = errorFrame(r.id, proto.Errorf(proto.CodeInternal, "agent panic: %v", p))
				}
			}()
			final = h(r)
		}()
		ss.mu.Lock()
		if ss.reqs[r.id] == r {
			delete(ss.reqs, r.id)
		}
		ss.mu.Unlock()
		close(r.done)
		_ = ss.sendAll(append(r.tail, final)...)
	}()
}

// decode parses a JSON payload into v and validates it; on failure it
// replies INVALID_ARGUMENT and returns false.
func (ss *session) decode(f proto.Frame, v interface{}) bool {
	err := proto.DecodeJSON(f.Payload, v)
	if err == nil {
		if val, ok := v.(interface{ Validate(proto.Limits) error }); ok {
			err = val.Validate(ss.s.cfg.Limits)
		}
	}
	if err != nil {
		ss.sendError(f.RequestID, proto.CodeInvalidArgument, "%v: %v", f.Type, err)
		return false
	}
	return true
}

func (ss *session) dispatch(f proto.Frame) {
	defer func() {
		if p := recover(); p != nil {
			ss.s.cfg.Logf("panic handling %v request %d: %v", f.Type, f.RequestID, p)
			ss.sendError(f.RequestID, proto.CodeInternal, "agent panic: %v", p)
		}
	}()
	if f.RequestID == 0 {
		ss.s.cfg.Logf("%v frame with request id 0", f.Type)
		if f.Type != proto.TypeData {
			ss.sendError(0, proto.CodeInvalidArgument, "request id 0 is reserved")
		}
		return
	}
	switch f.Type {
	case proto.TypeHello:
		ss.handleHello(f)
	case proto.TypeExec:
		ss.handleExec(f)
	case proto.TypeData:
		ss.handleData(f)
	case proto.TypeSignal:
		ss.handleSignal(f)
	case proto.TypeFileWrite:
		ss.handleFileWrite(f)
	case proto.TypeFileRead:
		ss.handleFileRead(f)
	case proto.TypeHealth:
		ss.handleHealth(f)
	case proto.TypeTimeSync:
		ss.handleTimeSync(f)
	case proto.TypePoweroff:
		ss.handlePoweroff(f)
	case proto.TypeProcStart:
		ss.handleProcStart(f)
	case proto.TypeProcList:
		ss.handleProcList(f)
	case proto.TypeProcOutput:
		ss.handleProcOutput(f)
	case proto.TypeProcWrite:
		ss.handleProcWrite(f)
	case proto.TypeProcSignal:
		ss.handleProcSignal(f)
	case proto.TypeProcWait:
		ss.handleProcWait(f)
	case proto.TypeProcResize:
		ss.handleProcResize(f)
	case proto.TypeNetConfig:
		ss.handleNetConfig(f)
	case proto.TypeFsFreeze:
		ss.handleFsFreeze(f)
	case proto.TypeFsThaw:
		ss.handleFsThaw(f)
	case proto.TypeError, proto.TypeOK, proto.TypeExecStarted, proto.TypeExecExited:
		ss.sendError(f.RequestID, proto.CodeInvalidArgument, "%v is not a request", f.Type)
	default:
		ss.sendError(f.RequestID, proto.CodeUnknownType, "unknown frame type %d", uint8(f.Type))
	}
}

func (ss *session) handleHello(f proto.Frame) {
	var req proto.Hello
	if !ss.decode(f, &req) {
		return
	}
	if req.Protocol != proto.ProtocolVersion {
		ss.sendError(f.RequestID, proto.CodeProtocolMismatch, "host speaks protocol %d, agent speaks %d", req.Protocol, proto.ProtocolVersion)
		return
	}
	_ = ss.sendJSON(proto.TypeHello, f.RequestID, ss.s.cfg.Hello())
}

func (ss *session) handleData(f proto.Frame) {
	if f.Flags&^proto.DataFlagsMask != 0 || f.Stream() != proto.StreamStdin {
		ss.s.cfg.Logf("DATA for request %d with flags %#04x dropped", f.RequestID, f.Flags)
		return
	}
	r := ss.lookup(f.RequestID)
	if r == nil || r.data == nil {
		// Races with the request's end (e.g. stdin for an exited process).
		ss.s.cfg.Logf("DATA for request %d, which takes none or has ended, dropped", f.RequestID)
		return
	}
	if r.dataEOF {
		ss.s.cfg.Logf("DATA for request %d after its EOF dropped", f.RequestID)
		return
	}
	r.dataEOF = f.EOF()
	select {
	case r.data <- dataMsg{b: f.Payload, eof: f.EOF()}:
	case <-r.done:
	}
}

func (ss *session) handleHealth(f proto.Frame) {
	var req proto.Health
	if !ss.decode(f, &req) {
		return
	}
	h, err := infoHealth(ss.s.cfg)
	if err != nil {
		ss.sendError(f.RequestID, proto.CodeIOError, "%v", err)
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, h)
}

func (ss *session) handleTimeSync(f proto.Frame) {
	var req proto.TimeSync
	if !ss.decode(f, &req) {
		return
	}
	ok, err := infoTimeSync(ss.s.cfg, req)
	if err != nil {
		ss.sendError(f.RequestID, proto.CodeForErrno(err, proto.CodeInternal), "set clock: %v", err)
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, ok)
}

func (ss *session) handlePoweroff(f proto.Frame) {
	var req proto.Poweroff
	if !ss.decode(f, &req) {
		return
	}
	if err := ss.sendJSON(proto.TypeOK, f.RequestID, proto.Empty{}); err != nil {
		ss.s.cfg.Logf("POWEROFF reply: %v", err)
	}
	ss.s.cfg.Logf("powering off (request %d)", f.RequestID)
	if ss.s.cfg.PowerOff == nil {
		return
	}
	if err := ss.s.cfg.PowerOff(); err != nil {
		ss.s.cfg.Logf("power off: %v", err)
	}
}

func (ss *session) String() string { return fmt.Sprintf("session %p", ss) }
