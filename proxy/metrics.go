package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Label values come from fixed sets, created up front so dashboards and
// rate() see zeros rather than gaps. Each list is the whole set: anything
// else is folded into "other" before it reaches a label.
var (
	metricMethods  = []string{"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "other"}
	statusClasses  = []string{"1xx", "2xx", "3xx", "4xx", "5xx"}
	upstreamOps    = []string{"init", "head", "patch", "delete"}
	outcomes       = []string{outcomeOK, outcomeRejected, outcomeFailed, outcomeBadResponse, outcomeTimeout, outcomeNetwork, outcomeCanceled, outcomeClientBody}
	initReasons    = []string{"auth", "limit", "bad_request", "rate_limited", "unavailable", "timeout", "bad_response", "bad_endpoint"}
	mismatchSides  = []string{upload.SideClient, upload.SideUpstream}
	reconcileKinds = []string{upload.ReconcileSynced, upload.ReconcileUncertain, upload.ReconcileGone}
)

// Outcomes of an upstream request. Rejected (4xx) and failed (5xx) are told
// apart because only the second is Kinescope's trouble; client_body is a
// client whose body broke mid-PATCH, which is not the upstream's fault and
// must not page anyone.
const (
	outcomeOK          = "ok"
	outcomeRejected    = "rejected"
	outcomeFailed      = "failed"
	outcomeBadResponse = "bad_response"
	outcomeTimeout     = "timeout"
	outcomeNetwork     = "network"
	outcomeCanceled    = "canceled"
	outcomeClientBody  = "client_body"
)

// durationBuckets span a HEAD on loopback (a millisecond) to a large PATCH
// over a slow link (ten minutes).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// metrics are tusproxy's overall Prometheus metrics, plus the per-upload
// series in uploadSeries. They are registered on the registry handed to New,
// never on the global one.
type metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec

	uploadsCreated    prometheus.Counter
	uploadsCompleted  prometheus.Counter
	uploadsTerminated prometheus.Counter
	uploadsExpired    prometheus.Counter
	uploadsLost       prometheus.Counter
	orphanedVideos    prometheus.Counter

	// received counts client body bytes as they are read; the counter is a
	// CounterFunc over it, so the hot path pays one atomic add per read.
	received     atomic.Int64
	accepted     prometheus.Counter
	lost         prometheus.Counter
	stalled      prometheus.Gauge
	uploadSize   prometheus.Histogram
	uploadTime   prometheus.Histogram
	patchRate    prometheus.Histogram
	upstreamReqs *prometheus.CounterVec
	upstreamTime *prometheus.HistogramVec
	initFailures *prometheus.CounterVec
	mismatches   *prometheus.CounterVec
	reconciled   *prometheus.CounterVec
	credentials  prometheus.Gauge
	firstByte    prometheus.Histogram
	// jwksRefreshes counts fetches of TUSPROXY_JWT_JWKS_URL by outcome.
	jwksRefreshes *prometheus.CounterVec

	// sent counts body bytes handed to upstream PATCHes as they stream:
	// the writes that ended, plus the live ones read at scrape time through
	// their streams' own counters, so the hot path pays nothing more.
	sentMu   sync.Mutex
	sentDone int64
	sentLive map[*upload.Stream]struct{}

	series  *uploadSeries
	streams *streams // the bodies in flight, for the in-flight and stalled gauges
}

func newMetrics(reg prometheus.Registerer, series *uploadSeries, streams *streams) *metrics {
	m := &metrics{series: series, streams: streams, sentLive: make(map[*upload.Stream]struct{})}
	m.defineRequests()
	m.defineUploads()
	m.defineUpstream()
	m.jwksRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_jwks_refreshes_total",
		Help: "Fetches of the JWT key set (TUSPROXY_JWT_JWKS_URL), at start, on its refresh interval and for an unknown kid, " +
			"by outcome (ok: its keys replaced; error: the last keys kept).",
	}, []string{"outcome"})
	received := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tusproxy_client_received_bytes_total",
		Help: "Upload body bytes read from clients.",
	}, func() float64 { return float64(m.received.Load()) })
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tusproxy_uploads_in_flight",
		Help: "Uploads with a PATCH (or a creation with data) streaming now.",
	}, func() float64 { return float64(streams.count()) })
	sent := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tusproxy_upstream_sent_bytes_total",
		Help: "Upload body bytes handed to upstream PATCHes, counted while they stream (accepted moves only when Kinescope answers).",
	}, m.sentBytes)

	reg.MustRegister(m.requests, m.requestDuration, m.uploadsCreated, m.uploadsCompleted, m.uploadsTerminated,
		m.uploadsExpired, m.uploadsLost, m.orphanedVideos, received, sent, m.accepted, m.lost, inFlight, m.stalled, m.uploadSize,
		m.uploadTime, m.patchRate, m.upstreamReqs, m.upstreamTime, m.initFailures, m.mismatches, m.reconciled, m.credentials,
		m.firstByte, m.jwksRefreshes)
	series.register(reg)

	m.createKnownLabels()
	return m
}

