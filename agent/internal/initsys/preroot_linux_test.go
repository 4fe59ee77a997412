package initsys

import "testing"

func TestRewriteCmdline(t *testing.T) {
	in := "console=ttyS0 islet.root=/dev/vda islet.init=fast islet.hostname=islet-template islet.preroot=1 islet.net=10.0.2.15/24,gw=10.0.2.2 quiet"
	got := RewriteCmdline(in, map[string]string{"islet.hostname": "ws-1", "islet.net": "", "islet.root": "/dev/vda"})
	want := "console=ttyS0 islet.init=fast quiet islet.root=/dev/vda islet.hostname=ws-1"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	got = RewriteCmdline(in, map[string]string{"islet.hostname": "b", "islet.net": "10.42.0.5/16,gw=10.42.0.1", "islet.root": "/dev/vdb"})
	want = "console=ttyS0 islet.init=fast quiet islet.root=/dev/vdb islet.hostname=b islet.net=10.42.0.5/16,gw=10.42.0.1"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
