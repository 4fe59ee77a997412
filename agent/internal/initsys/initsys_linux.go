//go:build linux

// Package initsys does what PID 1 must: the initramfs stage (mount, load
// modules, switch root, exec) and the PID 1 agent's setup (mounts,
// hostname, signals), plus powering off. PID 1 must never exit (the kernel
// panics), so fatal errors reboot instead, which QEMU's -no-reboot turns
// into an exit.
package initsys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"islet/agent/internal/clock"
	"islet/agent/internal/exec"
	"islet/agent/internal/info"
	"islet/agent/internal/logger"
	"islet/agent/internal/netcfg"
)

// Boot contract (see agent/README.md).
const (
	InitramfsMarker = "/islet-initramfs"
	ModulesDir      = "/lib/modules/islet"
	NewRoot         = "/newroot"
	AgentPath       = "/usr/local/bin/islet-agent"
	SystemdPath     = "/sbin/init"
	// InjectedAgentDir is a tmpfs that stage 1 mounts on the new root's /run
	// when islet.agent=initramfs; the agent is copied there from /init.
	InjectedAgentDir   = "/run/islet"
	InjectedAgentPath  = InjectedAgentDir + "/islet-agent"
	AgentFromInitramfs = "initramfs"
	DefaultRoot        = "/dev/vda"
	DefaultRootFS      = "ext4"
	RootWait           = 5 * time.Second
	RootPoll           = 10 * time.Millisecond
)

const sysFinitModule = 313 // x86_64; Go 1.19's syscall package lacks it

// IsInitramfs reports whether this is the initramfs stage.
func IsInitramfs() bool {
	_, err := os.Stat(InitramfsMarker)
	return err == nil
}

// console writes to /dev/console, opened on first use (it may not exist
// before devtmpfs is mounted), falling back to stderr.
type console struct {
	mu sync.Mutex
	f  *os.File
}

// Console returns a writer for PID 1's log lines.
func Console() io.Writer { return &console{} }

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		f, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0)
		if err != nil {
			return os.Stderr.Write(p)
		}
		c.f = f
	}
	return c.f.Write(p)
}

// Fatal logs msg and reboots. It never returns.
func Fatal(logf logger.Logf, format string, args ...interface{}) {
	logf("FATAL: "+format, args...)
	logf("FATAL: rebooting (QEMU -no-reboot exits)")
	syscall.Sync()
	for {
		if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART); err != nil {
			logf("reboot: %v", err)
		}
		time.Sleep(time.Second) // never return from PID 1
	}
}

func mountIfNeeded(logf logger.Logf, source, target, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %v", target, err)
	}
	if isMountpoint(target) {
		return nil
	}
	err := syscall.Mount(source, target, fstype, flags, data)
	if err == syscall.EBUSY {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s: %v", fstype, target, err)
	}
	return nil
}

