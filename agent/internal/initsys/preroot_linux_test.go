package initsys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"islet/agent/internal/logger"
	"islet/agent/internal/proto"
)

func TestRewriteCmdline(t *testing.T) {
	in := "console=ttyS0 islet.root=/dev/vda islet.init=fast islet.hostname=islet-template islet.preroot=1 islet.net=10.0.2.15/24,gw=10.0.2.2 quiet"
	got := RewriteCmdline(in, map[string]string{"islet.hostname": "ws-1", "islet.net": "", "islet.root": "/dev/vda"})
	want := "console=ttyS0 islet.init=fast quiet islet.root=/dev/vda islet.hostname=ws-1"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	got = RewriteCmdline(in, map[string]string{"islet.hostname": "b", "islet.net": "10.42.0.5/16,gw=10.42.0.1", "islet.root": "/dev/vdb"})
	want = "console=ttyS0 islet.init=fast quiet islet.root=/dev/vdb islet.hostname=b islet.net=10.42.0.5/16,gw=10.42.0.1"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func reply(t *testing.T, typ proto.Type, payload interface{}) (proto.Frame, bool) {
	t.Helper()
	f, err := proto.JSONFrame(typ, 7, payload)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done, _ := servePreroot(logger.Discard, &out, f)
	r, err := proto.NewReader(&out).ReadFrame()
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if r.RequestID != 7 {
		t.Fatalf("reply to request %d", r.RequestID)
	}
	return r, done
}

func TestPrerootHelloSaysItWaitsForRoot(t *testing.T) {
	r, done := reply(t, proto.TypeHello, map[string]interface{}{"protocol": proto.ProtocolVersion})
	var h proto.HelloReply
	if r.Type != proto.TypeHello || proto.DecodeJSON(r.Payload, &h) != nil || done {
		t.Fatalf("got %v %s", r.Type, r.Payload)
	}
	if h.InitMode != proto.CapPreroot || len(h.Caps) == 0 || h.Caps[0] != proto.CapPreroot {
		t.Fatalf("hello %+v", h)
	}
}

func TestPrerootRefusesOtherRequestsAndBadRoots(t *testing.T) {
	for _, tc := range []struct {
		typ     proto.Type
		payload interface{}
		code    proto.Code
	}{
		{proto.TypeExec, map[string]interface{}{"argv": []string{"true"}}, proto.CodeUnknownType},
		{proto.TypeRoot, proto.Root{Hostname: "bad name", Entropy: "00"}, proto.CodeInvalidArgument},
		{proto.TypeRoot, proto.Root{Hostname: "ok", Net: "not-an-address", Entropy: "00"}, proto.CodeInvalidArgument},
		{proto.TypeRoot, proto.Root{Hostname: "ok", Entropy: strings.Repeat("00", proto.MaxRootEntropy+1)}, proto.CodeInvalidArgument},
		{proto.TypeRoot, proto.Root{Hostname: "ok", Entropy: "00", MachineID: "not-hex"}, proto.CodeInvalidArgument},
		{proto.TypeRoot, proto.Root{Hostname: "ok", Entropy: "00", MachineID: strings.Repeat("A", 32)}, proto.CodeInvalidArgument},
	} {
		r, done := reply(t, tc.typ, tc.payload)
		var e proto.ErrorReply
		if r.Type != proto.TypeError || proto.DecodeJSON(r.Payload, &e) != nil || e.Code != tc.code || done {
			t.Errorf("%v %+v: got %v %s", tc.typ, tc.payload, r.Type, r.Payload)
		}
	}
}

func TestWriteIdentity(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 16)
	if err := writeIdentity(root, "ws-fork", id); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"hostname": "ws-fork\n", "machine-id": id + "\n"} {
		if b, err := os.ReadFile(filepath.Join(root, "etc", name)); err != nil || string(b) != want {
			t.Errorf("/etc/%s: %q, %v", name, b, err)
		}
	}
}
