package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// sweepBatch bounds each store sweep, so a backlog of expired uploads never
// holds one long write transaction.
const sweepBatch = 500

// orphanScanInterval is how often intents are looked at when uploads never
// expire (otherwise they go with each sweep of expired uploads).
const orphanScanInterval = time.Minute

// Run does the service's background work until ctx is done: it samples
// the per-upload metrics, forgets uploads idle longer than the upload TTL,
// and reports creations cut short (reportOrphans). The Kinescope video of
// an expired upload is left as it is: Kinescope decides what happens to an
// unfinished video. Both sweeps run at once when Run starts, for what
// happened while tusproxy was down, then on every tick.
func (s *Service) Run(ctx context.Context) {
	go s.metrics.runSampler(ctx)
	interval := orphanScanInterval
	if s.cfg.UploadTTL > 0 {
		interval = min(max(s.cfg.UploadTTL/10, time.Second), time.Minute)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s.sweep(ctx)
		s.reportOrphans(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Service) sweep(ctx context.Context) {
	if s.cfg.UploadTTL <= 0 {
		return
	}
	cutoff := s.now().Add(-s.cfg.UploadTTL)
	for {
		recs, err := s.store.Sweep(ctx, cutoff, sweepBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("sweeping expired uploads failed", slog.String("error", err.Error()))
			}
			return
		}
		for _, rec := range recs {
			s.metrics.uploadsExpired.Inc()
			s.metrics.series.finished(rec.ID)
			s.log.Info("upload expired", slog.String("upload_id", rec.ID), slog.String("video_id", rec.VideoID),
				slog.Int64("offset", rec.Offset), slog.Int64("length", rec.Length))
		}
		if len(recs) < sweepBatch {
			return
		}
	}
}

// reportOrphans logs and counts the intents older than intentGrace: creations
// that never got their record, on this replica or any other, now or before a
// restart. Sweeping removes them, so each is reported once. The Kinescope
// video is left as it is; the log line is how an operator finds it.
func (s *Service) reportOrphans(ctx context.Context) {
	cutoff := s.now().Add(-s.intentGrace())
	for {
		intents, err := s.store.SweepIntents(ctx, cutoff, sweepBatch)
		for _, in := range intents {
			s.reportOrphan(in)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("sweeping creation intents failed", slog.String("error", err.Error()))
			}
			return
		}
		if len(intents) < sweepBatch {
			return
		}
	}
}

// reportOrphan logs one abandoned creation: never its endpoint (the intent
// has none) nor anything from the request but its size.
func (s *Service) reportOrphan(in state.Intent) {
	s.metrics.orphanedVideos.Inc()
	attrs := []any{slog.String("intent_id", in.ID), slog.Time("created_at", in.CreatedAt), slog.Int64("length", in.Length)}
	if in.VideoID != "" {
		s.log.Warn("orphaned Kinescope video: its upload record was never stored",
			append(attrs, slog.String("video_id", in.VideoID))...)
		return
	}
	s.log.Warn("possibly orphaned Kinescope video: a creation stopped between /v2/init and storing its record, "+
		"video id unknown (look in Kinescope for a video of this size created at this time)", attrs...)
}