// isMountpoint: a directory on a different device from its parent.
func isMountpoint(path string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(path, &st) != nil || syscall.Stat(filepath.Join(path, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

func mountBasic(logf logger.Logf) error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := mountIfNeeded(logf, m.src, m.dst, m.fs, syscall.MS_NOSUID, ""); err != nil {
			return err
		}
	}
	return nil
}

// LoadModules loads dir/<name>.ko for each name in dir/order, in order.
func LoadModules(logf logger.Logf, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	params := []byte{0} // "" : a NULL param pointer gives EFAULT
	for _, name := range strings.Fields(string(b)) {
		f, err := os.Open(filepath.Join(dir, name+".ko"))
		if err != nil {
			return fmt.Errorf("module %s: %v", name, err)
		}
		_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
		f.Close()
		if e != 0 && e != syscall.EEXIST {
			return fmt.Errorf("finit_module %s: %v", name, e)
		}
	}
	return nil
}

// Stage1 is the initramfs /init: mount, load modules, mount the root disk,
// switch root and exec the agent (fast) or systemd (full). It returns only
// after a pre-root restore (islet.preroot): then the ROOT request already
// mounted the workspace's disk, switched root and set PID 1 up in this
// process, and the caller serves the returned port as the PID 1 agent.
func Stage1(logf logger.Logf) *os.File {
	if err := mountBasic(logf); err != nil {
		Fatal(logf, "%v", err)
	}
	if err := LoadModules(logf, ModulesDir); err != nil {
		Fatal(logf, "%v", err)
	}
	if cmd := info.ReadCmdline("/proc"); hasKey(cmd, PrerootWord) {
		prepareTemplate(logf, cmd)
		port, switched := AwaitRoot(logf)
		if switched {
			return port
		}
		// systemd would keep an inherited port open and its agent service could not open it.
		port.Close()
	}
	p, err := planRoot(info.ReadCmdline("/proc"))
	if err != nil {
		Fatal(logf, "%v", err)
	}
	if err := mountNewRoot(logf, p.root, p.fstype, func(string) {}); err != nil {
		Fatal(logf, "%v", err)
	}
	target := p.target
	if p.inject {
		if err := InjectAgent("/init", NewRoot); err != nil {
			Fatal(logf, "inject the agent: %v", err)
		}
		target = InjectedAgentPath
	}
	if err := moveAndSwitch(); err != nil {
		Fatal(logf, "%v", err)
	}
	if _, err := os.Stat(target); err != nil {
		if target == AgentPath {
			Fatal(logf, "islet.init=%s: %v (an image without islet's agent boots only with islet.agent=initramfs, which islet uses for imported images)", p.mode, err)
		}
		Fatal(logf, "islet.init=%s: %v", p.mode, err)
	}
	err = syscall.Exec(target, []string{target}, agentEnv)
	Fatal(logf, "exec %s: %v", target, err)
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// agentEnv is the environment the agent runs with (exec'd or, after a pre-root restore, set in place).
var agentEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=linux"}

// rootPlan is what the command line says about the root disk and what runs on it.
type rootPlan struct {
	root, fstype, mode, target string
	inject                     bool
}

func planRoot(cmd map[string]string) (rootPlan, error) {
	p := rootPlan{root: cmd["islet.root"], fstype: cmd["islet.rootfstype"], mode: cmd["islet.init"], target: AgentPath}
	switch cmd["islet.agent"] {
	case "", "image":
	case AgentFromInitramfs:
		p.inject = true
	default:
		return p, fmt.Errorf("islet.agent=%q: want image or initramfs", cmd["islet.agent"])
	}
	if p.root == "" {
		p.root = DefaultRoot
	}
	if p.fstype == "" {
		p.fstype = DefaultRootFS
	}
	switch p.mode {
	case "", info.InitFast:
	case info.InitFull:
		if p.inject {
			// systemd would need a unit for the agent; the host only injects into fast images.
			return p, fmt.Errorf("islet.agent=initramfs needs islet.init=fast")
		}
		p.target = SystemdPath
	default:
		return p, fmt.Errorf("islet.init=%q: want fast or full", p.mode)
	}
	return p, nil
}

// mountNewRoot waits for the root device, mounts it on NewRoot and grows
// its filesystem to the disk. Nothing is left mounted on failure.
func mountNewRoot(logf logger.Logf, root, fstype string, step func(string)) error {
	deadline := time.Now().Add(RootWait)
	for {
		if _, err := os.Stat(root); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root device %s did not appear within %v", root, RootWait)
		}
		time.Sleep(RootPoll)
	}
	if err := os.MkdirAll(NewRoot, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %v", NewRoot, err)
	}
	if err := syscall.Mount(root, NewRoot, fstype, 0, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %v", root, fstype, NewRoot, err)
	}
	step("mount")
	if fstype == "ext4" {
		if before, after, err := GrowFS(NewRoot, root); err != nil {
			logf("grow root filesystem: %v", err) // the VM still boots, just smaller
		} else if after > before {
			logf("root filesystem grown from %d to %d blocks", before, after)
		}
		step("grow")
	}
	return nil
}

// moveAndSwitch moves /dev, /proc and /sys under NewRoot and makes it the root.
func moveAndSwitch() error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		dst := NewRoot + d
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %v", dst, err)
		}
		if err := syscall.Mount(d, dst, "", syscall.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s: %v", d, dst, err)
		}
	}
	if err := switchRoot(NewRoot); err != nil {
		return fmt.Errorf("switch root: %v", err)
	}
	return nil
}

// InjectAgent copies this binary (src, the initramfs /init) to
// InjectedAgentPath under root, on a tmpfs mounted on root's /run: the
// image's own files are not touched, and the copy is gone at power off.
// The PID 1 agent later finds /run already a mount point and keeps it.
func InjectAgent(src, root string) error {
	run := root + "/run"
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %v", run, err)
	}
	if err := syscall.Mount("tmpfs", run, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %v", run, err)
	}
	return copyExecutable(src, root+InjectedAgentPath)
}

func copyExecutable(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %v", src, dst, err)
	}
	return out.Close()
}

// switchRoot makes dir the root, as busybox switch_root does (the old
// initramfs contents are left in place: they are small).
func switchRoot(dir string) error {
	if err := syscall.Chdir(dir); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %v", dir, err)
	}
	if err := syscall.Chroot("."); err != nil {
		return err
	}
	return syscall.Chdir("/")
}

