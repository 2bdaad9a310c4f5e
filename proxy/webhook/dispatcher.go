package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/safetext"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// Outbox is where the dispatcher finds the events to deliver: state's own
// Outbox, which every state.Store implements.
type Outbox = state.Outbox

// Metrics receives what the dispatcher measures; package proxy turns it
// into Prometheus metrics. Calls come from several goroutines at once.
type Metrics interface {
	// Attempt counts one POST of an event of type eventType, by outcome
	// (one of Outcomes but OutcomeGivenUp), and how long it took.
	Attempt(eventType, outcome string, took time.Duration)
	// GivenUp counts an event dropped because its next attempt would fall
	// after TUSPROXY_WEBHOOK_MAX_AGE.
	GivenUp(eventType string)
	// Backlog reports the outbox as last sampled: pending events, and when
	// the oldest of them was created (zero when none).
	Backlog(pending int, oldest time.Time)
}

// The outcomes of a delivery attempt, and of an event given up.
const (
	OutcomeDelivered  = "delivered"  // a 2xx: the event is removed
	OutcomeRedirected = "redirected" // a 3xx: redirects are never followed, so it is a failure
	OutcomeRejected   = "rejected"   // a 4xx
	OutcomeFailed     = "failed"     // a 5xx or any other status
	OutcomeTimeout    = "timeout"    // no whole answer within TUSPROXY_WEBHOOK_TIMEOUT
	OutcomeNetwork    = "network"    // no connection, or it broke
	OutcomeCanceled   = "canceled"   // cut by a shutdown; the event stays pending
	OutcomeGivenUp    = "given_up"   // too old to retry: logged, counted and removed
)

// Outcomes is the whole set, for metrics created up front.
var Outcomes = []string{OutcomeDelivered, OutcomeRedirected, OutcomeRejected, OutcomeFailed, OutcomeTimeout,
	OutcomeNetwork, OutcomeCanceled, OutcomeGivenUp}

// Defaults of Config's optional fields. The issue fixes only the timeout and
// the maximum age; the rest are this package's choices.
const (
	DefaultTimeout = 10 * time.Second
	DefaultMaxAge  = 72 * time.Hour
	// DefaultWorkers bounds the POSTs in flight. Deliveries wait on the
	// receiver, not on CPU: 16 drain a backlog of thousands in a minute
	// from a receiver answering in 50 ms, without opening hundreds of
	// connections to it.
	DefaultWorkers = 16
	// DefaultPollInterval is how often an idle dispatcher asks the outbox
	// for work; Notify wakes it at once when an event is stored here.
	DefaultPollInterval = time.Second
	// DefaultStatsInterval is how often the backlog is sampled for the
	// metrics; the alert on the oldest event's age is in minutes.
	DefaultStatsInterval = 10 * time.Second
	// DefaultRetryBase and DefaultRetryCap shape the backoff: the n-th
	// retry waits a random time from 0 to min(cap, base·2^(n-1)) (full
	// jitter, so replicas and events that failed together do not retry
	// together). 5 s grows to the 1 h cap after ten failures; over the
	// 72 h default maximum age an event is tried about 150 times.
	DefaultRetryBase = 5 * time.Second
	DefaultRetryCap  = time.Hour
)

// storeTimeout bounds one outbox call. Acks and retries get it even when a
// shutdown began: an event delivered but not acked is delivered twice.
const storeTimeout = 5 * time.Second

// maxResponseBytes is as much of a receiver's answer as is read: enough to
// keep the connection for the next delivery when the answer is small, and
// no more memory than that when it is not.
const maxResponseBytes = 64 << 10

// maxLoggedResponse is as much of an answer as a log line quotes.
const maxLoggedResponse = 200

