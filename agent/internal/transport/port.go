package transport

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FindPort returns the device path of the virtio-serial port called name,
// looking in sysDir (normally /sys/class/virtio-ports) and devDir (/dev).
// An absolute name is returned as is.
func FindPort(sysDir, devDir, name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	names, err := filepath.Glob(filepath.Join(sysDir, "*", "name"))
	if err != nil {
		return "", err
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == name {
			return filepath.Join(devDir, filepath.Base(filepath.Dir(n))), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %q in %s", name, sysDir)
}
