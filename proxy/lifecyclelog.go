package proxy

import (
	"log/slog"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// lifecycleLog writes one log line per lifecycle fact. It never logs an
// endpoint (a secret) nor anything a client sent but the upload's size.
type lifecycleLog struct{ log *slog.Logger }

var _ upload.Observer = lifecycleLog{}

func (l lifecycleLog) Observe(e upload.Event) {
	rec := e.Upload
	switch e.Kind {
	case upload.Created:
		l.log.Info("upload created", slog.String("upload_id", rec.ID), slog.String("video_id", rec.VideoID),
			slog.Int64("length", rec.Length), slog.String("kinescope_request_id", e.RequestID))
	case upload.Expired:
		l.log.Info("upload expired", slog.String("upload_id", rec.ID), slog.String("video_id", rec.VideoID),
			slog.Int64("offset", rec.Offset), slog.Int64("length", rec.Length))
	case upload.Lost:
		l.log.Warn("upstream no longer has the upload; record dropped", slog.String("upload_id", rec.ID),
			slog.String("video_id", rec.VideoID), slog.Int("upstream_status", e.UpstreamStatus))
	case upload.Orphaned:
		in := e.Intent
		attrs := []any{slog.String("intent_id", in.ID), slog.Time("created_at", in.CreatedAt), slog.Int64("length", in.Length)}
		if in.VideoID != "" {
			l.log.Warn("orphaned Kinescope video: its upload record was never stored",
				append(attrs, slog.String("video_id", in.VideoID))...)
			return
		}
		l.log.Warn("possibly orphaned Kinescope video: a creation stopped between /v2/init and storing its record, "+
			"video id unknown (look in Kinescope for a video of this size created at this time)", attrs...)
	}
}
