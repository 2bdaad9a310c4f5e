package proxy_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// metricsEnv is an env whose service registers on a registry of the test's,
// with a fake clock for the per-upload series.
type metricsEnv struct {
	*env
	reg   *prometheus.Registry
	clock *fakeClock
}

func newMetricsEnv(t *testing.T, vars map[string]string) *metricsEnv {
	t.Helper()
	clock := &fakeClock{}
	clock.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	reg := proxy.NewRegistry("test")
	e := newEnvWith(t, vars, proxy.Deps{Now: clock.Now, Metrics: reg})
	return &metricsEnv{env: e, reg: reg, clock: clock}
}

// families gathers the registry.
func (m *metricsEnv) families() map[string]*dto.MetricFamily {
	m.t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		m.t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the series of name whose labels include want;
// the test fails unless exactly one series matches.
func (m *metricsEnv) value(name string, want map[string]string) float64 {
	m.t.Helper()
	mf, ok := m.families()[name]
	if !ok {
		m.t.Fatalf("metric %s is not registered", name)
	}
	var found []float64
	for _, metric := range mf.GetMetric() {
		if hasLabels(metric, want) {
			switch {
			case metric.Counter != nil:
				found = append(found, metric.Counter.GetValue())
			case metric.Gauge != nil:
				found = append(found, metric.Gauge.GetValue())
			case metric.Histogram != nil:
				found = append(found, float64(metric.Histogram.GetSampleCount()))
			}
		}
	}
	if len(found) != 1 {
		m.t.Fatalf("metric %s%v: %d series match, want 1", name, want, len(found))
	}
	return found[0]
}

// seriesWith counts the series, of any metric, that carry label=value.
func (m *metricsEnv) seriesWith(label, value string) int {
	m.t.Helper()
	n := 0
	for _, mf := range m.families() {
		for _, metric := range mf.GetMetric() {
			if hasLabels(metric, map[string]string{label: value}) {
				n++
			}
		}
	}
	return n
}

func hasLabels(metric *dto.Metric, want map[string]string) bool {
	matched := 0
	for _, lp := range metric.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			matched++
		}
	}
	return matched == len(want)
}

