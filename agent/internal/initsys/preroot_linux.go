//go:build linux

package initsys

// Pre-root templates (docs/pool.md): stage 1 booted with islet.preroot=1
// stops before mounting the root filesystem and answers the host on the
// agent port. The host saves the VM there; every restore of that state then
// gets its own disk behind the same virtio-blk device and a ROOT request
// naming its identity. The kernel probed the template's disk at boot
// (capacity, first sectors in the block device's page cache, partition
// scan), so stage 1 unbinds the disk driver before the save: the old block
// device and its cache are gone from the saved state, and ROOT binds the
// driver again, whose probe reads the capacity and first sectors of the disk
// that is there now. With the command line rewritten to the workspace's
// hostname and network, stage 1 mounts the disk, switches root and sets PID
// 1 up (fast init) before it replies, and then serves the same connection as
// the PID 1 agent: no exec, no second handshake (the process is the same
// binary the agent would be). Full init goes on as after a cold boot.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"islet/agent/internal/clock"
	"islet/agent/internal/info"
	"islet/agent/internal/logger"
	"islet/agent/internal/netcfg"
	"islet/agent/internal/proto"
	"islet/agent/internal/transport"
)

const (
	// PrerootWord on the command line makes stage 1 wait for ROOT.
	PrerootWord     = "islet.preroot"
	virtioBlkDriver = "/sys/bus/virtio/drivers/virtio_blk"
	virtioDevices   = "/sys/bus/virtio/devices"
	virtioBlkID     = "0x0002" // VIRTIO_ID_BLOCK
	// cmdlineCopy holds the rewritten command line, bind-mounted on /proc/cmdline.
	cmdlineCopy  = "/islet-cmdline"
	blkFlsBuf    = 0x1261 // BLKFLSBUF
	prerootRetry = 10 * time.Millisecond
)

