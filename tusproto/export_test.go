package tusproto

import (
	"io"
	"sync"
	"time"
)

// CopyPools are the buffer pools of the upstream body copy, fresh and sized
// for a test, with a clock of their own that only Advance moves.
type CopyPools struct {
	buffers copyBuffers
	mu      sync.Mutex
	now     time.Time
}

// NewCopyPools makes pools of buffers whose sizes double from smallest to
// largest.
func NewCopyPools(smallest, largest int) *CopyPools {
	p := &CopyPools{now: time.Unix(0, 0)}
	p.buffers = copyBuffers{pools: newBufferPools(smallest, largest), now: p.clock}
	return p
}

func (p *CopyPools) clock() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.now
}

// Advance moves the copy's clock on: a read during which it moved waited.
func (p *CopyPools) Advance(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now = p.now.Add(d)
}

// Copy copies r to w as a request body goes upstream, through p's buffers.
func (p *CopyPools) Copy(w io.Writer, r io.Reader) (int64, error) {
	return bodyCopy(w, r, &p.buffers)
}

// Out is how many buffers of each size, smallest first, are taken and not
// given back.
func (p *CopyPools) Out() []int64 {
	out := make([]int64, len(p.buffers.pools))
	for i := range p.buffers.pools {
		out[i] = p.buffers.pools[i].out.Load()
	}
	return out
}

// FillsToGrow is how many full reads in a row double the copy buffer.
const FillsToGrow = fillsToGrow
