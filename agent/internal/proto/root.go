package proto

// TypeRoot is sent only to stage 1 of a pre-root template (caps "preroot"):
// the kernel is up, no root filesystem is mounted yet, and this request names
// the workspace whose disk stage 1 mounts next (docs/pool.md, "Pre-root
// templates"). With fast init the OK reply comes once stage 1 has probed
// the disk afresh, mounted it, switched root and set PID 1 up: the same
// process then serves the same connection as the PID 1 agent, and the reply
// carries that agent's HELLO. With full init (or a stage 1 from before this)
// it comes after the probe, and the agent says HELLO on a new connection.
const TypeRoot Type = 21

// CapPreroot is the HELLO capability of stage 1 waiting for ROOT.
const CapPreroot = "preroot"

// MaxRootEntropy bounds the random bytes a ROOT request carries.
const MaxRootEntropy = 512

// Root is a ROOT request: the identity the restored guest takes before its
// root filesystem is mounted.
type Root struct {
	// Hostname replaces islet.hostname on the command line the guest sees.
	Hostname string `json:"hostname"`
	// Net replaces islet.net ("" removes it: no network device).
	Net string `json:"net,omitempty"`
	// Entropy (hex) is mixed into the kernel RNG: every copy of a template
	// starts from the same RNG state.
	Entropy string `json:"entropy"`
	// MachineID (32 hex digits), when set, is written to /etc/machine-id and
	// the hostname to /etc/hostname on the disk (a disk fork's disk holds its
	// source's; a restart keeps its own).
	MachineID string `json:"machineId,omitempty"`
}

// RootOK is ROOT's OK payload: what stage 1 found on the fresh disk.
type RootOK struct {
	Device    string `json:"device"`
	DiskBytes uint64 `json:"diskBytes"`
	// Hello is set when this process now serves as the PID 1 agent.
	Hello *HelloReply `json:"hello,omitempty"`
	// SSHHostKeys: the disk holds SSH host keys (a fork must still remake them).
	SSHHostKeys bool `json:"sshHostKeys,omitempty"`
	// Ms is the guest's time per step, for the bench.
	Ms map[string]int64 `json:"ms,omitempty"`
}