// Config is the dispatcher's configuration: the TUSPROXY_WEBHOOK_* settings
// and tuning with defaults.
type Config struct {
	// URL is the receiver, an absolute http(s) URL (TUSPROXY_WEBHOOK_URL).
	URL string
	// Secret is TUSPROXY_WEBHOOK_SECRET as given: one or more "whsec_"
	// secrets separated by spaces (see ParseSecrets).
	Secret string
	// Timeout bounds one POST, from dialling to the end of the answer read.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MaxAge is how long an event is retried: a failed attempt whose next
	// try would fall later than CreatedAt+MaxAge gives the event up.
	// Default DefaultMaxAge.
	MaxAge time.Duration
	// Workers bounds the deliveries in flight. Default DefaultWorkers.
	Workers int
	// Lease is how long a claimed event is this process's: longer than a
	// POST and the store call after it, so no other replica takes it while
	// it is in flight; if this process dies, another delivers it after the
	// lease. Default 2×Timeout + 5s.
	Lease time.Duration
	// PollInterval, StatsInterval, RetryBase and RetryCap default to the
	// constants of the same names.
	PollInterval  time.Duration
	StatsInterval time.Duration
	RetryBase     time.Duration
	RetryCap      time.Duration
}

// Deps are what the dispatcher uses but does not own.
type Deps struct {
	Outbox  Outbox       // required
	Log     *slog.Logger // nil: discard
	Metrics Metrics      // nil: none
	// HTTP is the client deliveries use. nil: one of the dispatcher's own,
	// with dial, TLS and header timeouts of Config.Timeout. Either way
	// redirects are not followed: a 3xx is a failed attempt.
	HTTP *http.Client
	Now  func() time.Time // nil: time.Now
}

// Dispatcher delivers the outbox's events to the receiver. Build it with
// New, run it with Run, stop it with Shutdown.
type Dispatcher struct {
	cfg     Config
	signer  *Signer
	box     Outbox
	log     *slog.Logger
	metrics Metrics
	client  *http.Client
	now     func() time.Time

	wake  chan struct{} // an event was stored or a worker finished: claim again
	slots chan struct{} // one token per delivery in flight

	// abortDeliveries cuts the POSTs in flight when the shutdown timeout
	// runs out; they stay pending, leased, and are claimed again after it.
	deliveries      context.Context
	abortDeliveries context.CancelFunc

	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown: stop claiming
	mu       sync.Mutex
	started  bool
	done     chan struct{} // closed when Run returns
}

