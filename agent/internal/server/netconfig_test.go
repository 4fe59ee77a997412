package server

import (
	"syscall"
	"testing"

	"islet/agent/internal/netcfg"
	"islet/agent/internal/proto"
)

func TestNetConfig(t *testing.T) {
	var gotMAC [6]byte
	var gotCfg netcfg.Config
	calls := 0
	fail := error(nil)
	h := newHarness(t, func(c *Config) {
		c.Readdress = func(mac [6]byte, cfg netcfg.Config) error {
			calls++
			gotMAC, gotCfg = mac, cfg
			return fail
		}
	})
	h.send(proto.TypeNetConfig, 1, proto.NetConfig{MAC: "02:15:0a:2a:00:07", Net: "10.42.0.7/24,gw=10.42.0.1,dns=10.42.0.1"})
	decode(t, h.final(1)[0], proto.TypeOK, &proto.Empty{})
	if calls != 1 || gotMAC != [6]byte{2, 0x15, 10, 42, 0, 7} || gotCfg.String() != "10.42.0.7/24,gw=10.42.0.1,dns=10.42.0.1" {
		t.Fatalf("calls %d, mac %x, cfg %s", calls, gotMAC, gotCfg)
	}

	for i, bad := range []proto.NetConfig{
		{MAC: "02:15:0a:2a:00", Net: "10.42.0.7/24"},
		{MAC: "03:15:0a:2a:00:07", Net: "10.42.0.7/24"}, // multicast
		{MAC: "02:15:0a:2a:00:07", Net: "10.42.0.7"},
		{MAC: "02:15:0a:2a:00:07", Net: "10.42.0.7/24,via=1.2.3.4"},
		{MAC: "", Net: "10.42.0.7/24"},
	} {
		h.send(proto.TypeNetConfig, uint32(10+i), bad)
		expectError(t, h.final(uint32(10+i)), proto.CodeInvalidArgument)
	}
	if calls != 1 {
		t.Fatalf("a refused request reached the interface (%d calls)", calls)
	}

	fail = syscall.EPERM
	h.send(proto.TypeNetConfig, 20, proto.NetConfig{MAC: "02:15:0a:2a:00:07", Net: "10.42.0.7/24"})
	expectError(t, h.final(20), proto.CodePermissionDenied)
}

func TestNetConfigWithoutReaddress(t *testing.T) {
	h := newHarness(t, nil)
	h.send(proto.TypeNetConfig, 1, proto.NetConfig{MAC: "02:15:0a:2a:00:07", Net: "10.42.0.7/24"})
	expectError(t, h.final(1), proto.CodeUnknownType)
}
