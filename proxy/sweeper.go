package proxy

import (
	"context"
	"log/slog"
	"time"
)

// sweepBatch bounds each store sweep, so a backlog of expired uploads never
// holds one long write transaction.
const sweepBatch = 500

// Run does the service's background work until ctx is done: it samples
// the per-upload metrics, and forgets uploads idle longer than the upload
// TTL. The Kinescope video of an expired upload is left as it is: Kinescope
// decides what happens to an unfinished video.
func (s *Service) Run(ctx context.Context) {
	go s.metrics.runSampler(ctx)
	if s.cfg.UploadTTL <= 0 {
		<-ctx.Done()
		return
	}
	interval := min(max(s.cfg.UploadTTL/10, time.Second), time.Minute)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	s.sweep(ctx) // uploads that expired while tusproxy was down go at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

func (s *Service) sweep(ctx context.Context) {
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