// New checks cfg, fills its defaults and returns a dispatcher. It does not
// start it.
func New(cfg Config, deps Deps) (*Dispatcher, error) {
	if deps.Outbox == nil {
		return nil, errors.New("webhook: an outbox is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		// Not quoted: the URL may carry a key in its query.
		return nil, errors.New("webhook: the URL must be an absolute http:// or https:// URL")
	}
	signer, err := ParseSecrets(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: secret %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2*cfg.Timeout + storeTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = DefaultStatsInterval
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryCap <= 0 {
		cfg.RetryCap = DefaultRetryCap
	}
	d := &Dispatcher{
		cfg:     cfg,
		signer:  signer,
		box:     deps.Outbox,
		log:     deps.Log,
		metrics: deps.Metrics,
		now:     deps.Now,
		wake:    make(chan struct{}, 1),
		slots:   make(chan struct{}, cfg.Workers),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.metrics == nil {
		d.metrics = noMetrics{}
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.client = newClient(deps.HTTP, cfg)
	d.deliveries, d.abortDeliveries = context.WithCancel(context.Background())
	return d, nil
}

// newClient returns a copy of given (or a client of its own) that never
// follows a redirect: the receiver is the operator's one URL, and a signed
// event must not be re-sent wherever a 3xx points.
func newClient(given *http.Client, cfg Config) *http.Client {
	var c http.Client
	if given != nil {
		c = *given
	} else {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.DialContext = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext
		transport.TLSHandshakeTimeout = cfg.Timeout
		transport.ResponseHeaderTimeout = cfg.Timeout
		transport.MaxIdleConnsPerHost = cfg.Workers
		c.Transport = transport
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// Notify tells the dispatcher that an event was just stored, so it claims
// at once instead of at its next poll. It never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers events until ctx is done or Shutdown is called: then it
// stops claiming, waits for the deliveries in flight (each bounded by
// Config.Timeout, or cut by Shutdown) and returns. Run is called once.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		panic("webhook: Dispatcher.Run called twice")
	}
	d.started = true
	d.mu.Unlock()
	defer close(d.done)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	stats := time.NewTicker(d.cfg.StatsInterval)
	defer stats.Stop()
	poll := time.NewTimer(0)
	defer poll.Stop()
	claimFailing := false
	var lastClaimLog time.Time

	d.sampleBacklog(ctx)
	for ctx.Err() == nil {
		select {
		case <-stats.C:
			d.sampleBacklog(ctx)
		default:
		}
		free := cap(d.slots) - len(d.slots)
		if free > 0 {
			events, err := d.box.ClaimEvents(ctx, d.now(), d.cfg.Lease, free)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				// Logged when it starts failing and once a minute while it
				// does: a store outage must not flood the log.
				if !claimFailing || d.now().Sub(lastClaimLog) >= time.Minute {
					d.log.Warn("webhook outbox claim failed; retrying", "error", err)
					lastClaimLog = d.now()
				}
				claimFailing = true
			case claimFailing:
				d.log.Info("webhook outbox answers again")
				claimFailing = false
			}
			for _, ev := range events {
				// Only this loop takes slots, so free of them are there.
				d.slots <- struct{}{}
				inFlight.Add(1)
				go func() {
					defer inFlight.Done()
					d.deliver(ev)
					<-d.slots
					// An ack may have made the upload's next event
					// deliverable: look again.
					d.Notify()
				}()
			}
			if err == nil && len(events) == free {
				continue // there may be more right now
			}
		}
		poll.Reset(d.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-poll.C:
		case <-stats.C:
			d.sampleBacklog(ctx)
		}
	}
}

// Shutdown stops claiming and waits for the deliveries in flight until ctx
// is done; then it cuts them (they stay pending, and are delivered after
// their lease, by this process's next start or another replica) and waits
// for Run to return. It returns ctx's error when it had to cut.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() { close(d.stop) })
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		d.abortDeliveries()
		<-d.done
		return ctx.Err()
	}
}

// sampleBacklog reports the outbox's size and oldest event to the metrics.
func (d *Dispatcher) sampleBacklog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	pending, oldest, err := d.box.OutboxStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Debug("webhook outbox stats failed", "error", err)
		}
		return
	}
	d.metrics.Backlog(pending, oldest)
}

// attempt is what one POST came to.
type attempt struct {
	outcome    string
	status     int           // 0 when no answer came
	retryAfter time.Duration // the answer's Retry-After, 0 when none
	detail     string        // for the log: the error, or the start of the answer
}

