package server

// Files, malformed and unknown input, backpressure, health/time/poweroff,
// and processes that outlive a host connection.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"islet/agent/internal/proto"
)

func TestFileWriteReadBinary(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "blob")
	content := make([]byte, 1<<20)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	h.send(proto.TypeFileWrite, 1, map[string]interface{}{"path": path, "mode": 0o600, "createParents": true})
	for off := 0; off < len(content); off += proto.DataChunk {
		end := off + proto.DataChunk
		if end > len(content) {
			end = len(content)
		}
		h.sendData(1, content[off:end], end == len(content))
	}
	var wok proto.FileWriteOK
	decode(t, h.final(1)[0], proto.TypeOK, &wok)
	if wok.Bytes != int64(len(content)) {
		t.Fatalf("%+v", wok)
	}

	h.send(proto.TypeFileRead, 2, map[string]interface{}{"path": path, "maxBytes": 2 << 20})
	fs := h.final(2)
	var got []byte
	for i, f := range fs[:len(fs)-1] {
		if f.Type != proto.TypeData || f.Stream() != 0 || len(f.Payload) > proto.DataChunk || f.EOF() != (i == len(fs)-2) {
			t.Fatalf("frame %d: %s", i, describe(fs[i:i+1]))
		}
		got = append(got, f.Payload...)
	}
	var rok proto.FileReadOK
	decode(t, fs[len(fs)-1], proto.TypeOK, &rok)
	if !bytes.Equal(got, content) || rok.Size != int64(len(content)) || rok.Mode != 0o600 {
		t.Fatalf("read back %d bytes, %+v", len(got), rok)
	}

	h.send(proto.TypeFileRead, 3, map[string]interface{}{"path": path, "maxBytes": 10})
	fs = h.final(3)
	if len(fs) != 1 {
		t.Fatalf("too large must not send data: %s", describe(fs))
	}
	expectError(t, fs, proto.CodeFileTooLarge)
	h.send(proto.TypeFileRead, 4, map[string]interface{}{"path": dir, "maxBytes": 10})
	expectError(t, h.final(4), proto.CodeIsDirectory)
	h.send(proto.TypeFileRead, 5, map[string]interface{}{"path": path})
	expectError(t, h.final(5), proto.CodeInvalidArgument)
}

func TestFileWriteAbortedByDisconnect(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	h.send(proto.TypeFileWrite, 1, map[string]interface{}{"path": filepath.Join(dir, "f")})
	h.sendData(1, []byte("partial"), false)
	h.disconnect()
	h.srv.Wait()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	h.connect()
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1})
	decode(t, h.final(1)[0], proto.TypeHello, &proto.HelloReply{})
}

func TestFileReadWindows(t *testing.T) {
	h := newHarness(t, nil)
	path := filepath.Join(t.TempDir(), "big")
	content := make([]byte, 3*proto.DataChunk+17)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o640); err != nil {
		t.Fatal(err)
	}
	// maxBytes bounds the window, not the file: windows reassemble it whole.
	const window = proto.DataChunk + 5
	var got []byte
	id := uint32(10)
	for off := 0; ; off += window {
		id++
		h.send(proto.TypeFileRead, id, map[string]interface{}{"path": path, "maxBytes": window, "offset": off, "length": window})
		fs := h.final(id)
		n := 0
		for _, f := range fs[:len(fs)-1] {
			got = append(got, f.Payload...)
			n += len(f.Payload)
		}
		var ok proto.FileReadOK
		decode(t, fs[len(fs)-1], proto.TypeOK, &ok)
		if ok.Size != int64(n) || ok.FileSize != int64(len(content)) || ok.Mode != 0o640 {
			t.Fatalf("window at %d: %+v after %d bytes", off, ok, n)
		}
		if n < window {
			break
		}
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("reassembled %d bytes, want %d", len(got), len(content))
	}
	h.send(proto.TypeFileRead, 50, map[string]interface{}{"path": path, "maxBytes": 10, "offset": 0, "length": 11})
	expectError(t, h.final(50), proto.CodeInvalidArgument)
	h.send(proto.TypeFileRead, 51, map[string]interface{}{"path": path, "maxBytes": 10, "offset": 5})
	expectError(t, h.final(51), proto.CodeInvalidArgument)
}

func TestFileWriteAbortedBySignal(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	h.send(proto.TypeFileWrite, 1, map[string]interface{}{"path": filepath.Join(dir, "f")})
	h.sendData(1, []byte("partial"), false)
	h.send(proto.TypeSignal, 1, proto.Signal{Signal: "KILL"})
	expectError(t, h.final(1), proto.CodeIOError)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	// The connection goes on serving.
	h.send(proto.TypeHealth, 2, proto.Health{})
	decode(t, h.final(2)[0], proto.TypeOK, &proto.HealthOK{})
}

func TestUnknownTypeKeepsServing(t *testing.T) {
	h := newHarness(t, nil)
	h.sendFrame(proto.Frame{Type: 99, RequestID: 1, Payload: []byte("whatever")})
	expectError(t, h.final(1), proto.CodeUnknownType)
	h.send(proto.TypeOK, 2, `{}`)
	expectError(t, h.final(2), proto.CodeInvalidArgument)
	h.sendData(77, []byte("stray"), true) // DATA for nothing: dropped silently
	h.send(proto.TypeHello, 3, proto.Hello{Protocol: 1})
	decode(t, h.final(3)[0], proto.TypeHello, &proto.HelloReply{})
	if fs := h.byID[77]; len(fs) != 0 {
		t.Fatalf("reply to stray DATA: %s", describe(fs))
	}
}

