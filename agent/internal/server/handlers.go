package server

import (
	"sync"

	"islet/agent/internal/exec"
	"islet/agent/internal/fs"
	"islet/agent/internal/info"
	"islet/agent/internal/proto"
)

func infoHealth(cfg Config) (proto.HealthOK, error) { return info.Health(cfg.ProcDir, cfg.Clock) }

func infoTimeSync(cfg Config, req proto.TimeSync) (proto.TimeSyncOK, error) {
	return info.TimeSync(req, cfg.Clock, cfg.SetTime)
}

func (ss *session) handleExec(f proto.Frame) {
	var req proto.Exec
	if !ss.decode(f, &req) {
		return
	}
	r := ss.register(f.RequestID, proto.TypeExec, req.Stdin)
	if r == nil {
		return
	}
	spec := exec.SpecFromRequest(&req, ss.s.cfg.Limits)
	ss.run(r, func(r *request) proto.Frame {
		p, err := exec.Start(ss.s.cfg.Reaper, ss.s.cfg.Clock, spec)
		if err != nil {
			return errorFrame(r.id, err)
		}
		_ = ss.sendJSON(proto.TypeExecStarted, r.id, proto.ExecStarted{PID: p.PID()})
		ss.mu.Lock()
		r.proc = p
		pending := r.pendingSig
		r.pendingSig = nil
		ss.mu.Unlock()
		for _, name := range pending {
			ss.signal(r.id, p, name)
		}
		if req.Stdin {
			ss.s.wg.Add(1)
			go ss.feedStdin(r, p)
		}
		// End-of-stream markers wait for the exit and go out with it, in
		// one write; Wait makes both before it returns.
		var eofMu sync.Mutex
		res := p.Wait(func(stream uint16, b []byte, eof bool) {
			if len(b) > 0 {
				_ = ss.sendData(r.id, stream, b, false)
			}
			if eof {
				eofMu.Lock()
				r.tail = append(r.tail, proto.Frame{Type: proto.TypeData, Flags: stream | proto.FlagEOF, RequestID: r.id})
				eofMu.Unlock()
			}
		})
		return jsonFrame(proto.TypeExecExited, r.id, res.Payload())
	})
}

// feedStdin copies the request's DATA frames to the process's stdin until
// EOF, the end of the request or of the connection. If the process stops
// reading (closed stdin, exited) the rest is discarded so dispatch never
// waits on it for long.
func (ss *session) feedStdin(r *request, p *exec.Process) {
	defer ss.s.wg.Done()
	defer p.CloseStdin()
	broken := false
	for {
		select {
		case m := <-r.data:
			if len(m.b) > 0 && !broken {
				if err := p.WriteStdin(m.b); err != nil {
					broken = true
				}
			}
			if m.eof {
				return
			}
		case <-r.done:
			return
		case <-ss.done:
			return
		}
	}
}

func (ss *session) signal(id uint32, p *exec.Process, name string) {
	sig, err := exec.ParseSignal(name)
	if err == nil {
		err = p.Signal(sig)
	}
	if err != nil {
		ss.s.cfg.Logf("SIGNAL %s for request %d: %v", name, id, err)
	}
}

func (ss *session) handleSignal(f proto.Frame) {
	// SIGNAL has no reply: an ERROR would end the exec request on the host.
	var req proto.Signal
	err := proto.DecodeJSON(f.Payload, &req)
	if err == nil {
		err = req.Validate(ss.s.cfg.Limits)
	}
	if err != nil {
		ss.s.cfg.Logf("SIGNAL for request %d ignored: %v", f.RequestID, err)
		return
	}
	ss.mu.Lock()
	r := ss.reqs[f.RequestID]
	if r != nil && r.typ == proto.TypeFileWrite {
		// Capability "file.abort": the host gave up on a streamed write
		// (its client went away); drop the temporary file now rather than
		// hold it and a request slot until the connection ends.
		r.abortOnce.Do(func() { close(r.abort) })
		ss.mu.Unlock()
		return
	}
	var p *exec.Process
	if r != nil && r.typ == proto.TypeExec {
		if p = r.proc; p == nil {
			r.pendingSig = append(r.pendingSig, req.Signal)
		}
	}
	ss.mu.Unlock()
	if p != nil {
		ss.signal(f.RequestID, p, req.Signal)
	} else if r == nil {
		ss.s.cfg.Logf("SIGNAL for request %d, which is not running, ignored", f.RequestID)
	}
}

func (ss *session) handleFileWrite(f proto.Frame) {
	var req proto.FileWrite
	if !ss.decode(f, &req) {
		return
	}
	r := ss.register(f.RequestID, proto.TypeFileWrite, true)
	if r == nil {
		return
	}
	ss.run(r, func(r *request) proto.Frame {
		w, err := fs.OpenWriter(&req)
		if err != nil {
			return errorFrame(r.id, err)
		}
		for {
			select {
			case m := <-r.data:
				if err := w.Write(m.b); err != nil {
					w.Abort()
					return errorFrame(r.id, err)
				}
				if m.eof {
					n, err := w.Commit()
					if err != nil {
						return errorFrame(r.id, err)
					}
					return jsonFrame(proto.TypeOK, r.id, proto.FileWriteOK{Bytes: n})
				}
			case <-r.abort:
				w.Abort()
				return errorFrame(r.id, proto.Errorf(proto.CodeIOError, "write cancelled by the host before EOF"))
			case <-ss.done:
				w.Abort()
				return errorFrame(r.id, proto.Errorf(proto.CodeIOError, "connection closed before EOF"))
			}
		}
	})
}

func (ss *session) handleFileRead(f proto.Frame) {
	var req proto.FileRead
	if !ss.decode(f, &req) {
		return
	}
	r := ss.register(f.RequestID, proto.TypeFileRead, false)
	if r == nil {
		return
	}
	ss.run(r, func(r *request) proto.Frame {
		ok, err := fs.Read(&req, func(b []byte, eof bool) error {
			return ss.sendData(r.id, proto.StreamStdin, b, eof)
		})
		if err != nil {
			return errorFrame(r.id, err)
		}
		return jsonFrame(proto.TypeOK, r.id, ok)
	})
}