// deliver makes one attempt at ev, then acks it, schedules its retry or
// gives it up.
func (d *Dispatcher) deliver(ev state.Event) {
	began := d.now()
	result := d.post(ev)
	finished := d.now()
	d.metrics.Attempt(ev.Type, result.outcome, finished.Sub(began))

	// The store calls outlive a shutdown's cut: their outcome decides
	// whether the event is sent again.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	attrs := []any{"event_id", ev.ID, "type", ev.Type, "upload_id", ev.UploadID, "attempt", ev.Attempts + 1}
	switch result.outcome {
	case OutcomeDelivered:
		if err := d.box.AckEvent(ctx, ev.ID); err != nil {
			d.log.Warn("webhook delivered but not removed from the outbox; it will be delivered again", append(attrs, "error", err)...)
			return
		}
		d.log.Debug("webhook delivered", append(attrs, "status", result.status, "took", finished.Sub(began))...)
		return
	case OutcomeCanceled:
		d.log.Info("webhook delivery cut by the shutdown; it stays pending", attrs...)
		return
	}

	attrs = append(attrs, "outcome", result.outcome)
	if result.status != 0 {
		attrs = append(attrs, "status", result.status)
	}
	if result.detail != "" {
		attrs = append(attrs, "detail", result.detail)
	}
	next := finished.Add(d.retryDelay(ev.Attempts, result.retryAfter))
	if deadline := ev.CreatedAt.Add(d.cfg.MaxAge); next.After(deadline) {
		if err := d.box.AckEvent(ctx, ev.ID); err != nil {
			d.log.Warn("webhook event could not be given up; it will be tried again", append(attrs, "error", err)...)
			return
		}
		d.metrics.GivenUp(ev.Type)
		d.log.Warn("webhook event given up: its next attempt would be after the maximum age",
			append(attrs, "age", finished.Sub(ev.CreatedAt).Round(time.Second), "max_age", d.cfg.MaxAge)...)
		return
	}
	if err := d.box.RetryEvent(ctx, ev.ID, next); err != nil {
		d.log.Warn("webhook delivery failed and its retry could not be scheduled; it is tried again after its lease",
			append(attrs, "error", err)...)
		return
	}
	d.log.Info("webhook delivery failed; retrying", append(attrs, "retry_in", next.Sub(finished).Round(time.Millisecond))...)
}

// post sends ev once, signed for this attempt.
func (d *Dispatcher) post(ev state.Event) attempt {
	ctx, cancel := context.WithTimeout(d.deliveries, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return attempt{outcome: OutcomeNetwork, detail: "building the request failed"}
	}
	// Standard Webhooks verifiers refuse a timestamp more than five minutes
	// off their clock, so every attempt is signed anew with its own.
	timestamp := d.now()
	// Header names are case-insensitive (RFC 9110 §5.1): Go sends them
	// canonical (Webhook-Id) over HTTP/1.1 and lowercase over HTTP/2, and
	// the published verifiers look them up either way.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tusproxy-webhook")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	req.Header.Set(HeaderSignature, d.signer.Sign(ev.ID, timestamp, ev.Body))

	resp, err := d.client.Do(req)
	if err != nil {
		return d.failure(ctx, err)
	}
	defer resp.Body.Close()
	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	result := attempt{status: resp.StatusCode}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// The status is the receiver's word; a body cut short does not
		// undo it.
		result.outcome = OutcomeDelivered
		return result
	case readErr != nil && d.deliveries.Err() != nil:
		return attempt{outcome: OutcomeCanceled}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		result.outcome = OutcomeRedirected
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		result.outcome = OutcomeRejected
	default:
		result.outcome = OutcomeFailed
	}
	result.retryAfter = retryAfter(resp.Header.Get("Retry-After"), d.now())
	result.detail = excerpt(answer)
	return result
}

// failure classifies a POST that got no answer. The error's URL is left
// out: the receiver's URL may carry a key in its query.
func (d *Dispatcher) failure(ctx context.Context, err error) attempt {
	if d.deliveries.Err() != nil {
		return attempt{outcome: OutcomeCanceled}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	var netErr net.Error
	if ctx.Err() != nil || (errors.As(err, &netErr) && netErr.Timeout()) {
		return attempt{outcome: OutcomeTimeout, detail: fmt.Sprintf("no answer within %s", d.cfg.Timeout)}
	}
	return attempt{outcome: OutcomeNetwork, detail: safetext.Blank(err.Error())}
}

// excerpt is the start of a receiver's answer, safe for a log line: never
// the whole of it, and no control characters to forge lines with.
func excerpt(answer []byte) string {
	if len(answer) > maxLoggedResponse {
		answer = answer[:maxLoggedResponse]
	}
	return safetext.Blank(string(answer))
}

type noMetrics struct{}

func (noMetrics) Attempt(string, string, time.Duration) {}
func (noMetrics) GivenUp(string)                        {}
func (noMetrics) Backlog(int, time.Time)                {}
