// Package fs implements FILE_WRITE (atomic by default) and FILE_READ (size
// checked before reading). Errors are *proto.Error carrying the code to
// reply with.
package fs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"islet/agent/internal/proto"
)

func ioErr(op, path string, err error) error {
	return proto.Errorf(proto.CodeForErrno(err, proto.CodeIOError), "%s %s: %v", op, path, unwrapPath(err))
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Writer receives one FILE_WRITE's content. Without append it writes a
// temporary file in the target's directory and renames it over the target
// on Commit, so readers never see a partial file.
type Writer struct {
	path    string
	mode    os.FileMode
	tmp     string // "" when appending
	f       *os.File
	n       int64
	created bool // append mode: the file did not exist
}

// OpenWriter checks the request and prepares the destination.
func OpenWriter(req *proto.FileWrite) (*Writer, error) {
	w := &Writer{path: filepath.Clean(req.Path), mode: goMode(req.FileMode())}
	dir := filepath.Dir(w.path)
	if st, err := os.Stat(w.path); err == nil && st.IsDir() {
		return nil, proto.Errorf(proto.CodeIsDirectory, "%s is a directory", w.path)
	}
	if req.CreateParents {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, ioErr("create parents of", w.path, err)
		}
	} else if st, err := os.Stat(dir); err != nil {
		return nil, ioErr("stat parent of", w.path, err)
	} else if !st.IsDir() {
		return nil, proto.Errorf(proto.CodeNotFound, "parent of %s is not a directory", w.path)
	}
	var err error
	if req.Append {
		_, statErr := os.Lstat(w.path)
		w.created = errors.Is(statErr, os.ErrNotExist)
		w.f, err = os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, w.mode)
		if err != nil {
			return nil, ioErr("open", w.path, err)
		}
		return w, nil
	}
	w.f, err = os.CreateTemp(dir, "."+filepath.Base(w.path)+".islet-*.tmp")
	if err != nil {
		return nil, ioErr("create temporary file for", w.path, err)
	}
	w.tmp = w.f.Name()
	return w, nil
}

// Write appends content.
func (w *Writer) Write(b []byte) error {
	n, err := w.f.Write(b)
	w.n += int64(n)
	if err != nil {
		return ioErr("write", w.path, err)
	}
	return nil
}

// Commit syncs the data, sets the mode and (unless appending) renames the
// temporary file over the target. It returns the bytes written.
func (w *Writer) Commit() (int64, error) {
	if w.tmp != "" || w.created {
		if err := w.f.Chmod(w.mode); err != nil { // fchmod: not subject to umask
			w.Abort()
			return 0, ioErr("chmod", w.path, err)
		}
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return 0, ioErr("fsync", w.path, err)
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return 0, ioErr("close", w.path, err)
	}
	if w.tmp != "" {
		if err := os.Rename(w.tmp, w.path); err != nil {
			os.Remove(w.tmp)
			return 0, ioErr("rename onto", w.path, err)
		}
		w.tmp = ""
		if d, err := os.Open(filepath.Dir(w.path)); err == nil {
			_ = d.Sync() // make the rename durable; best effort
			d.Close()
		}
	}
	return w.n, nil
}

// Abort discards the write: the temporary file is removed (an append keeps
// what was already appended).
func (w *Writer) Abort() {
	w.f.Close()
	if w.tmp != "" {
		os.Remove(w.tmp)
		w.tmp = ""
	}
}

// Emit receives file content, at most proto.DataChunk bytes per call; the
// last call has eof set (and may be empty). An error stops the read.
type Emit func(b []byte, eof bool) error

// Read streams req.Path to emit: the whole file if it is at most MaxBytes
// long or, with req.Length set, at most Length bytes from Offset.
func Read(req *proto.FileRead, emit Emit) (proto.FileReadOK, error) {
	path, maxBytes := req.Path, *req.MaxBytes
	// O_NONBLOCK so that opening a FIFO does not hang; it has no effect on
	// regular files, the only kind read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return proto.FileReadOK{}, ioErr("open", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return proto.FileReadOK{}, ioErr("stat", path, err)
	}
	if st.IsDir() {
		return proto.FileReadOK{}, proto.Errorf(proto.CodeIsDirectory, "%s is a directory", path)
	}
	if !st.Mode().IsRegular() {
		return proto.FileReadOK{}, proto.Errorf(proto.CodeInvalidArgument, "%s is not a regular file (%s)", path, st.Mode().Type())
	}
	var src io.Reader = f
	if req.Length != nil {
		// A window: the file may be any size, the reply is bounded by Length.
		if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
			return proto.FileReadOK{}, ioErr("seek", path, err)
		}
		src = io.LimitReader(f, *req.Length)
	} else if st.Size() > maxBytes {
		return proto.FileReadOK{}, proto.Errorf(proto.CodeFileTooLarge, "%s is %d bytes, maxBytes %d", path, st.Size(), maxBytes)
	}
	buf := make([]byte, proto.DataChunk)
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			total += int64(n)
			// Files that report a size of 0 (procfs) or grow while read are
			// still bounded.
			if total > maxBytes {
				return proto.FileReadOK{}, proto.Errorf(proto.CodeFileTooLarge, "%s grew past maxBytes %d while read", path, maxBytes)
			}
			if err := emit(buf[:n], false); err != nil {
				return proto.FileReadOK{}, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return proto.FileReadOK{}, ioErr("read", path, rerr)
		}
	}
	if err := emit(nil, true); err != nil {
		return proto.FileReadOK{}, err
	}
	ok := proto.FileReadOK{Size: total, Mode: unixMode(st)}
	if req.Length != nil {
		ok.FileSize = st.Size()
	}
	return ok, nil
}

// unixMode returns st_mode & 07777 (permissions plus setuid/setgid/sticky).
func unixMode(st os.FileInfo) uint32 {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint32(sys.Mode) & 0o7777
	}
	return uint32(st.Mode().Perm())
}

// goMode converts Unix mode bits to an os.FileMode. A plain conversion keeps
// only the permission bits: Go holds setuid, setgid and sticky in high flag
// bits, so 0o4755 would silently become 0755.
func goMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
