package upload

import (
	"context"
	"log/slog"
	"time"
)

// sweepBatch bounds each store sweep, so a backlog of expired uploads never
// holds one long write transaction.
const sweepBatch = 500

// orphanScanInterval is how often intents are looked at when uploads never
// expire (otherwise they go with each sweep of expired uploads).
const orphanScanInterval = time.Minute

// Run forgets uploads idle longer than the upload TTL and reports
// creations cut short, until ctx is done. The Kinescope video of an expired
// upload is left as it is: Kinescope decides what happens to an unfinished
// video. Both sweeps run at once, for what happened while tusproxy was
// down, then on every tick.
func (l *Lifecycle) Run(ctx context.Context) {
	interval := orphanScanInterval
	if l.cfg.UploadTTL > 0 {
		interval = min(max(l.cfg.UploadTTL/10, time.Second), time.Minute)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		l.Expire(ctx)
		l.ReportOrphans(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Expire forgets the uploads idle longer than the upload TTL, one Expired
// event each.
func (l *Lifecycle) Expire(ctx context.Context) {
	if l.cfg.UploadTTL <= 0 {
		return
	}
	cutoff := l.now().Add(-l.cfg.UploadTTL)
	for {
		// The store picks and deletes the records in one write, so the
		// in-process events are built from what it returns, and the
		// durable ones in that write, one per record.
		recs, err := l.store.Sweep(ctx, cutoff, sweepBatch, l.durable(Expired, l.now()))
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("sweeping expired uploads failed", slog.String("error", err.Error()))
				l.storeError(OpSweep)
			}
			return
		}
		for _, rec := range recs {
			l.publish(l.event(Expired, rec))
		}
		if len(recs) < sweepBatch {
			return
		}
	}
}

// ReportOrphans reports, one Orphaned event each, the intents older than
// IntentGrace: creations that never got their record, on this replica or
// any other, now or before a restart. Sweeping removes them, so each is
// reported once.
func (l *Lifecycle) ReportOrphans(ctx context.Context) {
	cutoff := l.now().Add(-l.IntentGrace())
	for {
		intents, err := l.store.SweepIntents(ctx, cutoff, sweepBatch)
		for _, in := range intents {
			l.publish(Event{Kind: Orphaned, At: l.now(), Intent: in})
		}
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("sweeping creation intents failed", slog.String("error", err.Error()))
				l.storeError(OpSweepIntents)
			}
			return
		}
		if len(intents) < sweepBatch {
			return
		}
	}
}
