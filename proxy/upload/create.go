package upload

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
// older than IntentGrace (ReportOrphans, in expire.go).

// intentGraceMargin is how much longer than the init timeout a creation may
// take before its intent counts as abandoned: the record's write after init
// (a few seconds at worst with Redis's client timeouts) and clocks of
// replicas that disagree a little. Any replica may report any intent, so the
// grace must never cut a creation still running elsewhere.
const intentGraceMargin = 5 * time.Minute

// IntentGrace is the age after which an intent without its record is
// reported as an orphaned video.
func (l *Lifecycle) IntentGrace() time.Duration { return l.cfg.InitTimeout + intentGraceMargin }

// CreateRequest is a creation the adapter has validated and authorized.
type CreateRequest struct {
	ID       string // from NewID, chosen before init so the intent has it
	Length   int64
	Metadata string // Upload-Metadata as the client sent it
	Owner    string
	Init     kinescope.InitRequest // what Kinescope is asked; its ParentID and ClientIP are stored too
	// URL is the absolute upload URL the client is answered in Location.
	URL string
	// Context is the application's context (a compact JSON object, "" for
	// none), validated by the adapter. It is stored with the record and
	// never put in Init.
	Context string
}

// Create starts an upload: it records the intent, asks Kinescope for a
// video, and stores the record, which removes the intent in the same
// write. It returns the upload and Kinescope's request id (on failure, the
// id is in the UpstreamError; the record, when init answered, is returned
// all the same).
func (l *Lifecycle) Create(ctx context.Context, req CreateRequest) (Status, string, error) {
	in := state.Intent{ID: req.ID, Length: req.Length, CreatedAt: l.now()}
	if err := l.store.CreateIntent(ctx, in); err != nil {
		// Kinescope is not called unless the intent is stored: an outage of
		// the store creates no video.
		return Status{}, "", l.storeFailed(OpCreateIntent, req.ID, err)
	}
	up, err := l.initVideo(ctx, req.ID, req.Init)
	if err != nil {
		return Status{}, up.RequestID, err
	}
	now := l.now()
	rec := state.Record{ID: req.ID, VideoID: up.VideoID, Endpoint: up.Endpoint, Length: req.Length,
		Metadata: req.Metadata, Owner: req.Owner, ParentID: req.Init.ParentID, ClientIP: req.Init.ClientIP,
		URL: req.URL, Context: req.Context, CreatedAt: now, UpdatedAt: now}
	created := l.event(Created, rec)
	created.RequestID = up.RequestID
	if err := l.store.Create(context.WithoutCancel(ctx), rec, l.durable(Created, created.At)); err != nil {
		l.log.Error("the Kinescope video is orphaned: its record could not be stored", slog.String("video_id", rec.VideoID),
			slog.String("intent_id", rec.ID))
		l.noteOrphan(ctx, rec.ID, rec.VideoID)
		return Status{Record: rec}, up.RequestID, l.storeFailed(OpCreate, rec.ID, err)
	}
	l.publish(created)
	return l.status(rec), up.RequestID, nil
}

// Init asks Kinescope for a video and checks its endpoint, storing
// nothing: the seed flow, whose client uploads to Kinescope directly.
func (l *Lifecycle) Init(ctx context.Context, req kinescope.InitRequest) (kinescope.Upload, error) {
	return l.initVideo(ctx, "", req)
}

// initVideo calls Kinescope's /v2/init and checks that the endpoint may be
// used. intentID is the creation's intent, "" for none.
func (l *Lifecycle) initVideo(ctx context.Context, intentID string, req kinescope.InitRequest) (kinescope.Upload, error) {
	began := time.Now()
	up, err := l.init.Init(ctx, req)
	l.called("init", began, err)
	if err != nil {
		l.settleIntent(ctx, intentID, err)
		return up, l.initError(err)
	}
	if err := l.endpoints.Check(up.Endpoint); err != nil {
		l.publish(Event{Kind: EndpointRefused, At: l.now()})
		// Logged without the endpoint itself: it is a secret too.
		l.log.Error("kinescope issued an endpoint outside TUSPROXY_UPSTREAM_HOSTS", slog.String("video_id", up.VideoID),
			slog.String("kinescope_request_id", up.RequestID), slog.String("reason", err.Error()))
		l.noteOrphan(ctx, intentID, up.VideoID) // a video exists that no record will name
		return kinescope.Upload{RequestID: up.RequestID}, &UpstreamError{Op: "init", Kind: KindEndpointRefused, RequestID: up.RequestID}
	}
	return up, nil
}

// initError sorts a failed /v2/init. Kinescope's own text goes to the log
// only: whoever answers at the init URL must not be able to put words in
// front of the operator's users.
func (l *Lifecycle) initError(err error) error {
	var ke *kinescope.Error
	if !errors.As(err, &ke) {
		l.log.Error("kinescope init failed", slog.String("error", err.Error()))
		return &UpstreamError{Op: "init", Kind: KindBadResponse, Cause: err}
	}
	if ke.Kind == kinescope.KindCanceled {
		return ErrClientGone
	}
	l.log.Warn("kinescope init failed", slog.String("reason", ke.Kind.String()), slog.Int("status", ke.Status),
		slog.Int("code", ke.Code), slog.String("message", ke.Message), slog.String("kinescope_request_id", ke.RequestID))
	e := &UpstreamError{Op: "init", RequestID: ke.RequestID, Cause: err}
	switch ke.Kind {
	case kinescope.KindAuth:
		e.Kind = KindCredentials
	case kinescope.KindLimit:
		e.Kind = KindRefused
	case kinescope.KindBadRequest:
		e.Kind = KindBadRequest
	case kinescope.KindRateLimited, kinescope.KindUnavailable:
		e.Kind, e.RetryAfter = KindBusy, ke.RetryAfter
	case kinescope.KindTimeout:
		e.Kind, e.RetryAfter = KindTimeout, ke.RetryAfter
	default:
		e.Kind = KindBadResponse
	}
	return e
}

// settleIntent removes the intent of a creation whose init failed in a way
// that made no video: Kinescope refused it (4xx), failed it (5xx) or could
// not be reached. An init that timed out, whose client went away, or whose
// answer could not be read may have created a video all the same: its
// intent stays, to be reported without a video id. (A connection cut after
// the request was sent is reported as unreachable and dropped: counting
// every refused connection of a Kinescope outage as a possible video would
// drown the real ones.)
func (l *Lifecycle) settleIntent(ctx context.Context, id string, initErr error) {
	if id == "" || initMayHaveCreated(initErr) {
		return
	}
	if err := l.store.DeleteIntent(context.WithoutCancel(ctx), id); err != nil {
		l.log.Warn("could not remove the intent of a refused creation; it will be reported as a possibly orphaned video",
			slog.String("intent_id", id), slog.String("error", err.Error()))
		l.storeError(OpDeleteIntent)
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
func (l *Lifecycle) noteOrphan(ctx context.Context, id, videoID string) {
	if id == "" {
		return
	}
	err := l.store.SetIntentVideo(context.WithoutCancel(ctx), id, videoID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		// The store is likely down: the intent will be reported without
		// the video id, which this line gives.
		l.log.Error("could not record the video id of an orphaned Kinescope video in its intent",
			slog.String("intent_id", id), slog.String("video_id", videoID), slog.String("error", err.Error()))
		l.storeError(OpSetIntentVideo)
	}
}