func TestGarbageDoesNotCrash(t *testing.T) {
	h := newHarness(t, nil)
	for i, garbage := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\nlots of garbage"),
		func() []byte { // valid magic, oversize length
			b := make([]byte, 16)
			proto.PutHeader(b, proto.Header{Version: 1, Type: proto.TypeData, RequestID: 1, Length: 1 << 30})
			return b
		}(),
		func() []byte { // valid frame then bad version
			b, _ := proto.AppendFrame(nil, proto.Frame{Type: proto.TypeHello, RequestID: 1, Payload: []byte(`{"protocol":1}`)})
			bad := make([]byte, 16)
			proto.PutHeader(bad, proto.Header{Version: 9, Type: 1, RequestID: 2})
			return append(b, bad...)
		}(),
	} {
		h.sendRaw(garbage)
		h.sendRaw([]byte("more bytes after the violation are discarded"))
		if err := h.disconnect(); !errors.Is(err, io.EOF) {
			t.Fatalf("case %d: Serve returned %v", i, err)
		}
		h.connect()
		h.send(proto.TypeHello, 5, proto.Hello{Protocol: 1})
		decode(t, h.final(5)[0], proto.TypeHello, &proto.HelloReply{})
	}
	// A connection that ends inside a frame.
	h.sendRaw([]byte("ISLT\x01"))
	if err := h.disconnect(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Serve returned %v", err)
	}
	h.connect()
}

func TestBusy(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits.MaxInFlight = 2 })
	for id := uint32(1); id <= 2; id++ {
		h.send(proto.TypeExec, id, map[string]interface{}{"argv": []string{"sleep", "100"}})
		h.wait(id, "EXEC_STARTED", func(fs []proto.Frame) bool { return len(fs) > 0 })
	}
	h.send(proto.TypeExec, 3, map[string]interface{}{"argv": []string{"true"}})
	expectError(t, h.final(3), proto.CodeBusy)
	h.send(proto.TypeExec, 1, map[string]interface{}{"argv": []string{"true"}})
	// Duplicate id while in flight.
	h.wait(1, "duplicate ERROR", func(fs []proto.Frame) bool { return len(fs) == 2 })
	for id := uint32(1); id <= 2; id++ {
		h.send(proto.TypeSignal, id, proto.Signal{Signal: "KILL"})
	}
	h.wait(1, "EXEC_EXITED", func(fs []proto.Frame) bool { return fs[len(fs)-1].Type == proto.TypeExecExited })
	h.final(2)
	h.send(proto.TypeExec, 4, map[string]interface{}{"argv": []string{"true"}})
	checkExec(t, h.final(4))
}

func TestHealthTimeSyncPoweroff(t *testing.T) {
	var setTo time.Time
	powered := make(chan struct{}, 1)
	h := newHarness(t, func(c *Config) {
		c.SetTime = func(t time.Time) error { setTo = t; return nil }
		c.PowerOff = func() error { powered <- struct{}{}; return nil }
	})
	h.send(proto.TypeHealth, 1, `{}`)
	var health proto.HealthOK
	decode(t, h.final(1)[0], proto.TypeOK, &health)
	if health.Protocol != 1 || health.MemTotalKb <= 0 || health.UptimeMs <= 0 {
		t.Fatalf("%+v", health)
	}
	host := time.Now().Add(-time.Hour)
	h.send(proto.TypeTimeSync, 2, proto.TimeSync{UnixMs: host.UnixMilli()})
	var ts proto.TimeSyncOK
	decode(t, h.final(2)[0], proto.TypeOK, &ts)
	if ts.SkewMs < 3590000 || ts.SkewMs > 3610000 || setTo.UnixMilli() != host.UnixMilli() {
		t.Fatalf("%+v %v", ts, setTo)
	}
	h.send(proto.TypeTimeSync, 3, `{}`)
	expectError(t, h.final(3), proto.CodeInvalidArgument)
	h.send(proto.TypePoweroff, 4, `{}`)
	decode(t, h.final(4)[0], proto.TypeOK, &proto.Empty{})
	select {
	case <-powered:
	case <-time.After(waitTimeout):
		t.Fatal("PowerOff not called")
	}
}

func TestProcessOutlivesConnection(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	h.send(proto.TypeExec, 1, map[string]interface{}{"shell": "sleep 0.3; echo done > " + dir + "/out; echo ignored"})
	h.wait(1, "EXEC_STARTED", func(fs []proto.Frame) bool { return len(fs) > 0 })
	h.disconnect()
	h.connect()
	h.srv.Wait() // the exec finishes; its frames are dropped
	if b, _ := os.ReadFile(dir + "/out"); string(b) != "done\n" {
		t.Fatalf("process did not finish: %q", b)
	}
	h.send(proto.TypeHello, 1, proto.Hello{Protocol: 1}) // id 1 is free again
	fs := h.final(1)
	if len(fs) != 1 || fs[0].Type != proto.TypeHello {
		t.Fatalf("stale frames reached the new connection: %s", describe(fs))
	}
}

const prSetChildSubreaper = 36
