package proc

import (
	"bytes"
	"testing"
)

func collect(parts []Part) (out, errs []byte, tags []uint16) {
	for _, p := range parts {
		tags = append(tags, p.Stream)
		if p.Stream == 1 {
			out = append(out, p.B...)
		} else {
			errs = append(errs, p.B...)
		}
	}
	return
}

func TestRingOffsetsAndStreams(t *testing.T) {
	r := newRing(1 << 20)
	r.write(1, []byte("hello "))
	r.write(2, []byte("oops\n"))
	r.write(1, []byte("world\n"))
	start, parts, next := r.read(0, 1<<20)
	out, errs, tags := collect(parts)
	if start != 0 || next != 17 || string(out) != "hello world\n" || string(errs) != "oops\n" || len(tags) != 3 {
		t.Fatalf("start %d next %d out %q err %q tags %v", start, next, out, errs, tags)
	}
	start, parts, next = r.read(8, 4)
	if start != 8 || next != 12 || len(parts) != 2 || string(parts[0].B) != "ps\n" || string(parts[1].B) != "w" {
		t.Fatalf("partial read: %d %d %+v", start, next, parts)
	}
	if _, parts, next = r.read(17, 10); len(parts) != 0 || next != 17 {
		t.Fatalf("read at end: %+v %d", parts, next)
	}
}

func TestRingIsBounded(t *testing.T) {
	const size = 64 << 10
	r := newRing(size)
	chunk := bytes.Repeat([]byte("x"), 1000)
	for i := 0; i < 100000; i++ { // 100 MB through a 64 KiB ring
		r.write(uint16(1+i%2), chunk)
		if r.size > size {
			t.Fatalf("ring holds %d > %d", r.size, size)
		}
	}
	if r.end != 100000*1000 {
		t.Fatalf("end %d", r.end)
	}
	start, parts, next := r.read(0, 1<<30)
	var n int64
	for _, p := range parts {
		n += int64(len(p.B))
	}
	if start != r.base() || start < r.end-size || next != r.end || n != next-start {
		t.Fatalf("start %d next %d held %d end %d", start, next, n, r.end)
	}
	if cap(r.chunks) > 2*len(r.chunks)+64 {
		t.Fatalf("chunk slice not compacted: len %d cap %d", len(r.chunks), cap(r.chunks))
	}
}

func TestRingTinyWritesCountOverhead(t *testing.T) {
	const size = 8 << 10
	r := newRing(size)
	for i := 0; i < 100000; i++ {
		r.write(uint16(1+i%2), []byte{'a'}) // alternating streams: never coalesced
	}
	if len(r.chunks) > size/chunkOverhead {
		t.Fatalf("%d chunks in a %d byte ring", len(r.chunks), size)
	}
}

func TestRingWriteLargerThanRing(t *testing.T) {
	r := newRing(1024)
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i)
	}
	r.write(1, big)
	start, parts, next := r.read(0, 1<<20)
	if next != 5000 || len(parts) != 1 || !bytes.Equal(parts[0].B, big[start:]) || int64(len(parts[0].B))+chunkOverhead > 1024 {
		t.Fatalf("start %d next %d parts %d", start, next, len(parts))
	}
}
