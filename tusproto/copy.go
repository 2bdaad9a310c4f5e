package tusproto

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// bodyCopy copies a request body r to the upstream w through buffers from
// c's pools, whose sizes double from the first to the last, sized to what
// each read finds waiting. A fast body goes through the largest: without it
// the transport's io.Copy copies in 32 KiB pieces, one read from the client
// and one write upstream (a system call each) per 32 KiB, and 256 KiB pieces
// made one upload in one PATCH 11% faster on loopback and 200 concurrent
// ones 24% faster, using less CPU (BENCHMARKS.md, "What changed", 2).
//
// But most uploads are slow (a browser on a few Mbit/s or less), and a slow
// body spends its life waiting for the client: a buffer held meanwhile is
// memory per open upload, and raises the garbage collector's goal with it
// (issue 15). So a copy that has caught up with its client waits holding
// no buffer: it reads one byte into an array of its own, a read that
// returns once the client sent something (the HTTP server's connection
// reads what arrived, at most its 4 KiB, into its own buffer, there
// anyway), and only then takes the smallest buffer for the rest of what is
// waiting, and gives it back. Once fillsToGrow such one-byte reads in a row
// found their byte already waiting (they did not wait: the client is
// ahead; one alone may be the second half of what a slow client sent at
// once), the buffer is kept and read into directly: fillsToGrow reads in a
// row that fill their buffer take one twice the size, a read that would
// have fit in half of it gives it back for one half the size, and a short
// read on the smallest means the copy caught up again. Needing several
// reads in a row keeps a body that is sometimes ahead from trading buffers
// on every read (each trade can cost an allocation once the garbage
// collector emptied the pools).
//
// Only Read and Write are called, so that io.Copy's shortcuts (ReadFrom,
// WriteTo) can neither recurse nor let r bypass the buffer.
func bodyCopy(w io.Writer, r io.Reader, c *copyBuffers) (written int64, err error) {
	pools := c.pools
	level, fills := 0, 0
	ahead := 0      // one-byte reads in a row that found their byte waiting
	var buf *[]byte // nil while waiting for the client
	defer func() {
		if buf != nil {
			pools[level].put(buf)
		}
	}()
	for {
		var n int
		var readErr error
		caughtUp := false // the copy has read what the client sent so far
		if buf == nil {
			var first [1]byte
			began := c.now()
			n, readErr = r.Read(first[:])
			if n == 0 {
				if readErr == io.EOF {
					return written, nil
				}
				if readErr != nil {
					return written, readErr
				}
				continue
			}
			if c.now().Sub(began) >= waited {
				ahead = 0
			} else {
				ahead++
			}
			caughtUp = ahead < fillsToGrow
			buf = pools[0].get()
			(*buf)[0] = first[0]
			if readErr == nil {
				var m int
				m, readErr = r.Read((*buf)[1:])
				n += m
			}
		} else {
			n, readErr = r.Read(*buf)
			if caughtUp = n < len(*buf) && level == 0; caughtUp {
				ahead = 0
			}
		}
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
		if caughtUp && level == 0 {
			pools[0].put(buf)
			buf, fills = nil, 0
			continue
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

// waited is how long a read must take for bodyCopy to take it that the
// client had sent nothing yet: a read of bytes already there returns in
// microseconds, without the goroutine being parked and woken.
const waited = 100 * time.Microsecond

// copyBuffers are the pools bodyCopy takes buffers from, and its clock.
type copyBuffers struct {
	pools []bufferPool
	now   func() time.Time
}

// The smallest and the largest of the buffers request bodies are copied
// through on their way upstream; a PATCH holds one while bytes move, none
// while it waits for a slow client. 8 KiB takes what a slow client sent
// since the last read (16 KiB/s arrives in pieces of a few KiB) in one read;
// 256 KiB is the size measured best for fast bodies (see bodyCopy).
const (
	smallestCopyBuffer = 8 << 10
	largestCopyBuffer  = 256 << 10
	// fillsToGrow full reads in a row double the buffer: a fast body
	// reaches the largest after 20 reads (1.5 MiB), a slow one's backlog
	// seldom takes more than the smallest.
	fillsToGrow = 4
)

var bodyBuffers = &copyBuffers{pools: newBufferPools(smallestCopyBuffer, largestCopyBuffer), now: time.Now}

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
