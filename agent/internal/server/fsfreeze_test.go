package server

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"islet/agent/internal/proto"
)

// fakeFreezer records calls; the real FIFREEZE on the host's root would
// stop the host running the test.
type fakeFreezer struct {
	mu      sync.Mutex
	freezes []string
	thaws   []string
	fail    error
}

func (f *fakeFreezer) install(c *Config) {
	c.Freeze = func(p string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fail != nil {
			return f.fail
		}
		f.freezes = append(f.freezes, p)
		return nil
	}
	c.Thaw = func(p string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.thaws = append(f.thaws, p)
		return nil
	}
}

func (f *fakeFreezer) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.freezes), len(f.thaws)
}

func TestFsFreezeThenThawDisarmsTheDeadline(t *testing.T) {
	fz := &fakeFreezer{}
	h := newHarness(t, fz.install)
	h.send(proto.TypeFsFreeze, 1, proto.FsFreeze{Path: "/", ThawAfterMs: 150})
	decode(t, h.final(1)[0], proto.TypeOK, &proto.Empty{})
	h.send(proto.TypeFsThaw, 2, proto.FsThaw{Path: "/"})
	decode(t, h.final(2)[0], proto.TypeOK, &proto.Empty{})
	time.Sleep(300 * time.Millisecond)
	if f, th := fz.counts(); f != 1 || th != 1 {
		t.Fatalf("freezes %d, thaws %d: the host's thaw must stop the deadline's", f, th)
	}
}

func TestFsFreezeThawsByItsDeadlineWhenTheHostDoesNot(t *testing.T) {
	fz := &fakeFreezer{}
	h := newHarness(t, fz.install)
	h.send(proto.TypeFsFreeze, 1, proto.FsFreeze{Path: "/", ThawAfterMs: 50})
	decode(t, h.final(1)[0], proto.TypeOK, &proto.Empty{})
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, th := fz.counts(); th == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the filesystem was never thawed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFsFreezeRefusesBadRequestsBeforeFreezing(t *testing.T) {
	fz := &fakeFreezer{}
	h := newHarness(t, fz.install)
	for i, bad := range []proto.FsFreeze{
		{Path: "relative", ThawAfterMs: 100},
		{Path: "", ThawAfterMs: 100},
		{Path: "/", ThawAfterMs: 0},
		{Path: "/", ThawAfterMs: proto.MaxThawAfterMs + 1},
	} {
		h.send(proto.TypeFsFreeze, uint32(10+i), bad)
		expectError(t, h.final(uint32(10+i)), proto.CodeInvalidArgument)
	}
	if f, _ := fz.counts(); f != 0 {
		t.Fatalf("a refused request froze a filesystem (%d)", f)
	}
	fz.fail = syscall.EPERM
	h.send(proto.TypeFsFreeze, 20, proto.FsFreeze{Path: "/", ThawAfterMs: 100})
	expectError(t, h.final(20), proto.CodePermissionDenied)
}

func TestFsFreezeWithoutAFreezer(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeFsFreeze, 1, proto.FsFreeze{Path: "/", ThawAfterMs: 100})
	expectError(t, h.final(1), proto.CodeUnknownType)
}
