// Command islet-agent is the islet guest agent. Its role depends on how it
// is started (see agent/README.md): initramfs /init, PID 1 agent, or a
// service under another init.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/exec"
	"islet/agent/internal/fs"
	"islet/agent/internal/info"
	"islet/agent/internal/initsys"
	"islet/agent/internal/logger"
	"islet/agent/internal/netcfg"
	"islet/agent/internal/proto"
	"islet/agent/internal/server"
	"islet/agent/internal/transport"
)

func main() {
	pid1 := os.Getpid() == 1
	fl := flag.NewFlagSet("islet-agent", flag.ContinueOnError)
	portName := fl.String("port", transport.DefaultPortName, "virtio-serial port name, or an absolute device path")
	version := fl.Bool("version", false, "print the version and exit")
	// As PID 1 the kernel may pass unknown boot words as arguments: never
	// exit over them.
	if err := fl.Parse(os.Args[1:]); err != nil && !pid1 {
		os.Exit(2)
	}
	if *version && !pid1 {
		fmt.Printf("islet-agent %s (protocol %d)\n", info.AgentVersion, proto.ProtocolVersion)
		return
	}

	clk := clock.Real{}
	var out io.Writer = os.Stderr
	if pid1 {
		out = initsys.Console()
	}
	logf := logger.RateLimited(logger.ToWriter(out, "islet-agent"), clk, 10*time.Second, 20, 256)

	// Role 1: initramfs /init. Returns only after a pre-root restore switched
	// root in this process, which goes on as the PID 1 agent, set up already.
	var handed *os.File
	if pid1 && initsys.IsInitramfs() {
		handed = initsys.Stage1(logf)
	}

	reaper := exec.NewReaper(logf)
	var initMode string
	var powerOff func() error
	if pid1 { // Role 2: PID 1 agent (islet.init=fast).
		if handed == nil {
			initsys.SetupPID1(logf)
		}
		initMode, powerOff = info.InitFast, initsys.PowerOffPID1
	} else { // Role 3: service (systemd in islet.init=full, or development).
		initMode = info.InitService
		if info.ReadCmdline("/proc")["islet.init"] == info.InitFull {
			initMode = info.InitFull
		}
		powerOff = func() error { return initsys.PowerOffService(reaper, logf) }
	}
	var bootMs int64
	if up, err := info.Uptime("/proc"); err == nil {
		bootMs = up.Milliseconds()
	}
	pid := os.Getpid()
	srv := server.New(server.Config{
		Logf:    logf,
		Clock:   clk,
		Limits:  proto.DefaultLimits(),
		Reaper:  reaper,
		Hello:   func() proto.HelloReply { return info.Hello(initMode, pid, bootMs) },
		ProcDir: "/proc",
		SetTime: info.SetSystemTime,
		Freeze:  fs.Freeze,
		Thaw:    fs.Thaw,
		Readdress: func(mac [6]byte, c netcfg.Config) error {
			if err := netcfg.Readdress(netcfg.DefaultInterface, mac, c); err != nil {
				return err
			}
			return netcfg.WriteResolvConf(netcfg.ResolvConf, c)
		},
		PowerOff: powerOff,
	})
	loop := &transport.Loop{
		Open:  portOpener(*portName, handed),
		Serve: func(c io.ReadWriter) error { return srv.Serve(c) },
		Sleep: clk.Sleep,
		Logf:  logf,
	}
	logf("agent %s serving port %s (init %s, pid %d, up %d ms)", info.AgentVersion, *portName, initMode, pid, bootMs)
	for { // PID 1 must never return from main
		loop.Run(context.Background())
	}
}
