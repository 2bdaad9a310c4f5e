package proxy

import (
	"context"
	"io"
	"time"
)

// SampleMetrics runs one round of the metrics sampler now, so tests with a
// fake clock need not wait for its ticker.
func (s *Service) SampleMetrics() { s.metrics.sample() }

// ReportOrphans runs one scan for abandoned creations now, as Run does at
// start and on every tick.
func (s *Service) ReportOrphans(ctx context.Context) { s.life.ReportOrphans(ctx) }

// IntentGrace is how old an intent must be before it is reported.
func (s *Service) IntentGrace() time.Duration { return s.life.IntentGrace() }

// CopyPools are the buffer pools of the upstream body copy, fresh and sized
// for a test.
type CopyPools struct{ small, large bufferPool }

// NewCopyPools makes pools of small and large buffers of the given sizes.
func NewCopyPools(small, large int) *CopyPools {
	return &CopyPools{small: newBufferPool(small), large: newBufferPool(large)}
}

// Copy copies r to w as a request body goes upstream, through p's buffers.
func (p *CopyPools) Copy(w io.Writer, r io.Reader) (int64, error) {
	return bodyCopy(w, r, &p.small, &p.large)
}

// Out is how many small and large buffers are taken and not given back.
func (p *CopyPools) Out() (small, large int64) { return p.small.out.Load(), p.large.out.Load() }

// FillsBeforeLarge is how many full small reads in a row take a large buffer.
const FillsBeforeLarge = fillsBeforeLarge
