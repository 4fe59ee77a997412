package exec

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"islet/agent/internal/clock"
)

const prSetChildSubreaper = 36

func setSubreaper() error {
	_, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if e != 0 {
		return e
	}
	return nil
}

// An orphan re-parented to us is reaped (no zombie left) while a tracked
// child started at the same time still gets its own exit status.
func TestReaperReapsOrphans(t *testing.T) {
	r := NewReaper(t.Logf)
	defer r.Close()
	dir := t.TempDir()
	p, err := Start(r, clock.Real{}, Spec{Argv: []string{"sh", "-c", "sleep 0.1 & echo $!"}, Env: MergeEnv(nil), Dir: dir, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	tracked, err := Start(r, clock.Real{}, Spec{Argv: []string{"sh", "-c", "sleep 0.3; exit 7"}, Env: MergeEnv(nil), Dir: dir, MaxOutput: 100})
	if err != nil {
		t.Fatal(err)
	}
	o := &output{}
	p.Wait(o.emit)
	orphan, err := strconv.Atoi(strings.TrimSpace(o.out.String()))
	if err != nil {
		t.Fatalf("orphan pid %q", o.out.String())
	}
	res := tracked.Wait((&output{}).emit)
	if res.ExitCode == nil || *res.ExitCode != 7 {
		t.Fatalf("tracked child: %+v", res)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(orphan) + "/stat")
		if err != nil {
			return // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d not reaped: %s", orphan, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
