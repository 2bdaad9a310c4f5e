package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// webhookBuckets span a receiver on the same host (a few milliseconds) to
// one that answers at the edge of a generous TUSPROXY_WEBHOOK_TIMEOUT.
var webhookBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// webhookMetrics turns the webhook dispatcher's measures into Prometheus
// metrics. They are registered by New whether webhooks are on or not, so
// dashboards and alerts see zeros rather than gaps, and the dispatcher the
// program starts reports through Service.WebhookMetrics.
type webhookMetrics struct {
	deliveries *prometheus.CounterVec
	duration   prometheus.Histogram
	// The backlog as last sampled; the age is computed at each scrape, so
	// it keeps growing if sampling stops with events still pending.
	pending atomic.Int64
	oldest  atomic.Int64 // Unix nanoseconds of the oldest pending event, 0 when none
	now     func() time.Time
}

var _ webhook.Metrics = (*webhookMetrics)(nil)

func newWebhookMetrics(reg prometheus.Registerer, now func() time.Time) *webhookMetrics {
	m := &webhookMetrics{now: now}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tusproxy_webhook_deliveries_total",
		Help: "Webhook delivery attempts by event type and outcome (delivered, redirected, rejected = 4xx, failed = 5xx, " +
			"timeout, network, canceled = cut by a shutdown); given_up counts events dropped after TUSPROXY_WEBHOOK_MAX_AGE.",
	}, []string{"type", "outcome"})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tusproxy_webhook_delivery_duration_seconds",
		Help:    "Time of one webhook POST, from dialling the receiver to the end of its answer read.",
		Buckets: webhookBuckets,
	})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tusproxy_webhook_pending_events",
		Help: "Webhook events stored and not yet delivered or given up, as last sampled; with Redis, the outbox all replicas share.",
	}, func() float64 { return float64(m.pending.Load()) })
	oldestAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tusproxy_webhook_oldest_pending_age_seconds",
		Help: "Age of the oldest pending webhook event, 0 when none.",
	}, m.oldestAge)
	reg.MustRegister(m.deliveries, m.duration, pending, oldestAge)
	for _, t := range webhook.Types {
		for _, outcome := range webhook.Outcomes {
			m.deliveries.WithLabelValues(t, outcome).Add(0)
		}
	}
	return m
}

// Attempt counts one POST.
func (m *webhookMetrics) Attempt(eventType, outcome string, took time.Duration) {
	m.deliveries.WithLabelValues(webhookTypeLabel(eventType), outcome).Inc()
	m.duration.Observe(took.Seconds())
}

// GivenUp counts an event dropped after the maximum age.
func (m *webhookMetrics) GivenUp(eventType string) {
	m.deliveries.WithLabelValues(webhookTypeLabel(eventType), webhook.OutcomeGivenUp).Inc()
}

// Backlog keeps the outbox's last sample.
func (m *webhookMetrics) Backlog(pending int, oldest time.Time) {
	m.pending.Store(int64(pending))
	if oldest.IsZero() {
		m.oldest.Store(0)
		return
	}
	m.oldest.Store(oldest.UnixNano())
}

func (m *webhookMetrics) oldestAge() float64 {
	oldest := m.oldest.Load()
	if oldest == 0 {
		return 0
	}
	return max(0, m.now().Sub(time.Unix(0, oldest)).Seconds())
}

// webhookTypeLabel keeps the type label inside its fixed set: a type from a
// newer replica sharing the outbox counts as "other" rather than adding series.
func webhookTypeLabel(t string) string {
	if webhook.KnownType(t) {
		return t
	}
	return "other"
}
