package server

import (
	"islet/agent/internal/netcfg"
	"islet/agent/internal/proto"
)

// handleNetConfig re-addresses eth0 in the dispatch loop: a few system
// calls, and the host sends nothing else to a guest it is re-addressing.
func (ss *session) handleNetConfig(f proto.Frame) {
	var req proto.NetConfig
	if !ss.decode(f, &req) {
		return
	}
	mac, err := netcfg.ParseMAC(req.MAC)
	if err != nil {
		ss.sendError(f.RequestID, proto.CodeInvalidArgument, "%v", err)
		return
	}
	c, err := netcfg.Parse(req.Net)
	if err != nil {
		ss.sendError(f.RequestID, proto.CodeInvalidArgument, "%v", err)
		return
	}
	if ss.s.cfg.Readdress == nil {
		ss.sendError(f.RequestID, proto.CodeUnknownType, "this agent cannot re-address its network")
		return
	}
	if err := ss.s.cfg.Readdress(mac, c); err != nil {
		ss.sendError(f.RequestID, proto.CodeForErrno(err, proto.CodeIOError), "re-address %s: %v", netcfg.DefaultInterface, err)
		return
	}
	_ = ss.sendJSON(proto.TypeOK, f.RequestID, proto.Empty{})
}
