package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"islet/agent/internal/exec"
	"islet/agent/internal/proto"
)

// writeRecorder keeps each Write's bytes: the boundaries are what is
// tested, since every write is one guest exit on the virtio-serial port.
type writeRecorder struct {
	net.Conn
	writes chan []byte
}

func (w *writeRecorder) Write(b []byte) (int, error) {
	w.writes <- append([]byte(nil), b...)
	return w.Conn.Write(b)
}

// An exec's end-of-stream markers and its exit leave in one write, in
// stream order, after the output.
func TestExecTailIsOneWrite(t *testing.T) {
	r := exec.NewReaper(t.Logf)
	defer r.Close()
	srv := New(testConfig(t, r))
	host, agent := net.Pipe()
	rec := &writeRecorder{Conn: agent, writes: make(chan []byte, 64)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(rec) }()
	go func() { _, _ = io.Copy(io.Discard, host) }()
	defer func() { host.Close(); <-served; srv.Wait() }()

	f, err := proto.JSONFrame(proto.TypeExec, 7, map[string]interface{}{"shell": "echo out; echo err >&2"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.AppendFrame(nil, f)
	if _, err := host.Write(b); err != nil {
		t.Fatal(err)
	}
	var seen []proto.Type
	for {
		var w []byte
		select {
		case w = <-rec.writes:
		case <-time.After(waitTimeout):
			t.Fatalf("no EXEC_EXITED; writes so far: %v", seen)
		}
		var fs []proto.Frame
		rd := proto.NewReader(bytes.NewReader(w))
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				break
			}
			fs = append(fs, f)
			seen = append(seen, f.Type)
		}
		last := fs[len(fs)-1]
		if last.Type != proto.TypeExecExited {
			for _, f := range fs {
				if f.Type == proto.TypeData && (f.EOF() || len(f.Payload) == 0) {
					t.Fatalf("end of stream sent before the exit, in its own write: %v", seen)
				}
			}
			continue
		}
		if len(fs) != 3 || fs[0].Type != proto.TypeData || fs[1].Type != proto.TypeData || !fs[0].EOF() || !fs[1].EOF() ||
			fs[0].Stream() == fs[1].Stream() || len(fs[0].Payload)+len(fs[1].Payload) != 0 {
			t.Fatalf("last write holds %v, want both streams' EOF then EXEC_EXITED", describe(fs))
		}
		return
	}
}
