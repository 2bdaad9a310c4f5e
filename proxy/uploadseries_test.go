package proxy

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// TestUploadSeriesBounded: 10,000 uploads, all streaming, leave at most
// max uploads' series in /metrics; when they complete, every series goes
// after the grace period.
func TestUploadSeriesBounded(t *testing.T) {
	const uploads, max = 10_000, 1000
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	series := newUploadSeries(max, time.Minute, 10*time.Minute, clock)
	series.register(reg)

	var read atomic.Int64
	patches := make([]*upload.Stream, 0, uploads)
	recs := make([]state.Record, 0, uploads)
	for i := range uploads {
		rec := state.Record{ID: fmt.Sprintf("%032x", i), VideoID: fmt.Sprintf("video-%d", i), Length: 1000}
		series.created(rec)
		p := &upload.Stream{Start: rec.Offset, Received: read.Load}
		series.patchStarted(rec, p)
		patches, recs = append(patches, p), append(recs, rec)
	}
	read.Store(500)
	now = now.Add(sampleEvery)
	series.sample()

	perUpload := []string{"tusproxy_upload_offset_bytes", "tusproxy_upload_length_bytes",
		"tusproxy_upload_speed_bytes_per_second", "tusproxy_upload_last_activity_timestamp_seconds",
		"tusproxy_upload_created_timestamp_seconds"}
	if n, err := testutil.GatherAndCount(reg, perUpload...); err != nil || n != 5*max {
		t.Errorf("per-upload series = %d (%v), want %d", n, err, 5*max)
	}
	// Each creation and each PATCH of an upload without series is counted.
	if got := testutil.ToFloat64(series.refused); got != 2*(uploads-max) {
		t.Errorf("refused = %v, want %d", got, 2*(uploads-max))
	}

	for i, p := range patches {
		rec := recs[i]
		rec.Offset = 1000
		series.patchEnded(rec, p)
	}
	now = now.Add(59 * time.Second)
	series.sample()
	if n, _ := testutil.GatherAndCount(reg, perUpload...); n != 5*max {
		t.Errorf("within the grace period: %d series, want %d", n, 5*max)
	}
	now = now.Add(time.Second)
	series.sample()
	if n, _ := testutil.GatherAndCount(reg, perUpload...); n != 0 {
		t.Errorf("after the grace period: %d series, want 0", n)
	}
	if got := testutil.ToFloat64(series.withSeries); got != 0 {
		t.Errorf("tusproxy_upload_series = %v, want 0", got)
	}
	// Room is free again.
	series.created(state.Record{ID: "new", Length: 1})
	if got := testutil.ToFloat64(series.withSeries); got != 1 {
		t.Errorf("after the cap freed up: tusproxy_upload_series = %v, want 1", got)
	}
}
