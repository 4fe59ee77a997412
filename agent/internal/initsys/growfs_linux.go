//go:build linux

package initsys

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

const (
	blkGetSize64   = 0x80081272 // BLKGETSIZE64
	ext4ResizeFS   = 0x40086610 // EXT4_IOC_RESIZE_FS = _IOW('f', 16, __u64)
	ext4SuperMagic = 0xEF53
)

// GrowFS grows the ext4 filesystem mounted at dir to fill dev. The host
// gives each VM a qcow2 overlay larger than the (shrunk) base image, so the
// first boot of a workspace claims its disk size here, online, with one
// ioctl: no resize2fs binary is needed in the image. Returns the block
// counts before and after (equal when there was nothing to grow).
func GrowFS(dir, dev string) (before, after uint64, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var size uint64
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&size))); e != 0 {
		return 0, 0, fmt.Errorf("BLKGETSIZE64 %s: %v", dev, e)
	}
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return 0, 0, fmt.Errorf("read superblock of %s: %v", dev, err)
	}
	blocks, blockSize, err := parseExt4Super(sb)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %v", dev, err)
	}
	want := size / blockSize
	if want <= blocks {
		return blocks, blocks, nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return blocks, blocks, err
	}
	defer d.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, d.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&want))); e != 0 {
		return blocks, blocks, fmt.Errorf("EXT4_IOC_RESIZE_FS to %d blocks: %v", want, e)
	}
	return blocks, want, nil
}

// parseExt4Super reads the block count and block size from an ext4
// superblock (the 1024 bytes at offset 1024 of the device).
func parseExt4Super(sb []byte) (blocks, blockSize uint64, err error) {
	if len(sb) < 0x160 {
		return 0, 0, fmt.Errorf("short superblock")
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != ext4SuperMagic {
		return 0, 0, fmt.Errorf("not an ext2/3/4 filesystem")
	}
	logBlock := binary.LittleEndian.Uint32(sb[0x18:])
	if logBlock > 6 {
		return 0, 0, fmt.Errorf("implausible block size 1024<<%d", logBlock)
	}
	blockSize = 1024 << logBlock
	blocks = uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	return blocks, blockSize, nil
}