// defineRequests defines the metrics of the public listener's requests.
func (m *metrics) defineRequests() {
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_http_requests_total",
		Help: "Requests answered on the public listener, by method and status class (499: the client went away).",
	}, []string{"method", "status_class"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tusproxy_http_request_duration_seconds",
		Help:    "Time from a request's headers to its answer, by method. A PATCH includes streaming its body.",
		Buckets: durationBuckets,
	}, []string{"method"})
}

// defineUploads defines the metrics of the uploads' lifecycle.
func (m *metrics) defineUploads() {
	m.uploadsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_uploads_created_total",
		Help: "Uploads created (a Kinescope video initialized and recorded).",
	})
	m.uploadsCompleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_uploads_completed_total",
		Help: "Uploads whose last byte the upstream confirmed.",
	})
	m.uploadsTerminated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_uploads_terminated_total",
		Help: "Uploads terminated by their client (tus DELETE).",
	})
	m.uploadsExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_uploads_expired_total",
		Help: "Unfinished uploads forgotten after TUSPROXY_UPLOAD_TTL without activity.",
	})
	m.uploadsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_uploads_lost_total",
		Help: "Unfinished uploads the upstream no longer has (it answered 404 or 410): their clients cannot finish them.",
	})
	m.orphanedVideos = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_orphaned_videos_total",
		Help: "Creations cut between Kinescope's /v2/init and storing the upload's record (a crash, a store failure, a refused endpoint), " +
			"reported once each by the sweeper: Kinescope videos that may have no upload. The log names each one.",
	})
	m.stalled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tusproxy_uploads_stalled",
		Help: "Uploads with a PATCH in flight that moved no byte for 30 seconds, as of the last sample.",
	})
	m.uploadSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tusproxy_upload_size_bytes",
		Help:    "Upload-Length of created uploads.",
		Buckets: prometheus.ExponentialBuckets(1<<20, 2, 19), // 1 MiB to 256 GiB; ×2 keeps a quantile within a factor of 2
	})
	m.uploadTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tusproxy_upload_duration_seconds",
		Help:    "Time from creation to the last byte confirmed, of completed uploads (pauses included).",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 24 * 3600},
	})
	m.patchRate = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tusproxy_patch_throughput_bytes_per_second",
		Help:    "Body bytes per second of PATCHes that moved at least 1 MiB, from headers to answer.",
		Buckets: prometheus.ExponentialBuckets(16<<10, 2, 18), // 16 KiB/s (a poor mobile link) to 2 GiB/s
	})
}

