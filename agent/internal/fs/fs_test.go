package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"islet/agent/internal/proto"
)

func write(t *testing.T, req proto.FileWrite, chunks ...[]byte) (int64, error) {
	t.Helper()
	w, err := OpenWriter(&req)
	if err != nil {
		return 0, err
	}
	for _, c := range chunks {
		if err := w.Write(c); err != nil {
			return 0, err
		}
	}
	return w.Commit()
}

func read(t *testing.T, path string, max int64) ([]byte, proto.FileReadOK, error) {
	var buf bytes.Buffer
	eof := false
	ok, err := Read(&proto.FileRead{Path: path, MaxBytes: &max}, func(b []byte, e bool) error {
		if eof || len(b) > proto.DataChunk {
			t.Fatal("data after EOF or chunk too big")
		}
		buf.Write(b)
		eof = e
		return nil
	})
	if err == nil && !eof {
		t.Fatal("no EOF")
	}
	return buf.Bytes(), ok, err
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "f.txt")
	mode := uint32(0o640)
	if _, err := write(t, proto.FileWrite{Path: p, Mode: &mode}, []byte("x")); proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("missing parent: %v", err)
	}
	n, err := write(t, proto.FileWrite{Path: p, Mode: &mode, CreateParents: true}, []byte("hello "), []byte("world"))
	if err != nil || n != 11 {
		t.Fatalf("write: %d %v", n, err)
	}
	b, ok, err := read(t, p, 100)
	if err != nil || string(b) != "hello world" || ok.Size != 11 || ok.Mode != 0o640 {
		t.Fatalf("read: %q %+v %v", b, ok, err)
	}
	if _, err := write(t, proto.FileWrite{Path: p, Append: true}, []byte("!")); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := read(t, p, 100); string(b) != "hello world!" {
		t.Fatalf("append: %q", b)
	}
	if _, _, err := read(t, p, 5); proto.CodeOf(err) != proto.CodeFileTooLarge {
		t.Fatalf("too large: %v", err)
	}
	if _, _, err := read(t, dir, 5); proto.CodeOf(err) != proto.CodeIsDirectory {
		t.Fatalf("dir: %v", err)
	}
	if _, _, err := read(t, filepath.Join(dir, "nope"), 5); proto.CodeOf(err) != proto.CodeNotFound {
		t.Fatalf("missing: %v", err)
	}
	if _, err := write(t, proto.FileWrite{Path: dir}); proto.CodeOf(err) != proto.CodeIsDirectory {
		t.Fatalf("write dir: %v", err)
	}
	// Default mode, and no temporary files left behind.
	q := filepath.Join(dir, "g")
	if _, err := write(t, proto.FileWrite{Path: q}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := read(t, q, 0); ok.Mode != 0o644 || ok.Size != 0 {
		t.Fatalf("default mode: %+v", ok)
	}
	w, err := OpenWriter(&proto.FileWrite{Path: filepath.Join(dir, "aborted")})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Abort()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	for _, n := range names {
		if n != "a" && n != "g" {
			t.Fatalf("left behind: %v", names)
		}
	}
}

func TestReadNotRegular(t *testing.T) {
	if _, _, err := read(t, "/dev/null", 10); proto.CodeOf(err) != proto.CodeInvalidArgument {
		t.Fatalf("char device: %v", err)
	}
}

// Setuid, setgid and sticky in the request's mode are applied, not dropped
// (Go's os.FileMode keeps them outside the low 12 bits).
func TestWriteSpecialModeBits(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []uint32{0o4755, 0o2750, 0o1777, 0o6711, 0o644} {
		p := filepath.Join(dir, "f")
		m := mode
		if _, err := write(t, proto.FileWrite{Path: p, Mode: &m}, []byte("x")); err != nil {
			t.Fatal(err)
		}
		_, ok, err := read(t, p, 10)
		if err != nil {
			t.Fatal(err)
		}
		if ok.Mode != mode {
			t.Errorf("mode %04o: file has %04o", mode, ok.Mode)
		}
	}
}
