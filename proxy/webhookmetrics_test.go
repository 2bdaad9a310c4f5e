package proxy_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// TestWebhookMetrics: the dispatcher's reports become the webhook metrics
// on the service's registry, every type and outcome is there from the
// start, and the oldest event's age grows with the clock between samples.
func TestWebhookMetrics(t *testing.T) {
	env := map[string]string{"KINESCOPE_API_TOKEN": "metrics-test-token", "KINESCOPE_PARENT_ID": "p", "TUSPROXY_AUTH": "none"}
	cfg, err := config.Load(config.CommandServe, nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock.now.Store(start.UnixNano())
	reg := proxy.NewRegistry("test")
	s, err := proxy.New(cfg, proxy.Deps{Store: state.NewMemory(), Metrics: reg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"tusproxy_webhook_deliveries_total", "tusproxy_webhook_delivery_duration_seconds",
		"tusproxy_webhook_pending_events", "tusproxy_webhook_oldest_pending_age_seconds"}
	if n := testutil.CollectAndCount(reg, "tusproxy_webhook_deliveries_total"); n != len(webhook.Types)*len(webhook.Outcomes) {
		t.Errorf("%d delivery series before any delivery, want every type and outcome (%d)", n, len(webhook.Types)*len(webhook.Outcomes))
	}

	m := s.WebhookMetrics()
	m.Attempt(webhook.TypeCreated, webhook.OutcomeFailed, 30*time.Millisecond)
	m.Attempt(webhook.TypeCreated, webhook.OutcomeDelivered, 70*time.Millisecond)
	m.GivenUp(webhook.TypeExpired)
	m.Backlog(3, start.Add(-90*time.Second))
	clock.Advance(30 * time.Second)

	want := `
# HELP tusproxy_webhook_oldest_pending_age_seconds Age of the oldest pending webhook event, 0 when none.
# TYPE tusproxy_webhook_oldest_pending_age_seconds gauge
tusproxy_webhook_oldest_pending_age_seconds 120
# HELP tusproxy_webhook_pending_events Webhook events stored and not yet delivered or given up, as last sampled; with Redis, the outbox all replicas share.
# TYPE tusproxy_webhook_pending_events gauge
tusproxy_webhook_pending_events 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[2:]...); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		typ, outcome string
		want         float64
	}{
		{webhook.TypeCreated, webhook.OutcomeFailed, 1},
		{webhook.TypeCreated, webhook.OutcomeDelivered, 1},
		{webhook.TypeExpired, webhook.OutcomeGivenUp, 1},
		{webhook.TypeCompleted, webhook.OutcomeDelivered, 0},
	} {
		if got := deliveries(t, reg, c.typ, c.outcome); got != c.want {
			t.Errorf("deliveries{type=%s,outcome=%s} = %v, want %v", c.typ, c.outcome, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "tusproxy_webhook_delivery_duration_seconds"); n != 1 {
		t.Errorf("duration histogram has %d series", n)
	}

	m.Backlog(0, time.Time{})
	want = `
# HELP tusproxy_webhook_oldest_pending_age_seconds Age of the oldest pending webhook event, 0 when none.
# TYPE tusproxy_webhook_oldest_pending_age_seconds gauge
tusproxy_webhook_oldest_pending_age_seconds 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names[3]); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// deliveries is the value of one series of tusproxy_webhook_deliveries_total.
func deliveries(t *testing.T, reg prometheus.Gatherer, eventType, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tusproxy_webhook_deliveries_total" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == eventType && labels["outcome"] == outcome {
				return metric.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series type=%s outcome=%s", eventType, outcome)
	return 0
}