// defineUpstream defines the metrics of the requests to Kinescope and of
// what it confirmed.
func (m *metrics) defineUpstream() {
	m.accepted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_upstream_accepted_bytes_total",
		Help: "Upload bytes the upstream confirmed, counted when it answers a PATCH (a whole-file PATCH moves this only at its end).",
	})
	m.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tusproxy_upstream_lost_bytes_total",
		Help: "Upload bytes clients sent that the upstream did not keep, measured when each write ends: its bytes received minus " +
			"the offset it moved once reconciled. Clients send these bytes again.",
	})
	m.credentials = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tusproxy_init_credentials_rejected",
		Help: "1 when Kinescope's last answer to /v2/init refused the API token (401/403); 0 once an init succeeds, or none was refused.",
	})
	m.firstByte = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tusproxy_upstream_patch_first_byte_seconds",
		Help: "Time from a write's start (the upload's lock held) to its first body byte handed to the upstream PATCH: " +
			"reconciling, connecting and TLS, whatever the body's length.",
		Buckets: durationBuckets,
	})
	m.upstreamReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_upstream_requests_total",
		Help: "Requests to Kinescope by operation (init, head, patch, delete) and outcome " +
			"(ok, rejected = 4xx, failed = 5xx, bad_response, timeout, network, canceled, client_body).",
	}, []string{"operation", "outcome"})
	m.upstreamTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tusproxy_upstream_request_duration_seconds",
		Help:    "Duration of requests to Kinescope by operation; a patch includes sending its body.",
		Buckets: durationBuckets,
	}, []string{"operation"})
	m.initFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_init_failures_total",
		Help: "Failed Kinescope /v2/init calls by reason (auth: the API token was refused).",
	}, []string{"reason"})
	m.mismatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_offset_mismatches_total",
		Help: "Offset disagreements: side=client, a PATCH at the wrong Upload-Offset (409); side=upstream, Kinescope disagreed with the record.",
	}, []string{"side"})
	m.reconciled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_reconciliations_total",
		Help: "Offset reconciliations after a failed upstream PATCH, by result (synced, uncertain, gone).",
	}, []string{"result"})
}

// createKnownLabels creates every label value of the fixed sets up front,
// so dashboards and rate() see zeros rather than gaps.
func (m *metrics) createKnownLabels() {
	for _, method := range metricMethods {
		for _, class := range statusClasses {
			m.requests.WithLabelValues(method, class).Add(0)
		}
		// An empty histogram per method, so the first request of a kind
		// moves rate() at once instead of starting its series.
		m.requestDuration.WithLabelValues(method)
	}
	for _, op := range upstreamOps {
		for _, outcome := range outcomes {
			m.upstreamReqs.WithLabelValues(op, outcome).Add(0)
		}
	}
	for _, reason := range initReasons {
		m.initFailures.WithLabelValues(reason).Add(0)
	}
	for _, side := range mismatchSides {
		m.mismatches.WithLabelValues(side).Add(0)
	}
	for _, result := range reconcileKinds {
		m.reconciled.WithLabelValues(result).Add(0)
	}
	for _, outcome := range jwksOutcomes {
		m.jwksRefreshes.WithLabelValues(outcome).Add(0)
	}
}

// jwksRefreshed counts one fetch of the JWT key set: jwksRefreshOK or
// jwksRefreshError.
func (m *metrics) jwksRefreshed(outcome string) { m.jwksRefreshes.WithLabelValues(outcome).Inc() }

// request counts one answered request.
func (m *metrics) request(method string, status int, elapsed time.Duration) {
	switch method {
	case "GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS":
	default:
		method = "other"
	}
	class := "5xx"
	if status >= 100 && status < 600 {
		class = strconv.Itoa(status/100) + "xx"
	}
	m.requests.WithLabelValues(method, class).Inc()
	m.requestDuration.WithLabelValues(method).Observe(elapsed.Seconds())
}

var _ upload.Observer = (*metrics)(nil)

// Observe counts the upload lifecycle's events: every metric about uploads
// and upstream requests comes from here.
func (m *metrics) Observe(e upload.Event) {
	rec := e.Upload
	switch e.Kind {
	case upload.Created:
		m.uploadsCreated.Inc()
		m.uploadSize.Observe(float64(rec.Length))
		m.series.created(rec)
	case upload.Completed:
		m.uploadsCompleted.Inc()
		m.uploadTime.Observe(e.At.Sub(rec.CreatedAt).Seconds())
		m.series.finished(rec.ID)
	case upload.Terminated:
		m.uploadsTerminated.Inc()
		m.series.finished(rec.ID)
	case upload.Expired:
		m.uploadsExpired.Inc()
		m.series.finished(rec.ID)
	case upload.Lost:
		m.uploadsLost.Inc()
		m.series.finished(rec.ID)
	case upload.Orphaned:
		m.orphanedVideos.Inc()
	case upload.UpstreamCall:
		m.upstream(e.Call)
	case upload.Accepted:
		m.accepted.Add(float64(e.Bytes))
	case upload.OffsetMismatch:
		m.mismatches.WithLabelValues(e.Detail).Inc()
	case upload.Reconciled:
		m.reconciled.WithLabelValues(e.Detail).Inc()
	case upload.EndpointRefused:
		m.initFailures.WithLabelValues("bad_endpoint").Inc()
	case upload.StreamStarted:
		m.sentMu.Lock()
		m.sentLive[e.Stream] = struct{}{}
		m.sentMu.Unlock()
		m.series.patchStarted(rec, e.Stream)
	case upload.StreamEnded:
		m.streamEnded(e)
		if read, elapsed := e.Stream.Received(), e.At.Sub(e.Stream.Began); read >= 1<<20 && elapsed > 0 {
			m.patchRate.Observe(float64(read) / elapsed.Seconds())
		}
		m.series.patchEnded(rec, e.Stream)
	}
}

