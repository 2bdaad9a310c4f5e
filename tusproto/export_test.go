package tusproto

import "io"

// CopyPools are the buffer pools of the upstream body copy, fresh and sized
// for a test.
type CopyPools struct{ pools []bufferPool }

// NewCopyPools makes pools of buffers whose sizes double from smallest to
// largest.
func NewCopyPools(smallest, largest int) *CopyPools {
	return &CopyPools{pools: newBufferPools(smallest, largest)}
}

// Copy copies r to w as a request body goes upstream, through p's buffers.
func (p *CopyPools) Copy(w io.Writer, r io.Reader) (int64, error) {
	return bodyCopy(w, r, p.pools)
}

// Out is how many buffers of each size, smallest first, are taken and not
// given back.
func (p *CopyPools) Out() []int64 {
	out := make([]int64, len(p.pools))
	for i := range p.pools {
		out[i] = p.pools[i].out.Load()
	}
	return out
}

// FillsToGrow is how many full reads in a row double the copy buffer.
const FillsToGrow = fillsToGrow
