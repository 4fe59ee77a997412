package server

// Background process requests (caps "proc"). The table belongs to the
// Server, not to a session: processes and their output outlive the host
// connection that started them.

import (
	"time"

	"islet/agent/internal/exec"
	"islet/agent/internal/proto"
)

func (ss *session) handleProcStart(f proto.Frame) {
	var req proto.ProcStart
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Start(&req, ss.s.cfg.Limits)
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.ProcStarted{ID: pr.ID(), PID: pr.PID()})
}

func (ss *session) handleProcList(f proto.Frame) {
	var req proto.ProcList
	if !ss.decode(f, &req) {
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.ProcListOK{Procs: ss.s.procs.List()})
}

func (ss *session) handleProcOutput(f proto.Frame) {
	var req proto.ProcOutput
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Get(req.ID)
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	r := ss.register(f.RequestID, proto.TypeProcOutput, false)
	if r == nil {
		return
	}
	ss.run(r, func(r *request) proto.Frame {
		parts, ok, err := pr.Read(ss.s.cfg.Clock, req.Offset, req.Limit(), time.Duration(req.WaitMs)*time.Millisecond, ss.done)
		if err != nil {
			return errorFrame(r.id, err)
		}
		for _, p := range parts {
			for b := p.B; len(b) > 0; {
				n := len(b)
				if n > proto.DataChunk {
					n = proto.DataChunk
				}
				if err := ss.sendData(r.id, p.Stream, b[:n], false); err != nil {
					return errorFrame(r.id, err)
				}
				b = b[n:]
			}
		}
		return jsonFrame(proto.TypeOK, r.id, ok)
	})
}

func (ss *session) handleProcWrite(f proto.Frame) {
	var req proto.ProcWrite
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Get(req.ID)
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	r := ss.register(f.RequestID, proto.TypeProcWrite, false)
	if r == nil {
		return
	}
	ss.run(r, func(r *request) proto.Frame {
		n, err := pr.Write(req.Data, req.Close)
		if err != nil {
			return errorFrame(r.id, err)
		}
		return jsonFrame(proto.TypeOK, r.id, proto.ProcWriteOK{Bytes: n})
	})
}

func (ss *session) handleProcSignal(f proto.Frame) {
	var req proto.ProcSignal
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Get(req.ID)
	if err == nil {
		var sig = exec.ParseSignalOrZero(req.Signal)
		err = pr.Signal(sig)
	}
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, pr.Info(ss.s.cfg.Clock))
}

func (ss *session) handleProcWait(f proto.Frame) {
	var req proto.ProcWait
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Get(req.ID)
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	r := ss.register(f.RequestID, proto.TypeProcWait, false)
	if r == nil {
		return
	}
	ss.run(r, func(r *request) proto.Frame {
		return jsonFrame(proto.TypeOK, r.id, pr.Wait(ss.s.cfg.Clock, time.Duration(req.TimeoutMs)*time.Millisecond, ss.done))
	})
}

func (ss *session) handleProcResize(f proto.Frame) {
	var req proto.ProcResize
	if !ss.decode(f, &req) {
		return
	}
	pr, err := ss.s.procs.Get(req.ID)
	if err == nil {
		err = pr.Resize(req.PtySize)
	}
	if err != nil {
		_ = ss.send(errorFrame(f.RequestID, err))
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.Empty{})
}
