package tusproto

import (
	"io"
	"sync"
	"sync/atomic"
)

// bodyCopy copies a request body r to the upstream w through a buffer from
// pools, whose sizes double from the first to the last, sized to what each
// read finds waiting. A fast body goes through the largest: without it the
// transport's io.Copy copies in 32 KiB pieces, one read from the client and
// one write upstream (a system call each) per 32 KiB, and 256 KiB pieces
// made one upload in one PATCH 11% faster on loopback and 200 concurrent
// ones 24% faster, using less CPU (BENCHMARKS.md, "What changed", 2). But
// most uploads are slow (a browser on a few Mbit/s or less), and a slow body
// spends its life blocked in a read, holding whatever buffer that read was
// given: a large one for each of thousands of them would be most of the
// process's memory, and would raise the garbage collector's goal with it
// (issue 15). So reads start with the smallest buffer; fillsToGrow reads
// in a row that fill their buffer (at least that much was waiting each
// time) take one twice the size, and a read that would have fit in half of
// it gives it back for one half the size. A backlog (what a slow client
// sent while its PATCH was being opened, or while the process was busy)
// thus costs about what is waiting, not the largest buffer, and only while
// it lasts; needing several full reads keeps a slow body whose reads
// sometimes just fill the buffer from trading buffers on every read (each
// trade can cost an allocation once the garbage collector emptied the
// pools).
//
// Only Read and Write are called, so that io.Copy's shortcuts (ReadFrom,
// WriteTo) can neither recurse nor let r bypass the buffer.
func bodyCopy(w io.Writer, r io.Reader, pools []bufferPool) (written int64, err error) {
	level, fills := 0, 0
	buf := pools[level].get()
	defer func() { pools[level].put(buf) }()
	for {
		n, readErr := r.Read(*buf)
		if n > 0 {
			m, writeErr := w.Write((*buf)[:n])
			written += int64(m)
			if writeErr != nil {
				return written, writeErr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if readErr == io.EOF {
			return written, nil
		}
		if readErr != nil {
			return written, readErr
		}
		next := level
		switch {
		case n < len(*buf):
			fills = 0
			if n <= len(*buf)/2 && level > 0 {
				next--
			}
		case level < len(pools)-1:
			if fills++; fills == fillsToGrow {
				next++
			}
		}
		if next != level {
			pools[level].put(buf)
			level, buf, fills = next, pools[next].get(), 0
		}
	}
}

// The smallest and the largest of the buffers request bodies are copied
// through on their way upstream; one is in use per PATCH streaming. 8 KiB
// holds what a slow client sends between two reads (16 KiB/s arrives in
// pieces of a few KiB) for 8 KiB per upload held open; 256 KiB is the size
// measured best for fast bodies (see bodyCopy).
const (
	smallestCopyBuffer = 8 << 10
	largestCopyBuffer  = 256 << 10
	// fillsToGrow full reads in a row double the buffer: a fast body
	// reaches the largest after 20 reads (1.5 MiB), a slow one's backlog
	// seldom takes more than the smallest.
	fillsToGrow = 4
)

var copyBuffers = newBufferPools(smallestCopyBuffer, largestCopyBuffer)

// newBufferPools makes pools of buffers whose sizes double from smallest to
// largest.
func newBufferPools(smallest, largest int) []bufferPool {
	var pools []bufferPool
	for size := smallest; size <= largest; size *= 2 {
		pools = append(pools, bufferPool{})
		pools[len(pools)-1].pool.New = func() any {
			buf := make([]byte, size)
			return &buf
		}
	}
	return pools
}

// bufferPool is a sync.Pool of byte slices of one size that counts the
// buffers taken and not yet given back.
type bufferPool struct {
	pool sync.Pool
	out  atomic.Int64
}

func (p *bufferPool) get() *[]byte {
	p.out.Add(1)
	return p.pool.Get().(*[]byte)
}

func (p *bufferPool) put(buf *[]byte) {
	p.out.Add(-1)
	p.pool.Put(buf)
}
