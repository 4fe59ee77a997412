package server

import (
	"sync"
	"time"

	"islet/agent/internal/logger"
	"islet/agent/internal/proto"
)

// freezeDeadlines holds, for each frozen filesystem, the timer that thaws
// it if the host does not: a frozen root makes every writer in the guest
// wait, the agent's own helpers included.
type freezeDeadlines struct {
	mu     sync.Mutex
	timers map[string]*time.Timer
}

func (d *freezeDeadlines) arm(path string, after time.Duration, thaw func(string) error, logf logger.Logf) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timers == nil {
		d.timers = map[string]*time.Timer{}
	}
	if t := d.timers[path]; t != nil {
		t.Stop()
	}
	d.timers[path] = time.AfterFunc(after, func() {
		d.mu.Lock()
		delete(d.timers, path)
		d.mu.Unlock()
		logf("fs freeze: %s thawed by its deadline (%v): the host did not", path, after)
		if err := thaw(path); err != nil {
			logf("fs freeze: thaw %s: %v", path, err)
		}
	})
}

func (d *freezeDeadlines) disarm(path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.timers[path]; t != nil {
		t.Stop()
		delete(d.timers, path)
	}
}

// handleFsFreeze freezes in the dispatch loop: the host sends nothing else
// while it takes the snapshot this is for.
func (ss *session) handleFsFreeze(f proto.Frame) {
	var req proto.FsFreeze
	if !ss.decode(f, &req) {
		return
	}
	cfg := ss.s.cfg
	if cfg.Freeze == nil || cfg.Thaw == nil {
		ss.sendError(f.RequestID, proto.CodeUnknownType, "this agent cannot freeze filesystems")
		return
	}
	if err := cfg.Freeze(req.Path); err != nil {
		ss.sendError(f.RequestID, proto.CodeForErrno(err, proto.CodeIOError), "freeze %s: %v", req.Path, err)
		return
	}
	ss.s.thaws.arm(req.Path, time.Duration(req.ThawAfterMs)*time.Millisecond, cfg.Thaw, cfg.Logf)
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.Empty{})
}

func (ss *session) handleFsThaw(f proto.Frame) {
	var req proto.FsThaw
	if !ss.decode(f, &req) {
		return
	}
	cfg := ss.s.cfg
	if cfg.Thaw == nil {
		ss.sendError(f.RequestID, proto.CodeUnknownType, "this agent cannot freeze filesystems")
		return
	}
	ss.s.thaws.disarm(req.Path)
	if err := cfg.Thaw(req.Path); err != nil {
		ss.sendError(f.RequestID, proto.CodeForErrno(err, proto.CodeIOError), "thaw %s: %v", req.Path, err)
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.Empty{})
}
