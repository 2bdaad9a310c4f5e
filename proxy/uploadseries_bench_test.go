package proxy

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// Benchmarks of the per-upload metric updates on the request path (every
// PATCH starts and ends one) and of the sampler that runs every 5 s. Compare
// before and after a change with benchstat:
//
//	go test -run '^$' -bench UploadSeries -count 10 ./proxy > old.txt   (change, then new.txt)
//	benchstat old.txt new.txt

// benchSeries is a full set of per-upload series: max uploads tracked and
// registered, as on a busy replica.
// now is the series' clock, which the caller may move.
func benchSeries(b *testing.B, uploads int) (series *uploadSeries, recs []state.Record, now *time.Time) {
	b.Helper()
	clock := time.Unix(1_800_000_000, 0)
	now = &clock
	// Idle for years: the benchmark's clock moves 5 s per sample.
	series = newUploadSeries(uploads, time.Minute, 1<<20*time.Hour, func() time.Time { return *now })
	series.register(prometheus.NewRegistry())
	recs = make([]state.Record, uploads)
	for i := range recs {
		recs[i] = state.Record{ID: fmt.Sprintf("%032x", i), VideoID: fmt.Sprintf("video-%d", i), Length: 1 << 30}
		series.created(recs[i])
	}
	return series, recs, now
}

// BenchmarkUploadSeriesPatch is what one PATCH costs the per-upload series:
// patchStarted and patchEnded of an upload that has series.
func BenchmarkUploadSeriesPatch(b *testing.B) {
	series, recs, _ := benchSeries(b, 1000)
	var read atomic.Int64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec := recs[i%len(recs)]
		p := &upload.Stream{Start: rec.Offset, Received: read.Load}
		series.patchStarted(rec, p)
		ended := rec
		ended.Offset += 8 << 20
		series.patchEnded(ended, p)
		i++
	}
}

// BenchmarkUploadSeriesPatchParallel is BenchmarkUploadSeriesPatch from many
// goroutines at once: the series' mutex is shared by every PATCH.
func BenchmarkUploadSeriesPatchParallel(b *testing.B) {
	series, recs, _ := benchSeries(b, 1000)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var read atomic.Int64
		for pb.Next() {
			rec := recs[int(next.Add(1))%len(recs)]
			p := &upload.Stream{Start: rec.Offset, Received: read.Load}
			series.patchStarted(rec, p)
			ended := rec
			ended.Offset += 8 << 20
			series.patchEnded(ended, p)
		}
	})
}

// BenchmarkUploadSeriesSample is one sampler pass over 1000 uploads with
// series, 200 of them with a PATCH streaming.
func BenchmarkUploadSeriesSample(b *testing.B) {
	series, recs, now := benchSeries(b, 1000)
	reads := make([]atomic.Int64, 200)
	for i := range reads {
		series.patchStarted(recs[i], &upload.Stream{Start: recs[i].Offset, Received: reads[i].Load})
	}
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		n++
		*now = now.Add(sampleEvery) // single goroutine: the sampler's
		for i := range reads {
			reads[i].Store(n << 16) // every PATCH moved since the last sample
		}
		series.sample()
	}
}
