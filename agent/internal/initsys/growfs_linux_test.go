//go:build linux

package initsys

import (
	"encoding/binary"
	"testing"
)

func TestParseExt4Super(t *testing.T) {
	sb := make([]byte, 1024)
	binary.LittleEndian.PutUint16(sb[0x38:], ext4SuperMagic)
	binary.LittleEndian.PutUint32(sb[0x18:], 2) // 4096-byte blocks
	binary.LittleEndian.PutUint32(sb[0x4:], 1000)
	blocks, bs, err := parseExt4Super(sb)
	if err != nil || blocks != 1000 || bs != 4096 {
		t.Fatalf("got %d blocks of %d, %v", blocks, bs, err)
	}
	binary.LittleEndian.PutUint32(sb[0x60:], 0x80)
	binary.LittleEndian.PutUint32(sb[0x150:], 1)
	if blocks, _, _ := parseExt4Super(sb); blocks != 1<<32+1000 {
		t.Fatalf("64bit high word ignored: %d", blocks)
	}
	binary.LittleEndian.PutUint16(sb[0x38:], 0)
	if _, _, err := parseExt4Super(sb); err == nil {
		t.Fatal("bad magic accepted")
	}
	if _, _, err := parseExt4Super(sb[:10]); err == nil {
		t.Fatal("short superblock accepted")
	}
}