// streamEnded moves a write's bytes from live to done, and counts what it
// lost and how long it took to start sending.
func (m *metrics) streamEnded(e upload.Event) {
	s := e.Stream
	m.sentMu.Lock()
	if _, ok := m.sentLive[s]; ok {
		delete(m.sentLive, s)
		m.sentDone += s.Received()
	}
	m.sentMu.Unlock()
	if lost := s.Lost(e.Upload); lost > 0 {
		m.lost.Add(float64(lost))
	}
	if first, ok := s.FirstByte(); ok {
		m.firstByte.Observe(first.Seconds())
	}
}

// sentBytes is the sent counter's value: ended writes plus live ones. A
// write's bytes move from live to done under the lock, so it never goes back.
func (m *metrics) sentBytes() float64 {
	m.sentMu.Lock()
	defer m.sentMu.Unlock()
	n := m.sentDone
	for s := range m.sentLive {
		n += s.Received()
	}
	return float64(n)
}

// upstream counts one request to Kinescope.
func (m *metrics) upstream(c *upload.Call) {
	m.upstreamReqs.WithLabelValues(c.Op, upstreamOutcome(c.Err)).Inc()
	m.upstreamTime.WithLabelValues(c.Op).Observe(c.Duration.Seconds())
	if c.Op != "init" {
		return
	}
	var ke *kinescope.Error
	switch {
	case c.Err == nil:
		m.credentials.Set(0)
	case errors.As(c.Err, &ke) && ke.Kind == kinescope.KindAuth:
		m.credentials.Set(1)
	}
	if c.Err != nil {
		m.initFailure(c.Err)
	}
}

// upstreamOutcome classifies an upstream call's error into the outcome set.
func upstreamOutcome(err error) string {
	if err == nil {
		return outcomeOK
	}
	var ue *tusproto.Error
	if errors.As(err, &ue) {
		switch ue.Kind {
		case tusproto.KindStatus:
			if ue.Status >= 500 {
				return outcomeFailed
			}
			return outcomeRejected
		case tusproto.KindBadResponse:
			return outcomeBadResponse
		case tusproto.KindTimeout:
			return outcomeTimeout
		case tusproto.KindNetwork:
			return outcomeNetwork
		case tusproto.KindCanceled:
			return outcomeCanceled
		case tusproto.KindBody:
			return outcomeClientBody
		}
		return outcomeFailed
	}
	var ke *kinescope.Error
	if errors.As(err, &ke) {
		switch ke.Kind {
		case kinescope.KindAuth, kinescope.KindLimit, kinescope.KindBadRequest, kinescope.KindRateLimited:
			return outcomeRejected
		case kinescope.KindTimeout:
			return outcomeTimeout
		case kinescope.KindBadResponse:
			return outcomeBadResponse
		case kinescope.KindCanceled:
			return outcomeCanceled
		}
	}
	return outcomeFailed
}

// initFailure counts a failed /v2/init by its reason; a client that went
// away is not Kinescope's failure and is not counted.
func (m *metrics) initFailure(err error) {
	var ke *kinescope.Error
	if !errors.As(err, &ke) {
		m.initFailures.WithLabelValues("bad_response").Inc()
		return
	}
	if ke.Kind == kinescope.KindCanceled {
		return
	}
	reason := ke.Kind.String()
	if reason == "unknown" {
		reason = "bad_response"
	}
	m.initFailures.WithLabelValues(reason).Inc()
}

// statusOf is the status a handler answered, for metrics and logs; 0 (no
// answer written) is 200, as net/http sends.
func statusOf(written, override int) int {
	switch {
	case override != 0:
		return override
	case written != 0:
		return written
	}
	return http.StatusOK
}