// TestMetricsLint: every metric, per-upload ones included, passes
// Prometheus' own linter.
func TestMetricsLint(t *testing.T) {
	m := newMetricsEnv(t, nil)
	data := testkit.RandomBytes(1000)
	url := m.create(int64(len(data)), "")
	if resp := m.patch(url, 0, data[:400]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	m.svc.SampleMetrics()
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if m.seriesWith("upload_id", testkit.UploadID(url)) != 5 {
		t.Errorf("the upload has %d series, want 5 (offset, length, speed, last activity, created)", m.seriesWith("upload_id", testkit.UploadID(url)))
	}
}

// TestMetricsOneUpload follows an upload from creation to completion and
// the end of its grace period; the overall counters agree with what
// happened.
func TestMetricsOneUpload(t *testing.T) {
	m := newMetricsEnv(t, map[string]string{"TUSPROXY_METRICS_UPLOAD_GRACE": "2m"})
	data := testkit.RandomBytes(600 << 10) // three upstream PATCHes of 256 KiB at most
	url := m.create(int64(len(data)), "filename dmlkZW8ubXA0")
	id := testkit.UploadID(url)
	video := m.video(url)

	labels := map[string]string{"upload_id": id, "video_id": video.ID}
	if got := m.value("tusproxy_upload_offset_bytes", labels); got != 0 {
		t.Errorf("offset after creation = %v, want 0", got)
	}
	if got := m.value("tusproxy_upload_length_bytes", labels); got != float64(len(data)) {
		t.Errorf("length = %v, want %d", got, len(data))
	}
	created := m.clock.Now()

	m.clock.Advance(10 * time.Second)
	if resp := m.patch(url, 0, data[:300<<10]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH 1: %d", resp.StatusCode)
	}
	if got := m.value("tusproxy_upload_offset_bytes", labels); got != 300<<10 {
		t.Errorf("offset after PATCH 1 = %v, want %d", got, 300<<10)
	}
	m.clock.Advance(5 * time.Second)
	m.svc.SampleMetrics()
	if got := m.value("tusproxy_upload_speed_bytes_per_second", labels); got <= 0 {
		t.Errorf("speed after PATCH 1 = %v, want > 0", got)
	}
	m.clock.Advance(5 * time.Second)
	if resp := m.patch(url, 300<<10, data[300<<10:]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH 2: %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, m.emu, video.ID, data)

	want := map[string]float64{
		"tusproxy_uploads_created_total":             1,
		"tusproxy_uploads_completed_total":           1,
		"tusproxy_uploads_terminated_total":          0,
		"tusproxy_uploads_expired_total":             0,
		"tusproxy_client_received_bytes_total":       float64(len(data)),
		"tusproxy_upstream_accepted_bytes_total":     float64(len(data)),
		"tusproxy_upstream_sent_bytes_total":         float64(len(data)),
		"tusproxy_upstream_lost_bytes_total":         0,
		"tusproxy_upstream_patch_first_byte_seconds": 2, // one observation per write
		"tusproxy_init_credentials_rejected":         0,
		"tusproxy_uploads_in_flight":                 0,
		"tusproxy_upload_series":                     1,
		"tusproxy_upload_size_bytes":                 1, // one observation
		"tusproxy_upload_duration_seconds":           1,
	}
	for name, v := range want {
		if got := m.value(name, nil); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tusproxy_http_requests_total", map[string]string{"method": "POST", "status_class": "2xx"}, 1},
		{"tusproxy_http_requests_total", map[string]string{"method": "PATCH", "status_class": "2xx"}, 2},
		{"tusproxy_http_requests_total", map[string]string{"method": "PATCH", "status_class": "4xx"}, 0},
		{"tusproxy_upstream_requests_total", map[string]string{"operation": "init", "outcome": "ok"}, 1},
		// 300 KiB = 256 + 44, then 300 KiB = 256 + 44: four upstream PATCHes.
		{"tusproxy_upstream_requests_total", map[string]string{"operation": "patch", "outcome": "ok"}, 4},
		{"tusproxy_upstream_requests_total", map[string]string{"operation": "patch", "outcome": "failed"}, 0},
		{"tusproxy_upstream_request_duration_seconds", map[string]string{"operation": "patch"}, 4},
		{"tusproxy_init_failures_total", map[string]string{"reason": "auth"}, 0},
		{"tusproxy_upload_offset_bytes", labels, float64(len(data))},
	} {
		if got := m.value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The whole upload took 20 s of the fake clock.
	mf := m.families()["tusproxy_upload_duration_seconds"]
	if sum := mf.GetMetric()[0].GetHistogram().GetSampleSum(); sum != m.clock.Now().Sub(created).Seconds() {
		t.Errorf("upload duration = %vs, want %vs", sum, m.clock.Now().Sub(created).Seconds())
	}

	// Within the grace period the series stay; after it every one is gone.
	m.clock.Advance(time.Minute)
	m.svc.SampleMetrics()
	if n := m.seriesWith("upload_id", id); n != 5 {
		t.Fatalf("%d series one minute after completion, want 5", n)
	}
	m.clock.Advance(time.Minute)
	m.svc.SampleMetrics()
	if n := m.seriesWith("upload_id", id); n != 0 {
		t.Errorf("%d series of the upload remain after its grace period, want 0", n)
	}
	if got := m.value("tusproxy_upload_series", nil); got != 0 {
		t.Errorf("tusproxy_upload_series = %v after the grace period, want 0", got)
	}
}

// TestMetricsOffsetMovesDuringPatch: one long PATCH shows progress in its
// upload's offset gauge while it streams.
func TestMetricsOffsetMovesDuringPatch(t *testing.T) {
	m := newMetricsEnv(t, nil)
	data := testkit.RandomBytes(1 << 20)
	url := m.create(int64(len(data)), "")
	labels := map[string]string{"upload_id": testkit.UploadID(url)}

	pr, pw := io.Pipe()
	req := testkit.TusRequest(t, http.MethodPatch, url, pr,
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	req.ContentLength = int64(len(data))
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("PATCH: %v", err)
			done <- nil
			return
		}
		resp.Body.Close()
		done <- resp
	}()

	half := len(data) / 2
	if _, err := pw.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	// The pipe write returns once the HTTP client has taken the bytes; the
	// proxy reads them a moment later. Sample (at the same instant of the
	// fake clock) until the gauge shows them.
	for deadline := time.Now().Add(10 * time.Second); ; {
		m.svc.SampleMetrics()
		if got := m.value("tusproxy_upload_offset_bytes", labels); got == float64(half) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("offset while streaming = %v, want %d", got, half)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Sent moves while the PATCH streams (accepted waits for the upstream's
	// answer), and nothing is lost midway.
	if got := m.value("tusproxy_upstream_sent_bytes_total", nil); got != float64(half) {
		t.Errorf("sent while streaming = %v, want %d", got, half)
	}
	if got := m.value("tusproxy_upstream_lost_bytes_total", nil); got != 0 {
		t.Errorf("lost while streaming = %v, want 0", got)
	}
	m.clock.Advance(5 * time.Second)
	m.svc.SampleMetrics()
	if got := m.value("tusproxy_uploads_in_flight", nil); got != 1 {
		t.Errorf("uploads in flight = %v, want 1", got)
	}
	if got := m.value("tusproxy_upload_speed_bytes_per_second", labels); got != float64(half)/5 {
		t.Errorf("speed while streaming = %v, want %v", got, float64(half)/5)
	}

	// The client stops sending: after 30 s without a byte it is stalled.
	m.clock.Advance(35 * time.Second)
	m.svc.SampleMetrics()
	if got := m.value("tusproxy_uploads_stalled", nil); got != 1 {
		t.Errorf("stalled = %v, want 1", got)
	}
	if _, err := pw.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if resp := <-done; resp == nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH did not succeed: %v", resp)
	}
	m.svc.SampleMetrics()
	if got := m.value("tusproxy_uploads_stalled", nil); got != 0 {
		t.Errorf("stalled after the PATCH = %v, want 0", got)
	}
	if got := m.value("tusproxy_upload_offset_bytes", labels); got != float64(len(data)) {
		t.Errorf("offset after the PATCH = %v, want %d", got, len(data))
	}
	for name, want := range map[string]float64{
		"tusproxy_upstream_sent_bytes_total":     float64(len(data)),
		"tusproxy_upstream_accepted_bytes_total": float64(len(data)),
		"tusproxy_upstream_lost_bytes_total":     0,
	} {
		if got := m.value(name, nil); got != want {
			t.Errorf("%s after the PATCH = %v, want %v", name, got, want)
		}
	}
}

// TestMetricsSeriesRemoved: an idle upload and a terminated one lose their
// series; they count in the overall counters.
func TestMetricsSeriesRemoved(t *testing.T) {
	m := newMetricsEnv(t, map[string]string{"TUSPROXY_METRICS_UPLOAD_GRACE": "30s", "TUSPROXY_METRICS_UPLOAD_IDLE": "10m"})
	idle := testkit.UploadID(m.create(100, ""))
	doomedURL := m.create(100, "")
	doomed := testkit.UploadID(doomedURL)
	if resp := m.do(http.MethodDelete, doomedURL, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if got := m.value("tusproxy_uploads_terminated_total", nil); got != 1 {
		t.Errorf("terminated = %v, want 1", got)
	}
	m.clock.Advance(30 * time.Second)
	m.svc.SampleMetrics()
	if n := m.seriesWith("upload_id", doomed); n != 0 {
		t.Errorf("terminated upload: %d series after the grace period, want 0", n)
	}
	if n := m.seriesWith("upload_id", idle); n != 5 {
		t.Errorf("idle upload: %d series before its idle period ended, want 5", n)
	}
	m.clock.Advance(10 * time.Minute)
	m.svc.SampleMetrics()
	if n := m.seriesWith("upload_id", idle); n != 0 {
		t.Errorf("idle upload: %d series after the idle period, want 0", n)
	}
}

// TestMetricsCardinalityCap: beyond TUSPROXY_METRICS_MAX_UPLOADS, uploads
// get no series of their own but count everywhere else.
func TestMetricsCardinalityCap(t *testing.T) {
	m := newMetricsEnv(t, map[string]string{"TUSPROXY_METRICS_MAX_UPLOADS": "5"})
	for range 12 {
		m.create(100, "")
	}
	if got := m.value("tusproxy_upload_series", nil); got != 5 {
		t.Errorf("uploads with series = %v, want 5", got)
	}
	if got := m.value("tusproxy_upload_series_refused_total", nil); got != 7 {
		t.Errorf("refused = %v, want 7", got)
	}
	if got := m.value("tusproxy_uploads_created_total", nil); got != 12 {
		t.Errorf("created = %v, want 12", got)
	}
	if n := len(m.families()["tusproxy_upload_offset_bytes"].GetMetric()); n != 5 {
		t.Errorf("offset series = %d, want 5", n)
	}
}

// TestMetricsFailures: init failures by reason, client offset mismatches,
// and a cut upstream PATCH (reconciled; bytes received but not accepted).
func TestMetricsFailures(t *testing.T) {
	m := newMetricsEnv(t, nil)

	m.emu.SetFaults(kinescopetest.Faults{InitStatus: http.StatusUnauthorized})
	if resp := m.do(http.MethodPost, m.base, map[string]string{"Upload-Length": "100"}, nil); resp.StatusCode < 500 {
		t.Fatalf("create with the token refused: %d, want 5xx", resp.StatusCode)
	}
	if got := m.value("tusproxy_init_failures_total", map[string]string{"reason": "auth"}); got != 1 {
		t.Errorf("init failures (auth) = %v, want 1", got)
	}
	if got := m.value("tusproxy_upstream_requests_total", map[string]string{"operation": "init", "outcome": "rejected"}); got != 1 {
		t.Errorf("upstream init rejected = %v, want 1", got)
	}
	if got := m.value("tusproxy_init_credentials_rejected", nil); got != 1 {
		t.Errorf("credentials rejected = %v after a 401, want 1", got)
	}
	m.emu.SetFaults(kinescopetest.Faults{})

	data := testkit.RandomBytes(100_000)
	url := m.create(int64(len(data)), "")
	if got := m.value("tusproxy_init_credentials_rejected", nil); got != 0 {
		t.Errorf("credentials rejected = %v after a creation succeeded, want 0", got)
	}
	if resp := m.patch(url, 5, data[:10]); resp.StatusCode != http.StatusConflict {
		t.Fatalf("PATCH at the wrong offset: %d, want 409", resp.StatusCode)
	}
	if got := m.value("tusproxy_offset_mismatches_total", map[string]string{"side": "client"}); got != 1 {
		t.Errorf("client offset mismatches = %v, want 1", got)
	}

	m.emu.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 40_000})
	if resp := m.patch(url, 0, data); resp.StatusCode < 500 {
		t.Fatalf("PATCH cut upstream: %d, want 5xx", resp.StatusCode)
	}
	m.emu.SetFaults(kinescopetest.Faults{})
	if got := m.value("tusproxy_reconciliations_total", map[string]string{"result": "synced"}); got != 1 {
		t.Errorf("reconciliations (synced) = %v, want 1", got)
	}
	if got := m.value("tusproxy_upstream_requests_total", map[string]string{"operation": "patch", "outcome": "network"}); got != 1 {
		t.Errorf("upstream patch network failures = %v, want 1", got)
	}
	received := m.value("tusproxy_client_received_bytes_total", nil)
	accepted := m.value("tusproxy_upstream_accepted_bytes_total", nil)
	if accepted != 40_000 || received <= accepted {
		t.Errorf("received %v, accepted %v: want 40000 accepted (what the upstream kept) and more received", received, accepted)
	}
	// Lost is measured per write: what this PATCH sent beyond what the
	// upstream kept once reconciled.
	if lost, sent := m.value("tusproxy_upstream_lost_bytes_total", nil), m.value("tusproxy_upstream_sent_bytes_total", nil); lost != sent-40_000 || lost <= 0 {
		t.Errorf("lost %v, sent %v: want lost = sent - 40000 (what the upstream kept)", lost, sent)
	}
	if off := testkit.HeadOffset(t, http.DefaultClient, url); off != 40_000 {
		t.Errorf("HEAD after the cut = %d, want 40000", off)
	}
}