var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$`)

// AwaitRoot serves HELLO, TIME_SYNC and ROOT on the agent port until a ROOT
// succeeds, and returns the open port; switched: root is switched and PID 1
// set up, and this process serves the port as the agent. It never returns on
// failure to open the port (Fatal): without it nothing can reach the guest.
func AwaitRoot(logf logger.Logf) (port *os.File, switched bool) {
	var tp transport.Port
	for tp == nil {
		p, err := transport.Open(transport.DefaultPortName)
		if err != nil {
			logf("pre-root: open port: %v", err)
			time.Sleep(prerootRetry)
			continue
		}
		tp = p
	}
	f, ok := tp.(*os.File)
	if !ok {
		Fatal(logf, "pre-root: the port is not a file")
	}
	logf("pre-root: waiting for the host to name a root disk")
	for {
		// A new reader per host connection: a client that went away mid-frame leaves no stale bytes.
		r := proto.NewReader(f)
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					logf("pre-root: %v", err)
				}
				break
			}
			if done, sw := servePreroot(logf, f, fr); done {
				return f, sw
			}
		}
		time.Sleep(prerootRetry) // no host client connected
	}
}

// servePreroot answers one frame; done once ROOT succeeded, switched when
// root is switched and PID 1 set up in this process.
func servePreroot(logf logger.Logf, w io.Writer, f proto.Frame) (done, switched bool) {
	reply := func(t proto.Type, v interface{}) {
		fr, err := proto.JSONFrame(t, f.RequestID, v)
		if err == nil {
			var b []byte
			if b, err = proto.AppendFrame(nil, fr); err == nil {
				_, err = w.Write(b)
			}
		}
		if err != nil {
			logf("pre-root: reply: %v", err)
		}
	}
	fail := func(code proto.Code, err error) {
		reply(proto.TypeError, proto.ErrorReply{Code: code, Message: err.Error()})
	}
	switch f.Type {
	case proto.TypeHello:
		var bootMs int64
		if up, err := info.Uptime("/proc"); err == nil {
			bootMs = up.Milliseconds()
		}
		reply(proto.TypeHello, proto.HelloReply{Protocol: proto.ProtocolVersion, Agent: info.AgentVersion,
			Caps: []string{proto.CapPreroot, "time.sync"}, InitMode: proto.CapPreroot, PID: os.Getpid(), BootMs: bootMs})
	case proto.TypeTimeSync:
		var req proto.TimeSync
		if err := proto.DecodeJSON(f.Payload, &req); err != nil {
			fail(proto.CodeInvalidArgument, err)
			return false, false
		}
		if err := req.Validate(proto.Limits{}); err != nil {
			fail(proto.CodeInvalidArgument, err)
			return false, false
		}
		ok, err := info.TimeSync(req, clock.Real{}, info.SetSystemTime)
		if err != nil {
			fail(proto.CodeOf(err), err)
			return false, false
		}
		reply(proto.TypeOK, ok)
	case proto.TypeRoot:
		var req proto.Root
		if err := proto.DecodeJSON(f.Payload, &req); err != nil {
			fail(proto.CodeInvalidArgument, err)
			return false, false
		}
		ok, switched, err := enterRoot(logf, req)
		if err != nil {
			logf("pre-root: %v", err)
			fail(proto.CodeOf(err), err)
			return false, false
		}
		reply(proto.TypeOK, ok)
		return true, switched
	default:
		fail(proto.CodeUnknownType, fmt.Errorf("%s before the root filesystem is mounted", f.Type))
	}
	return false, false
}

// enterRoot does a ROOT: the disk probed afresh, and with fast init mounted
// and made the root, with PID 1 set up. An error leaves nothing mounted and
// stage 1 waiting for another ROOT; once the root is switched there is no
// way back, and a failure is fatal (the host sees the VM end and boots cold).
func enterRoot(logf logger.Logf, req proto.Root) (proto.RootOK, bool, error) {
	t := time.Now()
	ms := map[string]int64{}
	step := func(name string) {
		now := time.Now()
		ms[name] = now.Sub(t).Milliseconds()
		t = now
	}
	ok, err := prepareRoot(req, step)
	if err != nil {
		return ok, false, err
	}
	logf("pre-root: root is %s (%d bytes)", ok.Device, ok.DiskBytes)
	p, err := planRoot(info.ReadCmdline("/proc"))
	if err != nil {
		return ok, false, proto.Errorf(proto.CodeInvalidArgument, "%v", err)
	}
	if p.mode == info.InitFull {
		ok.Ms = ms
		return ok, false, nil
	}
	if err := mountNewRoot(logf, p.root, p.fstype, step); err != nil {
		return ok, false, err
	}
	if req.MachineID != "" {
		if err := writeIdentity(NewRoot, req.Hostname, req.MachineID); err != nil {
			syscall.Unmount(NewRoot, 0)
			return ok, false, err
		}
	}
	keys, _ := filepath.Glob(NewRoot + "/etc/ssh/ssh_host_*_key")
	ok.SSHHostKeys = len(keys) > 0
	if err := moveAndSwitch(); err != nil {
		Fatal(logf, "pre-root: %v", err)
	}
	os.Clearenv()
	for _, kv := range agentEnv {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	step("switch")
	setupPID1(logf, step, func() { rootNetwork(logf, earlyNet, req.Net) })
	var bootMs int64
	if up, err := info.Uptime("/proc"); err == nil {
		bootMs = up.Milliseconds()
	}
	h := info.Hello(info.InitFast, os.Getpid(), bootMs)
	ok.Hello, ok.Ms = &h, ms
	return ok, true, nil
}

var machineIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// writeIdentity gives the disk under root the workspace's hostname and machine-id.
func writeIdentity(root, hostname, machineID string) error {
	for name, v := range map[string]string{"hostname": hostname, "machine-id": machineID} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(v+"\n"), 0o644); err != nil {
			return fmt.Errorf("write /etc/%s: %v", name, err)
		}
	}
	return nil
}

// prepareRoot checks the request, reseeds the RNG, probes the disk afresh
// and rewrites the command line. Nothing is mounted yet: a failure leaves
// stage 1 waiting for another ROOT.
func prepareRoot(req proto.Root, step func(string)) (proto.RootOK, error) {
	if !hostnameRE.MatchString(req.Hostname) {
		return proto.RootOK{}, proto.Errorf(proto.CodeInvalidArgument, "invalid hostname %q", req.Hostname)
	}
	if req.MachineID != "" && !machineIDRE.MatchString(req.MachineID) {
		return proto.RootOK{}, proto.Errorf(proto.CodeInvalidArgument, "machine-id: want 32 lowercase hex digits")
	}
	if req.Net != "" {
		if _, err := netcfg.Parse(req.Net); err != nil {
			return proto.RootOK{}, proto.Errorf(proto.CodeInvalidArgument, "net: %v", err)
		}
	}
	seed, err := hex.DecodeString(req.Entropy)
	if err != nil || len(seed) > proto.MaxRootEntropy {
		return proto.RootOK{}, proto.Errorf(proto.CodeInvalidArgument, "entropy: want at most %d hex bytes", proto.MaxRootEntropy)
	}
	if err := os.WriteFile("/dev/urandom", seed, 0); err != nil {
		return proto.RootOK{}, fmt.Errorf("reseed: %v", err)
	}
	step("reseed")
	dev, err := reprobeDisk()
	if err != nil {
		return proto.RootOK{}, err
	}
	step("reprobe")
	size, err := flushAndSize(dev)
	if err != nil {
		return proto.RootOK{}, err
	}
	step("flush")
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return proto.RootOK{}, err
	}
	line := RewriteCmdline(string(b), map[string]string{"islet.hostname": req.Hostname, "islet.net": req.Net, "islet.root": dev})
	if err := os.WriteFile(cmdlineCopy, []byte(line+"\n"), 0o444); err != nil {
		return proto.RootOK{}, err
	}
	// Everything read from here on (stage 1, the agent's hostname and network, systemd) sees the workspace's line.
	if err := syscall.Mount(cmdlineCopy, "/proc/cmdline", "", syscall.MS_BIND, ""); err != nil {
		return proto.RootOK{}, fmt.Errorf("bind the new command line on /proc/cmdline: %v", err)
	}
	return proto.RootOK{Device: dev, DiskBytes: size}, nil
}

// RewriteCmdline sets each key of set to its value ("" drops the word) and
// drops PrerootWord, keeping every other word in order.
func RewriteCmdline(line string, set map[string]string) string {
	var out []string
	for _, w := range strings.Fields(line) {
		k, _, _ := strings.Cut(w, "=")
		if _, ok := set[k]; ok || k == PrerootWord {
			continue
		}
		out = append(out, w)
	}
	keys := []string{"islet.root", "islet.hostname", "islet.net"}
	for _, k := range keys {
		if v := set[k]; v != "" {
			out = append(out, k+"="+v)
		}
	}
	return strings.Join(out, " ")
}

// earlyNet is the islet.net value the template's stage 1 configured eth0
// from before it was saved ("" for none).
var earlyNet string

// prepareTemplate readies stage 1 for the save, before it waits for ROOT:
// the disk is taken from its driver, so the saved state holds no block
// device at all (no capacity, no cached block of the template's throwaway
// disk; ROOT probes the disk behind the device then), and eth0 is brought
// up with the template's address, which a restore keeps when ROOT names the
// same one (bringing a link up is costly under TCG; its state is in the save).
func prepareTemplate(logf logger.Logf, cmd map[string]string) {
	devs, err := virtioBlkDevices()
	if err == nil {
		for _, d := range devs {
			if err := unbindDisk(d); err != nil {
				logf("pre-root: %v", err) // ROOT unbinds it then
			}
		}
	} else {
		logf("pre-root: %v", err)
	}
	if err := loopbackUp(); err != nil {
		logf("pre-root: lo up: %v", err)
	}
	if cfg, ok, err := netcfg.FromCmdline(cmd); err != nil {
		logf("pre-root: network: %v", err)
	} else if ok {
		if err := netcfg.Apply(netcfg.DefaultInterface, cfg); err != nil {
			logf("pre-root: network: %v", err)
		} else {
			earlyNet = cmd[netcfg.CmdlineKey]
		}
	}
}

// rootNetwork gives eth0 the workspace's network (want, an islet.net value)
// after ROOT: nothing to do on the link when the template's is the same, a
// re-addressing when it differs, and the name servers on the new root.
func rootNetwork(logf logger.Logf, early, want string) {
	cfg, ok, err := netcfg.FromCmdline(map[string]string{netcfg.CmdlineKey: want})
	if err != nil || !ok {
		if err != nil {
			logf("network: %v", err)
		}
		return
	}
	switch {
	case early == "":
		err = netcfg.Apply(netcfg.DefaultInterface, cfg)
	case early != want:
		var b []byte
		var mac [6]byte
		if b, err = os.ReadFile("/sys/class/net/" + netcfg.DefaultInterface + "/address"); err == nil {
			if mac, err = netcfg.ParseMAC(strings.TrimSpace(string(b))); err == nil {
				err = netcfg.Readdress(netcfg.DefaultInterface, mac, cfg)
			}
		}
	}
	if err != nil {
		logf("network: %v", err)
		return
	}
	if err := netcfg.WriteResolvConf(netcfg.ResolvConf, cfg); err != nil {
		logf("network: %s: %v", netcfg.ResolvConf, err)
	}
}

// virtioBlkDevices lists the virtio devices of the block type, bound to a driver or not.
func virtioBlkDevices() ([]string, error) {
	ents, err := os.ReadDir(virtioDevices)
	if err != nil {
		return nil, fmt.Errorf("virtio devices: %v", err)
	}
	var devs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(virtioDevices, e.Name(), "device"))
		if err == nil && strings.TrimSpace(string(b)) == virtioBlkID {
			devs = append(devs, e.Name())
		}
	}
	return devs, nil
}

// unbindDisk takes virtio device d from virtio_blk, if it is bound.
func unbindDisk(d string) error {
	if _, err := os.Stat(filepath.Join(virtioBlkDriver, d)); err != nil {
		return nil
	}
	if err := os.WriteFile(filepath.Join(virtioBlkDriver, "unbind"), []byte(d), 0); err != nil {
		return fmt.Errorf("unbind %s: %v", d, err)
	}
	return nil
}

// reprobeDisk binds the virtio-blk device to its driver afresh (unbinding
// it first if a template from before prepareTemplate left it bound), then
// returns the root disk's device node. Only one disk is attached (the
// root); its name after the new probe is read from sysfs.
func reprobeDisk() (string, error) {
	devs, err := virtioBlkDevices()
	if err != nil {
		return "", err
	}
	if len(devs) != 1 {
		return "", fmt.Errorf("want one virtio-blk disk, found %d", len(devs))
	}
	d := devs[0]
	if err := unbindDisk(d); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(virtioBlkDriver, "bind"), []byte(d), 0); err != nil {
		return "", fmt.Errorf("bind %s: %v", d, err)
	}
	blocks, err := os.ReadDir(filepath.Join(virtioDevices, d, "block"))
	if err != nil || len(blocks) != 1 {
		return "", fmt.Errorf("%s has no block device after the new probe (%v)", d, err)
	}
	dev := "/dev/" + blocks[0].Name()
	deadline := time.Now().Add(RootWait)
	for {
		if _, err := os.Stat(dev); err == nil {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not appear within %v", dev, RootWait)
		}
		time.Sleep(RootPoll)
	}
}

// flushAndSize drops the device's page cache (BLKFLSBUF: a no-op on the
// fresh device the new probe made, kept so that no cached block of any
// earlier disk can survive) and returns its capacity, checking that it
// holds an ext4 filesystem.
func flushAndSize(dev string) (uint64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkFlsBuf, 0); e != 0 {
		return 0, fmt.Errorf("BLKFLSBUF %s: %v", dev, e)
	}
	var size uint64
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64 %s: %v", dev, e)
	}
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, fmt.Errorf("read superblock of %s: %v", dev, err)
	}
	if _, _, err := parseExt4Super(sb); err != nil {
		return 0, proto.Errorf(proto.CodeInvalidArgument, "%s: %v", dev, err)
	}
	return size, nil
}
