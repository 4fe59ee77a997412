//go:build linux

package exec

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"islet/agent/internal/proto"
)

// Winsize is a terminal size in character cells.
type Winsize struct {
	Cols, Rows uint16
}

type winsize struct{ row, col, xpixel, ypixel uint16 }

func ioctl(fd uintptr, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// SetWinsize sets a terminal's size; the kernel sends SIGWINCH to its
// foreground process group.
func SetWinsize(f *os.File, ws Winsize) error {
	w := winsize{row: ws.Rows, col: ws.Cols}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = ioctl(fd, syscall.TIOCSWINSZ, unsafe.Pointer(&w)) }); err != nil {
		return err
	}
	return ierr
}

// tiocgptpeer is TIOCGPTPEER, _IO('T', 0x41): open the slave of this master
// without a path lookup (so it works whatever is mounted on /dev/pts).
const tiocgptpeer = 0x5441

func openPeer(rc syscall.RawConn) (*os.File, error) {
	var fd uintptr
	var errno syscall.Errno
	if err := rc.Control(func(m uintptr) {
		fd, _, errno = syscall.Syscall(syscall.SYS_IOCTL, m, tiocgptpeer, uintptr(os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC))
	}); err != nil {
		return nil, err
	}
	if errno != 0 {
		return nil, errno
	}
	return os.NewFile(fd, "pty-slave"), nil
}

// openPTY opens a new pseudo-terminal pair: the master (host side of the
// terminal, read and written by the agent) and the slave (the process's
// terminal), sized ws.
func openPTY(ws Winsize) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	var n uint32
	var unlock int32
	rc, err := master.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var ierr error
	_ = rc.Control(func(fd uintptr) {
		if ierr = ioctl(fd, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); ierr == nil {
			ierr = ioctl(fd, syscall.TIOCGPTN, unsafe.Pointer(&n))
		}
	})
	if ierr != nil {
		return nil, nil, ierr
	}
	slave, err = openPeer(rc)
	if err != nil {
		// Kernels before 4.13 have no TIOCGPTPEER: open the slave by path.
		slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, nil, err
	}
	if err = SetWinsize(master, ws); err != nil {
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// startPTY starts path on a new terminal: its own session with the terminal
// as controlling tty (so ^C, ^Z and job control work), stdin, stdout and
// stderr all the terminal. Output is one stream (stdout).
func startPTY(r *Reaper, p *Process, path, dir string) error {
	master, slave, err := openPTY(*p.spec.PTY)
	if err != nil {
		return proto.Errorf(proto.CodeForErrno(err, proto.CodeInternal), "open pty: %v", err)
	}
	defer slave.Close()
	in, err := dupFile(master)
	if err != nil {
		master.Close()
		return proto.Errorf(proto.CodeInternal, "dup pty: %v", err)
	}
	attr := &os.ProcAttr{
		Dir:   dir,
		Env:   p.spec.Env,
		Files: []*os.File{slave, slave, slave},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	}
	p.start = p.clk.Now()
	pid, wait, err := r.Start(path, p.spec.Argv, attr)
	if err != nil {
		master.Close()
		in.Close()
		return proto.Errorf(proto.CodeForErrno(err, proto.CodeInternal), "start %s: %v", p.spec.Argv[0], err)
	}
	p.pid, p.wait, p.stdout, p.stdinW, p.tty = pid, wait, master, in, master
	return nil
}

// dupFile is a second descriptor for f, so closing "stdin" (the writer)
// does not close the reader.
func dupFile(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nfd int
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = syscall.Dup(int(fd)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	syscall.CloseOnExec(nfd)
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return nil, err
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}