// pid1Mounts are the filesystems the PID 1 agent mounts after the basic
// ones. devpts must not be nodev: its files are the terminals' device nodes,
// and opening a device on a nodev mount fails with EACCES, even for root.
var pid1Mounts = []struct {
	src, dst, fs string
	flags        uintptr
	data         string
}{
	{"devpts", "/dev/pts", "devpts", syscall.MS_NOSUID | syscall.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777"},
}

// SetupPID1 prepares the system for the PID 1 agent (fast mode). Failures
// of optional steps are logged, not fatal.
func SetupPID1(logf logger.Logf) {
	setupPID1(logf, func(string) {}, func() { NetworkUp(logf, info.ReadCmdline("/proc")) })
}

// setupPID1 is SetupPID1 with step called after each part (the pre-root
// bench figures) and network doing the network part.
func setupPID1(logf logger.Logf, step func(string), network func()) {
	if err := mountBasic(logf); err != nil {
		logf("%v", err)
	}
	for _, m := range pid1Mounts {
		if err := mountIfNeeded(logf, m.src, m.dst, m.fs, m.flags, m.data); err != nil {
			logf("%v", err)
		}
	}
	step("mounts")
	if h := info.ReadCmdline("/proc")["islet.hostname"]; h != "" {
		if err := syscall.Sethostname([]byte(h)); err != nil {
			logf("sethostname %q: %v", h, err)
		}
	}
	if err := loopbackUp(); err != nil {
		logf("lo up: %v", err)
	}
	step("lo")
	network()
	step("net")
	// The kernel delivers to PID 1 only signals it handles, and Go handles
	// them all: an unhandled SIGTERM would make the Go runtime exit, which
	// panics the kernel. Catch the usual ones and log them instead. (A
	// caught handler, unlike SIG_IGN, is reset to default in children.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range sigs {
			logf("PID 1 ignoring signal %v", s)
		}
	}()
}

// NetworkUp configures eth0 from islet.net on the kernel command line (no
// islet.net: the interface stays down). Failures are logged: the agent must
// still come up so the host can see what went wrong.
func NetworkUp(logf logger.Logf, cmd map[string]string) {
	cfg, ok, err := netcfg.FromCmdline(cmd)
	if err != nil {
		logf("network: %v", err)
		return
	}
	if !ok {
		return
	}
	if err := netcfg.Apply(netcfg.DefaultInterface, cfg); err != nil {
		logf("network: %v", err)
		return
	}
	if err := netcfg.WriteResolvConf(netcfg.ResolvConf, cfg); err != nil {
		logf("network: %s: %v", netcfg.ResolvConf, err)
	}
}

// loopbackUp sets IFF_UP on lo.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}

// PowerOffPID1 ends every other process, makes the root read-only and
// reboots; with -no-reboot QEMU exits. The short pause lets the OK reply
// leave the virtqueue first. The read-only remount commits ext4's journal
// and marks the filesystem clean, so the next mount (a start restored from
// a pre-root template) has no journal to replay; if it cannot be done in
// time (a process that will not die), a sync has to do.
func PowerOffPID1() error {
	time.Sleep(50 * time.Millisecond)
	syscall.Kill(-1, syscall.SIGKILL) // not PID 1 itself; the reaper collects them
	syscall.Sync()
	deadline := time.Now().Add(remountWait)
	for {
		err := syscall.Mount("", "/", "", syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
		if err != syscall.EBUSY || time.Now().After(deadline) {
			break
		}
		time.Sleep(RootPoll)
	}
	return syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
}

// remountWait bounds how long a power-off waits for the killed processes to let go of the root.
const remountWait = time.Second

// PowerOffService asks systemd to power off; if that fails and we are
// root, it falls back to the reboot syscall.
func PowerOffService(r *exec.Reaper, logf logger.Logf) error {
	time.Sleep(50 * time.Millisecond)
	p, err := exec.Start(r, clock.Real{}, exec.Spec{Argv: []string{"systemctl", "poweroff"}, Env: exec.MergeEnv(nil), Dir: "/", MaxOutput: 4096})
	if err == nil {
		var out bytes.Buffer
		res := p.Wait(func(_ uint16, b []byte, _ bool) { out.Write(b) })
		if res.ExitCode != nil && *res.ExitCode == 0 {
			return nil
		}
		err = fmt.Errorf("systemctl poweroff failed: %s", strings.TrimSpace(out.String()))
	}
	if os.Geteuid() != 0 {
		return err
	}
	logf("%v; falling back to reboot(2)", err)
	return PowerOffPID1()
}
