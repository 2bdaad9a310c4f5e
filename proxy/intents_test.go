package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// cutStore stands for the moment between Kinescope's /v2/init and the
// record's write: once cut, Create fails, as it does when the store breaks
// there, and with dead set every later write fails too, as when the process
// itself is killed at that point (nothing it does afterwards lands).
type cutStore struct {
	state.Store
	cut  atomic.Bool
	dead atomic.Bool
}

func (c *cutStore) Create(ctx context.Context, rec state.Record, opts ...state.WriteOption) error {
	if c.cut.Load() {
		return errStoreDown
	}
	return c.Store.Create(ctx, rec, opts...)
}

func (c *cutStore) SetIntentVideo(ctx context.Context, id, videoID string) error {
	if c.dead.Load() {
		return errStoreDown
	}
	return c.Store.SetIntentVideo(ctx, id, videoID)
}

// orphanEnv is an env with a fake clock, a registry of the test's and a
// store the test can cut.
type orphanEnv struct {
	*env
	reg   *prometheus.Registry
	clock *fakeClock
	store *cutStore
}

func newOrphanEnv(t *testing.T, store state.Store) *orphanEnv {
	t.Helper()
	clock := &fakeClock{}
	clock.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	reg := proxy.NewRegistry("test")
	cut := &cutStore{Store: store}
	e := newEnvWith(t, nil, proxy.Deps{Now: clock.Now, Metrics: reg, Store: cut})
	return &orphanEnv{env: e, reg: reg, clock: clock, store: cut}
}

func (o *orphanEnv) orphaned() float64 {
	o.t.Helper()
	n, err := testutil.GatherAndCount(o.reg, "tusproxy_orphaned_videos_total")
	if err != nil || n != 1 {
		o.t.Fatalf("tusproxy_orphaned_videos_total: %d series, %v", n, err)
	}
	mfs, err := o.reg.Gather()
	if err != nil {
		o.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tusproxy_orphaned_videos_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// orphanLines returns the log lines reporting orphaned videos, decoded.
func (o *orphanEnv) orphanLines() []map[string]any {
	o.t.Helper()
	var out []map[string]any
	lines := bufio.NewScanner(strings.NewReader(o.logs.String()))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var line map[string]any
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			o.t.Fatalf("log line %q: %v", lines.Text(), err)
		}
		if msg, _ := line["msg"].(string); strings.Contains(msg, "orphaned Kinescope video") {
			out = append(out, line)
		}
	}
	return out
}

// createRefused asks for an upload that the store will not record.
func (o *orphanEnv) createRefused(length int) {
	o.t.Helper()
	resp := o.do(http.MethodPost, o.base, map[string]string{"Upload-Length": itoa(int64(length))}, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		o.t.Fatalf("creation whose record cannot be stored: %d, want 503", resp.StatusCode)
	}
}

