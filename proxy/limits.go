package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limiter keeps the per-address counts of every replica of a deployment in
// one place (redislimit, on the state store's Redis), so that a client's
// creation rate and PATCHes in flight are capped whichever replica it
// reaches. Without one, each replica counts alone. A call that fails is
// decided by the replica's own count (sharedLimits), never by refusing.
type Limiter interface {
	// TakeCreation takes a creation token from addr's bucket of perMinute
	// tokens, refilled evenly over a minute; when the bucket is empty it
	// takes nothing and says how long until a token is back.
	TakeCreation(ctx context.Context, addr netip.Addr, perMinute int, now time.Time) (wait time.Duration, err error)
	// StartStream counts the stream id as one of addr's until now+lease,
	// unless addr has max streams whose lease has not ended (false).
	StartStream(ctx context.Context, addr netip.Addr, id string, max int, now time.Time, lease time.Duration) (bool, error)
	// RenewStreams moves the lease of the streams named, by address, to
	// end at now+lease; those that ended stay gone.
	RenewStreams(ctx context.Context, streams map[netip.Addr][]string, now time.Time, lease time.Duration) error
	// EndStream stops counting the stream.
	EndStream(ctx context.Context, addr netip.Addr, id string) error
}

// sharedTimeout bounds each call to the Limiter made for a request: a slow
// Redis costs a creation or a PATCH at most this much before the replica
// decides alone. Redis answers in well under a millisecond on a healthy
// network; 200 ms rides out a loaded one without letting it stall uploads.
const sharedTimeout = 200 * time.Millisecond

// Streams hold a lease in the Limiter, renewed while they stream, so those
// of a replica that died stop counting within streamLease. Renewing every
// third of the lease lets two renewals fail before a live stream lapses.
const streamLease = 30 * time.Second

// The limits a replica may have to decide alone: the label values of
// tusproxy_limiter_fallbacks_total.
const (
	limitCreateRate   = "create_rate"
	limitPatchesPerIP = "patches_per_ip"
)

// sharedLimits asks the Limiter, when there is one, and notes its failures:
// each call it could not answer counts in tusproxy_limiter_fallbacks_total
// and is decided by this replica's own count instead, as with one replica.
// An outage is logged once when it begins (warning) and once when it ends.
type sharedLimits struct {
	limiter   Limiter // nil: this replica counts alone
	log       *slog.Logger
	fallbacks *prometheus.CounterVec
	failing   atomic.Bool
}

func newSharedLimits(limiter Limiter, reg prometheus.Registerer, log *slog.Logger) *sharedLimits {
	l := &sharedLimits{limiter: limiter, log: log, fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_limiter_fallbacks_total",
		Help: "Per-address limit checks this replica decided alone because the limits shared by the replicas (Redis) did not answer, by limit.",
	}, []string{"limit"})}
	reg.MustRegister(l.fallbacks)
	for _, limit := range []string{limitCreateRate, limitPatchesPerIP} {
		l.fallbacks.WithLabelValues(limit).Add(0)
	}
	return l
}

// callContext bounds a call made for a request. A client that leaves does
// not cut it: that is no outage of the limiter's.
func callContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// note records how a call went, logging only the changes.
func (l *sharedLimits) note(err error) {
	if err == nil {
		if l.failing.Swap(false) {
			l.log.Info("per-address limits are shared by the replicas again")
		}
		return
	}
	if !l.failing.Swap(true) {
		l.log.Warn("per-address limits cannot be shared by the replicas; each counts alone until Redis answers",
			slog.String("error", err.Error()))
	}
}

// fellBack counts a check of limit decided by this replica alone.
func (l *sharedLimits) fellBack(limit string, err error) {
	l.note(err)
	l.fallbacks.WithLabelValues(limit).Inc()
}

// takeCreation asks the shared bucket of addr. decided is false when it
// could not: the caller's own bucket decides.
func (l *sharedLimits) takeCreation(ctx context.Context, addr netip.Addr, perMinute int, now time.Time) (wait time.Duration, decided bool) {
	ctx, cancel := callContext(ctx, sharedTimeout)
	defer cancel()
	wait, err := l.limiter.TakeCreation(ctx, addr, perMinute, now)
	if err != nil {
		l.fellBack(limitCreateRate, err)
		return 0, false
	}
	l.note(nil)
	return wait, true
}

// startStream asks to count a stream among addr's shared ones. decided is
// false when it could not: the caller's own count decides.
func (l *sharedLimits) startStream(ctx context.Context, addr netip.Addr, id string, max int, now time.Time, lease time.Duration) (admitted, decided bool) {
	ctx, cancel := callContext(ctx, sharedTimeout)
	defer cancel()
	admitted, err := l.limiter.StartStream(ctx, addr, id, max, now, lease)
	if err != nil {
		l.fellBack(limitPatchesPerIP, err)
		return false, false
	}
	l.note(nil)
	return admitted, true
}

// endStream stops counting a shared stream. If Redis does not hear it, the
// stream's lease ends it.
func (l *sharedLimits) endStream(ctx context.Context, addr netip.Addr, id string) {
	ctx, cancel := callContext(ctx, sharedTimeout)
	defer cancel()
	l.note(l.limiter.EndStream(ctx, addr, id))
}

// renewStreams extends the leases of the shared streams in flight to
// now+lease. It runs in the background, so it may wait longer than a request
// would (a sixth of the lease: half the time to the next renewal).
func (l *sharedLimits) renewStreams(ctx context.Context, streams map[netip.Addr][]string, now time.Time, lease time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, lease/6)
	defer cancel()
	l.note(l.limiter.RenewStreams(ctx, streams, now, lease))
}

// creationRate caps how many uploads one client address may start a minute
// (off when 0): a token bucket per address, shared by the replicas when
// there is a Limiter, else (or while it fails) this replica's own, an
// x/time/rate Limiter. The caps on bodies streaming at once are in streams.
type creationRate struct {
	createPerMinute int
	shared          *sharedLimits

	mu      sync.Mutex
	buckets map[netip.Addr]*rate.Limiter // creation tokens per limitKey
}

// limitsMaxAddrs bounds the per-address state; idle full buckets are
// dropped when it is reached.
const limitsMaxAddrs = 100_000

func newCreationRate(createPerMinute int, shared *sharedLimits) *creationRate {
	return &creationRate{createPerMinute: createPerMinute, shared: shared, buckets: make(map[netip.Addr]*rate.Limiter)}
}

// allowCreate takes a creation token for a client (its limitKey), or says
// how long to wait.
func (l *creationRate) allowCreate(ctx context.Context, addr netip.Addr, now time.Time) error {
	if l.createPerMinute <= 0 {
		return nil
	}
	if l.shared.limiter != nil {
		if wait, decided := l.shared.takeCreation(ctx, addr, l.createPerMinute, now); decided {
			return rateLimited(wait)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= limitsMaxAddrs {
			l.dropFullBuckets(now)
		}
		// Full at first: createPerMinute creations at once, then one every
		// 60s/createPerMinute.
		b = rate.NewLimiter(rate.Limit(float64(l.createPerMinute)/60), l.createPerMinute)
		l.buckets[addr] = b
	}
	r := b.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		// Refused: the token is given back, so a client that keeps asking
		// does not push its own turn further away.
		r.CancelAt(now)
		return rateLimited(wait)
	}
	return nil
}

// rateLimited is the answer to a creation that must wait (nil: none).
func rateLimited(wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	e := *errCreateRate
	e.RetryAfter = wait
	return &e
}

func (l *creationRate) dropFullBuckets(now time.Time) {
	for addr, b := range l.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.buckets, addr)
		}
	}
}
