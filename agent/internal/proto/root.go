package proto

// TypeRoot is sent only to stage 1 of a pre-root template (caps "preroot"):
// the kernel is up, no root filesystem is mounted yet, and this request names
// the workspace whose disk stage 1 mounts next (docs/pool.md, "Pre-root
// templates"). The OK reply comes once the disk is probed afresh; then stage
// 1 switches root and execs the agent, which keeps serving the same port.
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
}

// RootOK is ROOT's OK payload: what stage 1 found on the fresh disk.
type RootOK struct {
	Device    string `json:"device"`
	DiskBytes uint64 `json:"diskBytes"`
}
