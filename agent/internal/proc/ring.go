// Package proc is the agent's table of background processes: each keeps its
// merged stdout/stderr in a bounded ring, addressed by byte offset from the
// process's first output byte, so a reader that comes back later (a new host
// connection) resumes where it left off and learns how much it missed.
package proc

// chunkOverhead is what one chunk costs besides its bytes; counting it keeps
// a stream of tiny writes from growing the ring past its budget.
const chunkOverhead = 64

// coalesceBelow: a write appends to the previous chunk of the same stream
// while that chunk is smaller than this.
const coalesceBelow = 4096

type chunk struct {
	stream uint16
	off    int64 // offset of b[0]
	b      []byte
}

// Part is a piece of output read from the ring.
type Part struct {
	Stream uint16
	B      []byte
}

// ring keeps the newest output up to cap bytes (counting chunkOverhead per
// chunk); older chunks are dropped whole. Not safe for concurrent use.
type ring struct {
	cap    int64
	chunks []chunk
	size   int64 // bytes + overhead held
	end    int64 // offset after the last byte ever written
}

func newRing(cap int64) *ring {
	if cap < 2*chunkOverhead {
		cap = 2 * chunkOverhead
	}
	return &ring{cap: cap}
}

// base is the offset of the oldest byte still held (end when empty).
func (r *ring) base() int64 {
	if len(r.chunks) == 0 {
		return r.end
	}
	return r.chunks[0].off
}

func (r *ring) write(stream uint16, b []byte) {
	if len(b) == 0 {
		return
	}
	off := r.end
	r.end += int64(len(b))
	if max := r.cap - chunkOverhead; int64(len(b)) > max {
		off += int64(len(b)) - max
		b = b[int64(len(b))-max:]
	}
	if n := len(r.chunks); n > 0 && r.chunks[n-1].stream == stream && len(r.chunks[n-1].b) < coalesceBelow &&
		r.chunks[n-1].off+int64(len(r.chunks[n-1].b)) == off {
		r.chunks[n-1].b = append(r.chunks[n-1].b, b...)
	} else {
		r.chunks = append(r.chunks, chunk{stream: stream, off: off, b: append([]byte(nil), b...)})
		r.size += chunkOverhead
	}
	r.size += int64(len(b))
	for r.size > r.cap && len(r.chunks) > 0 {
		r.size -= int64(len(r.chunks[0].b)) + chunkOverhead
		r.chunks[0] = chunk{}
		r.chunks = r.chunks[1:]
	}
	// Re-slicing only moves the start; copy once the dead prefix is large so
	// the backing array does not grow without bound.
	if cap(r.chunks) > 2*len(r.chunks)+64 {
		r.chunks = append([]chunk(nil), r.chunks...)
	}
}

// read returns up to max bytes from offset off: the offset actually read
// from (later than off if those bytes were dropped), the parts (copies), and
// the offset after them. off must be at most end.
func (r *ring) read(off, max int64) (start int64, parts []Part, next int64) {
	start = off
	if b := r.base(); start < b {
		start = b
	}
	next = start
	for _, c := range r.chunks {
		cEnd := c.off + int64(len(c.b))
		if cEnd <= next {
			continue
		}
		if max <= 0 {
			break
		}
		if c.off > next { // cannot happen while chunks are contiguous; never slice out of range
			next = c.off
		}
		b := c.b[next-c.off:]
		if int64(len(b)) > max {
			b = b[:max]
		}
		parts = append(parts, Part{Stream: c.stream, B: append([]byte(nil), b...)})
		next += int64(len(b))
		max -= int64(len(b))
	}
	return start, parts, next
}
