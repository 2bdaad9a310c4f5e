package proxy

import (
	"context"
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
