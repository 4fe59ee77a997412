package proto

import "errors"

// MaxThawAfterMs bounds how long a host may keep a guest filesystem frozen.
const MaxThawAfterMs = 60_000

// FsFreeze is an FS_FREEZE request (caps "fs.freeze"): the filesystem
// mounted at Path is frozen (FIFREEZE: its dirty data and journal are
// written out, and new writes wait) until FS_THAW or until ThawAfterMs
// pass, whichever comes first, so a host that goes away between the two
// never leaves the guest frozen.
type FsFreeze struct {
	Path        string `json:"path"`
	ThawAfterMs int64  `json:"thawAfterMs"`
}

// Validate bounds the path and the thaw deadline.
func (r *FsFreeze) Validate(Limits) error {
	if err := absPath(r.Path); err != nil {
		return err
	}
	if r.ThawAfterMs < 1 || r.ThawAfterMs > MaxThawAfterMs {
		return errors.New("thawAfterMs must be 1..60000")
	}
	return nil
}

// FsThaw is an FS_THAW request: the filesystem at Path is thawed. Thawing
// one that is not frozen (the deadline came first) is not an error.
type FsThaw struct {
	Path string `json:"path"`
}

// Validate bounds the path.
func (r *FsThaw) Validate(Limits) error { return absPath(r.Path) }

func absPath(p string) error {
	if p == "" || p[0] != '/' || len(p) > 4096 {
		return errors.New("path must be absolute (at most 4096 bytes)")
	}
	return nil
}