// TestOrphanedVideoIsReported: the record's write fails after Kinescope
// created the video (issue 11, item 6). Nothing is reported while the
// creation might still be running on some replica; once the intent is older
// than the grace, the start-up scan logs the video id and counts it, once.
func TestOrphanedVideoIsReported(t *testing.T) {
	o := newOrphanEnv(t, state.NewMemory())
	if got := o.orphaned(); got != 0 {
		t.Fatalf("tusproxy_orphaned_videos_total before anything = %v, want 0 (created up front)", got)
	}
	o.store.cut.Store(true)
	o.createRefused(1234)
	videos := o.emu.Videos()
	if len(videos) != 1 {
		t.Fatalf("Kinescope has %d videos, want the 1 whose record failed", len(videos))
	}
	created := o.clock.Now()

	// Within the grace the intent may belong to a creation in flight.
	o.clock.Advance(o.svc.IntentGrace() - time.Second)
	o.svc.ReportOrphans(t.Context())
	if got := o.orphaned(); got != 0 || len(o.orphanLines()) != 0 {
		t.Fatalf("reported within the grace: counter %v, lines %v", got, o.orphanLines())
	}

	// A restarted tusproxy scans at start (Run).
	o.clock.Advance(2 * time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { o.svc.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for o.orphaned() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if got := o.orphaned(); got != 1 {
		t.Fatalf("tusproxy_orphaned_videos_total = %v, want 1", got)
	}
	lines := o.orphanLines()
	if len(lines) != 1 {
		t.Fatalf("%d orphan log lines, want 1: %v", len(lines), lines)
	}
	line := lines[0]
	if line["level"] != "WARN" || line["video_id"] != videos[0].ID || line["intent_id"] == "" || line["length"] != 1234.0 {
		t.Errorf("orphan log line = %v, want WARN with video_id %s, the intent id and length 1234", line, videos[0].ID)
	}
	if at, err := time.Parse(time.RFC3339Nano, line["created_at"].(string)); err != nil || !at.Equal(created) {
		t.Errorf("created_at = %v, want %v", line["created_at"], created)
	}

	// Reported once: a later scan finds nothing.
	o.clock.Advance(time.Hour)
	o.svc.ReportOrphans(t.Context())
	if got := o.orphaned(); got != 1 || len(o.orphanLines()) != 1 {
		t.Errorf("after a second scan: counter %v, %d lines; want 1 and 1", got, len(o.orphanLines()))
	}
}

// TestKilledCreationIsReported: the process dies between init and the
// record (kill -9): nothing it would do afterwards reaches the store. A new
// tusproxy on the same store reports the creation from its intent, without
// a video id (the dead process never learnt to write it) but with its time
// and size.
func TestKilledCreationIsReported(t *testing.T) {
	shared := state.NewMemory()
	o := newOrphanEnv(t, shared)
	o.store.cut.Store(true)
	o.store.dead.Store(true)
	o.createRefused(777)
	if n := len(o.emu.Videos()); n != 1 {
		t.Fatalf("Kinescope has %d videos, want 1", n)
	}

	restarted := newOrphanEnv(t, shared)
	restarted.clock.now.Store(o.clock.Now().Add(o.svc.IntentGrace() + time.Second).UnixNano())
	restarted.svc.ReportOrphans(t.Context())
	if got := restarted.orphaned(); got != 1 {
		t.Fatalf("tusproxy_orphaned_videos_total after restart = %v, want 1", got)
	}
	lines := restarted.orphanLines()
	if len(lines) != 1 || lines[0]["intent_id"] == "" || lines[0]["length"] != 777.0 || lines[0]["video_id"] != nil {
		t.Errorf("orphan log lines = %v, want one with the intent id, length 777 and no video id", lines)
	}
}

// TestFinishedCreationsLeaveNoIntent: a stored record, or an init that
// Kinescope refused, leaves nothing to report.
func TestFinishedCreationsLeaveNoIntent(t *testing.T) {
	o := newOrphanEnv(t, state.NewMemory())
	o.create(100, "")
	o.emu.SetFaults(kinescopetest.Faults{InitStatus: http.StatusBadRequest})
	if resp := o.do(http.MethodPost, o.base, map[string]string{"Upload-Length": "100"}, nil); resp.StatusCode < 400 {
		t.Fatalf("creation refused by Kinescope: %d", resp.StatusCode)
	}
	o.emu.SetFaults(kinescopetest.Faults{})
	o.clock.Advance(24 * time.Hour)
	o.svc.ReportOrphans(t.Context())
	if got := o.orphaned(); got != 0 {
		t.Errorf("tusproxy_orphaned_videos_total = %v, want 0: %v", got, o.orphanLines())
	}
	left, err := o.store.SweepIntents(t.Context(), o.clock.Now().Add(time.Hour), 10)
	if err != nil || len(left) != 0 {
		t.Errorf("intents left: %v, %v", left, err)
	}
}
