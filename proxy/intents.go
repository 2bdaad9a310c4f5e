package proxy

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// A creation is recorded as an intent before Kinescope's /v2/init, and the
// record that ends it removes the intent in the same store write. So when
// tusproxy dies (kill -9, OOM, a node lost) or the store fails between init
// and the record, the Kinescope video is not lost without a trace: the
// intent stays behind, and the sweeper of any replica reports it once it is
// older than intentGrace (reportOrphans, in sweeper.go).

// intentGraceMargin is how much longer than the init timeout a creation may
// take before its intent counts as abandoned: the record's write after init
// (a few seconds at worst with Redis's client timeouts) and clocks of
// replicas that disagree a little. Any replica may report any intent, so the
// grace must never cut a creation still running elsewhere.
const intentGraceMargin = 5 * time.Minute

// intentGrace is the age after which an intent without its record is
// reported as an orphaned video.
func (s *Service) intentGrace() time.Duration { return s.cfg.InitTimeout + intentGraceMargin }

// recordIntent stores the creation's intent; Kinescope is not called unless
// it is stored, so an outage of the store creates no video.
func (s *Service) recordIntent(ctx context.Context, c creation) error {
	in := state.Intent{ID: c.uploadID, Length: c.length, CreatedAt: s.now()}
	if err := s.store.CreateIntent(ctx, in); err != nil {
		return s.storeFailed("create intent", c.uploadID, err)
	}
	return nil
}

// settleIntent removes the intent of a creation whose init failed in a way
// that made no video: Kinescope refused it (4xx), failed it (5xx) or could
// not be reached. An init that timed out, whose client went away, or whose
// answer could not be read may have created a video all the same: its
// intent stays, to be reported without a video id. (A connection cut after
// the request was sent is reported as unreachable and dropped: counting
// every refused connection of a Kinescope outage as a possible video would
// drown the real ones.)
func (s *Service) settleIntent(ctx context.Context, id string, initErr error) {
	if id == "" || initMayHaveCreated(initErr) {
		return
	}
	if err := s.store.DeleteIntent(context.WithoutCancel(ctx), id); err != nil {
		s.log.Warn("could not remove the intent of a refused creation; it will be reported as a possibly orphaned video",
			slog.String("intent_id", id), slog.String("error", err.Error()))
	}
}

// initMayHaveCreated reports whether a failed init may still have created a
// Kinescope video.
func initMayHaveCreated(err error) bool {
	var ke *kinescope.Error
	if !errors.As(err, &ke) {
		return true // not classified: assume the worst
	}
	switch ke.Kind {
	case kinescope.KindTimeout, kinescope.KindCanceled, kinescope.KindBadResponse:
		return true
	}
	return false
}

// noteOrphan records the video id in the intent of a creation whose init
// answered but whose record will not be stored, so the report names the
// video. The intent itself stays for the sweeper to report.
func (s *Service) noteOrphan(ctx context.Context, id, videoID string) {
	if id == "" {
		return
	}
	err := s.store.SetIntentVideo(context.WithoutCancel(ctx), id, videoID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		// The store is likely down: the intent will be reported without
		// the video id, which this line gives.
		s.log.Error("could not record the video id of an orphaned Kinescope video in its intent",
			slog.String("intent_id", id), slog.String("video_id", videoID), slog.String("error", err.Error()))
	}
}
