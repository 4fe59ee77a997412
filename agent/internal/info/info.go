// Package info answers HELLO, HEALTH and TIME_SYNC, and parses the kernel
// command line.
package info

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/proto"
)

// AgentVersion is the agent's version (not the protocol's).
const AgentVersion = "0.1.0"

// Caps lists the features this agent supports; the host gates on them.
func Caps() []string {
	return []string{"exec", "exec.stdin", "exec.signal", "file.read", "file.write", "health", "time.sync", "poweroff", "proc", "proc.pty", "file.range", "file.abort", "net.config", "fs.freeze"}
}

// Init modes reported in HELLO.
const (
	InitFast    = "fast"    // the agent is PID 1
	InitFull    = "full"    // systemd is PID 1 and runs the agent as a service
	InitService = "service" // not PID 1 and not booted by islet (development)
)

// Hello builds the HELLO reply.
func Hello(initMode string, pid int, bootMs int64) proto.HelloReply {
	return proto.HelloReply{Protocol: proto.ProtocolVersion, Agent: AgentVersion, Caps: Caps(),
		InitMode: initMode, PID: pid, BootMs: bootMs}
}

// Cmdline parses a kernel command line into key=value pairs; bare words map
// to "". Later keys win.
func Cmdline(s string) map[string]string {
	m := make(map[string]string)
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// ReadCmdline reads procDir/cmdline.
func ReadCmdline(procDir string) map[string]string {
	b, _ := os.ReadFile(filepath.Join(procDir, "cmdline"))
	return Cmdline(string(b))
}

// Uptime reads procDir/uptime.
func Uptime(procDir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(procDir, "uptime"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty uptime")
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(sec * float64(time.Second)), nil
}

// Health builds the HEALTH reply from procDir (normally /proc).
func Health(procDir string, clk clock.Clock) (proto.HealthOK, error) {
	h := proto.HealthOK{Agent: AgentVersion, Protocol: proto.ProtocolVersion, TimeUnixMs: clk.Now().UnixMilli()}
	up, err := Uptime(procDir)
	if err != nil {
		return h, fmt.Errorf("uptime: %v", err)
	}
	h.UptimeMs = up.Milliseconds()
	mem, err := os.ReadFile(filepath.Join(procDir, "meminfo"))
	if err != nil {
		return h, fmt.Errorf("meminfo: %v", err)
	}
	// Only two keys matter: scan lines without splitting all ~50 into
	// fields (HEALTH is the host's liveness probe; keep it light).
	for len(mem) > 0 {
		line := mem
		if i := bytes.IndexByte(mem, '\n'); i >= 0 {
			line, mem = mem[:i], mem[i+1:]
		} else {
			mem = nil
		}
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("MemTotal:")):
			dst = &h.MemTotalKb
		case bytes.HasPrefix(line, []byte("MemAvailable:")):
			dst = &h.MemAvailableKb
		default:
			continue
		}
		if f := bytes.Fields(line); len(f) >= 2 {
			*dst, _ = strconv.ParseInt(string(f[1]), 10, 64)
		}
	}
	load, err := os.ReadFile(filepath.Join(procDir, "loadavg"))
	if err != nil {
		return h, fmt.Errorf("loadavg: %v", err)
	}
	if f := strings.Fields(string(load)); len(f) > 0 {
		h.Load1, _ = strconv.ParseFloat(f[0], 64)
	}
	return h, nil
}

// TimeSync sets the clock to the host's time through set and returns the
// skew (guest minus host, before the change).
func TimeSync(req proto.TimeSync, clk clock.Clock, set func(time.Time) error) (proto.TimeSyncOK, error) {
	host := time.UnixMilli(req.UnixMs)
	skew := clk.Now().Sub(host)
	if err := set(host); err != nil {
		return proto.TimeSyncOK{}, err
	}
	return proto.TimeSyncOK{SkewMs: skew.Milliseconds()}, nil
}
