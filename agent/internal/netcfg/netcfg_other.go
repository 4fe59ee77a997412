//go:build !linux

package netcfg

import "errors"

// Apply is only implemented on Linux.
func Apply(iface string, c Config) error {
	return errors.New("netcfg: not supported on this platform")
}

// WriteResolvConf is only implemented on Linux.
func WriteResolvConf(path string, c Config) error {
	return errors.New("netcfg: not supported on this platform")
}

// Readdress is only implemented on Linux.
func Readdress(iface string, mac [6]byte, c Config) error {
	return errors.New("netcfg: not supported on this platform")
}
