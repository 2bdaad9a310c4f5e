// Package upload owns the upload lifecycle of tusproxy: creating an upload
// (an intent, Kinescope's init, the record), opening one (access, lock,
// record), writing to it (streaming to the upstream tus endpoint and
// reconciling with what the upstream kept), its offset, terminating it and
// expiring it. It emits one Event per fact, after the fact is stored.
//
// It knows nothing of HTTP servers, routers or metrics: it returns the
// errors of errors.go, and the HTTP adapter (package proxy) turns them into
// tus answers. The interfaces it needs are declared here, where they are
// used: Initializer (Kinescope's /v2/init), Upstream (the upload's tus
// endpoint), Body (a client's body), Observer (metrics, logs),
// EventEncoder (the durable events of webhooks).
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Initializer asks Kinescope for a new video and its tus endpoint
// (*kinescope.Client). Failures are *kinescope.Error.
type Initializer interface {
	Init(ctx context.Context, req kinescope.InitRequest) (kinescope.Upload, error)
}

// Upstream is the tus client of the upload endpoints (*tusproto.Client).
// Failures are *tusproto.Error. It must never follow redirects.
type Upstream interface {
	Head(ctx context.Context, endpoint string) (tusproto.UploadState, error)
	Patch(ctx context.Context, endpoint string, offset int64, body io.Reader, size int64) (int64, error)
	Delete(ctx context.Context, endpoint string) error
}

// EndpointChecker refuses an endpoint Kinescope issued that tusproxy may
// not use (kinescope.EndpointPolicy).
type EndpointChecker interface {
	Check(endpoint string) error
}

// Body is a client's body on its way to the upstream.
type Body interface {
	io.Reader
	// Failure says why reading the body stopped (the client left or
	// stalled, a newer request took the upload over, a shutdown): nil while
	// it is fine. The error is returned by Write as it is.
	Failure() error
	// Received counts the bytes read so far; safe from any goroutine.
	Received() int64
}

// Config is the part of tusproxy's configuration the lifecycle applies.
type Config struct {
	UploadTTL       time.Duration // idle uploads expire after it; 0: never
	UpstreamTimeout time.Duration // bounds each upstream HEAD and DELETE
	ChunkSize       int64         // the largest upstream PATCH; 0: one PATCH per write
	InitTimeout     time.Duration // bounds Kinescope's init; intents older than it plus a margin are orphans
	// LockWait is how long Open waits for an upload's lock after asking
	// its holder to let go. 0: 5 seconds.
	LockWait time.Duration
	// SettleGrace is how long an offset query (HEAD) of an incomplete
	// upload holds its lock before asking the upstream, so that a PATCH its
	// client sent before it, whose handler the server has not started yet,
	// queues behind it and is then refused (see Handle.Offset). 0: 50ms;
	// negative: none.
	SettleGrace time.Duration
}

// Deps are what the lifecycle works with.
type Deps struct {
	Store     state.Store
	Locker    handler.Locker // tusd's contract: one holder per upload, release requests
	Init      Initializer
	Upstream  Upstream
	Endpoints EndpointChecker
	Observer  Observer     // nil: nobody listens
	Events    EventEncoder // nil: no durable events (no webhooks)
	Log       *slog.Logger // nil: discard
	Now       func() time.Time
}

// Lifecycle is the upload lifecycle. Build it with New; it is safe for
// concurrent use.
type Lifecycle struct {
	cfg       Config
	store     state.Store
	locker    handler.Locker
	init      Initializer
	upstream  Upstream
	endpoints EndpointChecker
	observer  Observer
	encoder   EventEncoder
	log       *slog.Logger
	now       func() time.Time

	storeDown atomic.Bool // the last store operation failed; see StoreUsable
	settles   settles     // when offsets were answered; see Write
}

// New builds a Lifecycle.
func New(cfg Config, deps Deps) *Lifecycle {
	if cfg.SettleGrace == 0 {
		cfg.SettleGrace = 50 * time.Millisecond
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 5 * time.Second
	}
	l := &Lifecycle{cfg: cfg, store: deps.Store, locker: deps.Locker, init: deps.Init, upstream: deps.Upstream,
		endpoints: deps.Endpoints, observer: deps.Observer, encoder: deps.Events, log: deps.Log, now: deps.Now}
	if l.observer == nil {
		l.observer = Observers(nil)
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// publish hands events to the observers. Every event leaves the lifecycle
// here, after the store write that caused it succeeded: the in-process
// delivery. The durable copy of a lifecycle event is in that write itself
// (durable.go).
func (l *Lifecycle) publish(events ...Event) {
	for _, e := range events {
		l.observer.Observe(e)
	}
}

// event builds an event about rec, stamped now.
func (l *Lifecycle) event(kind EventKind, rec state.Record) Event {
	return Event{Kind: kind, At: l.now(), Upload: rec}
}

// called reports one upstream request: the one place its timing is taken
// and published.
func (l *Lifecycle) called(op string, began time.Time, err error) {
	l.publish(Event{Kind: UpstreamCall, At: l.now(), Call: &Call{Op: op, Err: err, Duration: time.Since(began)}})
}

// NewID returns 128 random bits as 32 lowercase hex characters: unguessable
// (the upload URL is a capability) and safe in any URL.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("tusproxy: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// ValidID rejects anything NewID cannot have made before it reaches a store.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Status is an upload as its client is told about it: its record, and when
// it expires unless it is used again.
type Status struct {
	state.Record
	Expires time.Time // zero when uploads never expire
}

func (l *Lifecycle) status(rec state.Record) Status {
	return Status{Record: rec, Expires: l.expiresAt(rec)}
}

// expiresAt is when an idle upload expires; zero when uploads never expire.
func (l *Lifecycle) expiresAt(rec state.Record) time.Time {
	if l.cfg.UploadTTL <= 0 {
		return time.Time{}
	}
	return rec.UpdatedAt.Add(l.cfg.UploadTTL)
}

func (l *Lifecycle) expired(rec state.Record) bool {
	exp := l.expiresAt(rec)
	return !exp.IsZero() && l.now().After(exp)
}

// storeFailed logs a failure of the state store (or of the lock service
// next to it) and returns ErrStoreUnavailable. Nothing is lost: the
// operation changed nothing, and the caller retries once the store is back.
func (l *Lifecycle) storeFailed(op, id string, err error) error {
	if errors.Is(err, context.Canceled) {
		// The client went away while the store answered: not an outage.
		return ErrClientGone
	}
	l.storeDown.Store(true)
	l.log.Error("state store failed", slog.String("op", op), slog.String("upload_id", id), slog.String("error", err.Error()))
	l.storeError(op)
	return ErrStoreUnavailable
}

// storeError reports a failed store operation to the observers, so an
// outage shows in metrics even when no request is answered 5xx because of
// it (a balancer that drops a not-ready replica sends it none).
func (l *Lifecycle) storeError(op string) {
	l.publish(Event{Kind: StoreFailed, At: l.now(), Detail: op})
}

// storeCheckTimeout bounds the ping of StoreUsable.
const storeCheckTimeout = 2 * time.Second

// StoreUsable is false while the store is known to be failing and does not
// answer a ping. Creation checks it before anything else, so an outage
// does not leave a trail of Kinescope videos without records.
func (l *Lifecycle) StoreUsable(ctx context.Context) bool {
	if !l.storeDown.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	if err := l.store.Ping(ctx); err != nil {
		l.storeError(OpPing)
		return false
	}
	l.storeDown.Store(false)
	return true
}
