package proxy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// sampleEvery is how often the per-upload gauges and the stalled count are
// brought up to date. A long PATCH moves its upload's offset gauge at this
// rate, whatever its size, and the hot path only adds to a byte counter it
// already keeps for the logs.
const sampleEvery = 5 * time.Second

// stallAfter is how long a PATCH in flight may move no byte before it
// counts as stalled.
const stallAfter = 30 * time.Second

// maxLabelLen bounds a label value taken from Kinescope's answer (the video
// id), so a strange answer cannot blow up a series.
const maxLabelLen = 64

// uploadSeries are the per-upload gauges: the one deliberate exception to
// fixed label sets. An upload gets series when it is created or PATCHed on
// this replica, while fewer than limit uploads have them; they are removed, in
// removeLocked only, a grace period after the upload completes, is
// terminated or expires, or once it has been idle for the idle period.
type uploadSeries struct {
	limit int
	grace time.Duration
	idle  time.Duration
	now   func() time.Time

	offset       *prometheus.GaugeVec
	length       *prometheus.GaugeVec
	speed        *prometheus.GaugeVec
	lastActivity *prometheus.GaugeVec
	withSeries   prometheus.GaugeFunc
	refused      prometheus.Counter

	mu      sync.Mutex
	uploads map[string]*seriesUpload
	patches map[*patchProgress]struct{} // every PATCH in flight, with or without series
}

// seriesUpload is what the gauges of one upload are computed from.
type seriesUpload struct {
	id, videoID  string
	offset       int64          // the offset as last known (confirmed, or streamed so far)
	live         *patchProgress // the PATCH in flight, if any
	lastActivity time.Time
	sampledAt    time.Time
	sampledBytes int64     // offset at sampledAt, for the speed
	doneAt       time.Time // completed, terminated or expired; zero while active
}

// patchProgress follows one PATCH in flight.
type patchProgress struct {
	uploadID string
	start    int64         // the upload's offset when the PATCH began
	length   int64         // the upload's length
	read     *atomic.Int64 // body bytes read so far (the request's own counter)
	began    time.Time
	lastRead int64     // read at the last sample
	lastMove time.Time // when read last changed
}

func newUploadSeries(limit int, grace, idle time.Duration, now func() time.Time) *uploadSeries {
	labels := []string{"upload_id", "video_id"}
	u := &uploadSeries{
		limit: limit, grace: grace, idle: idle, now: now,
		offset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_upload_offset_bytes",
			Help: "Per upload: bytes received and passed on so far (moves while a PATCH streams); the upstream's confirmed offset between PATCHes.",
		}, labels),
		length: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_upload_length_bytes",
			Help: "Per upload: its Upload-Length.",
		}, labels),
		speed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_upload_speed_bytes_per_second",
			Help: "Per upload: bytes per second over the last sample interval (5s).",
		}, labels),
		lastActivity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_upload_last_activity_timestamp_seconds",
			Help: "Per upload: Unix time of its last creation, PATCH or byte received.",
		}, labels),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tusproxy_upload_series_refused_total",
			Help: "Times an upload got no per-upload series because TUSPROXY_METRICS_MAX_UPLOADS uploads had them (once per creation or PATCH).",
		}),
		uploads: make(map[string]*seriesUpload),
		patches: make(map[*patchProgress]struct{}),
	}
	u.withSeries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tusproxy_upload_series",
		Help: "Uploads that have per-upload series on this replica now.",
	}, func() float64 {
		u.mu.Lock()
		defer u.mu.Unlock()
		return float64(len(u.uploads))
	})
	return u
}

func (u *uploadSeries) register(reg prometheus.Registerer) {
	reg.MustRegister(u.offset, u.length, u.speed, u.lastActivity, u.withSeries, u.refused)
}

// trackLocked returns the upload's entry, creating it (and its series) when
// there is room; nil when the cap is reached.
func (u *uploadSeries) trackLocked(rec state.Record, now time.Time) *seriesUpload {
	if e, ok := u.uploads[rec.ID]; ok {
		return e
	}
	if len(u.uploads) >= u.limit {
		u.refused.Inc()
		return nil
	}
	videoID := rec.VideoID
	if len(videoID) > maxLabelLen {
		videoID = videoID[:maxLabelLen]
	}
	e := &seriesUpload{id: rec.ID, videoID: videoID, offset: rec.Offset, lastActivity: now,
		sampledAt: now, sampledBytes: rec.Offset}
	u.uploads[rec.ID] = e
	u.length.WithLabelValues(e.id, e.videoID).Set(float64(rec.Length))
	u.speed.WithLabelValues(e.id, e.videoID).Set(0)
	u.setLocked(e)
	return e
}

func (u *uploadSeries) setLocked(e *seriesUpload) {
	u.offset.WithLabelValues(e.id, e.videoID).Set(float64(e.offset))
	u.lastActivity.WithLabelValues(e.id, e.videoID).Set(float64(e.lastActivity.UnixNano()) / 1e9)
}

// removeLocked is the one place per-upload series are deleted.
func (u *uploadSeries) removeLocked(id string) {
	delete(u.uploads, id)
	match := prometheus.Labels{"upload_id": id}
	u.offset.DeletePartialMatch(match)
	u.length.DeletePartialMatch(match)
	u.speed.DeletePartialMatch(match)
	u.lastActivity.DeletePartialMatch(match)
}

// created gives a new upload its series.
func (u *uploadSeries) created(rec state.Record) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.trackLocked(rec, u.now())
}

// patchStarted follows a PATCH of rec whose body bytes are counted in read.
func (u *uploadSeries) patchStarted(rec state.Record, read *atomic.Int64) *patchProgress {
	now := u.now()
	p := &patchProgress{uploadID: rec.ID, start: rec.Offset, length: rec.Length, read: read, began: now,
		lastRead: read.Load(), lastMove: now}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.patches[p] = struct{}{}
	if e := u.trackLocked(rec, now); e != nil {
		e.live = p
		e.lastActivity = now
		e.doneAt = time.Time{}
		u.setLocked(e)
	}
	return p
}

// patchEnded stops following p; offset is the upload's offset afterwards.
// It reports whether this PATCH completed the upload.
func (u *uploadSeries) patchEnded(p *patchProgress, offset int64) (completed bool) {
	now := u.now()
	completed = p.start < p.length && offset == p.length
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.patches, p)
	e, ok := u.uploads[p.uploadID]
	if !ok {
		return completed
	}
	if e.live == p {
		e.live = nil
	}
	e.offset = offset
	e.lastActivity = now
	if offset == p.length && e.doneAt.IsZero() {
		// Complete, by this PATCH or before it (an empty PATCH to a
		// finished upload): the grace period starts.
		e.doneAt = now
	}
	u.setLocked(e)
	return completed
}

// streaming is the number of PATCHes in flight.
func (u *uploadSeries) streaming() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.patches)
}

// finished starts the grace period of an upload that was terminated,
// expired or lost upstream.
func (u *uploadSeries) finished(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if e, ok := u.uploads[id]; ok && e.doneAt.IsZero() {
		e.doneAt = u.now()
	}
}

// sample brings the gauges up to date: offsets of streaming uploads, speeds,
// the stalled count; and removes the series whose time is up. It returns
// the number of stalled PATCHes.
func (u *uploadSeries) sample() int {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	stalled := 0
	for p := range u.patches {
		if read := p.read.Load(); read != p.lastRead {
			p.lastRead, p.lastMove = read, now
		} else if now.Sub(p.lastMove) >= stallAfter {
			stalled++
		}
	}
	for id, e := range u.uploads {
		if e.live != nil {
			offset := min(e.live.start+e.live.read.Load(), e.live.length)
			if offset != e.offset {
				e.lastActivity = now
			}
			e.offset = offset
		}
		switch {
		case !e.doneAt.IsZero() && now.Sub(e.doneAt) >= u.grace:
			u.removeLocked(id)
			continue
		case e.live == nil && now.Sub(e.lastActivity) >= u.idle:
			u.removeLocked(id)
			continue
		}
		// Two samples at the same instant keep the interval of the first.
		if dt := now.Sub(e.sampledAt).Seconds(); dt > 0 {
			speed := 0.0
			if e.offset > e.sampledBytes {
				speed = float64(e.offset-e.sampledBytes) / dt
			}
			e.sampledAt, e.sampledBytes = now, e.offset
			u.speed.WithLabelValues(e.id, e.videoID).Set(speed)
		}
		u.setLocked(e)
	}
	return stalled
}

// runSampler samples every sampleEvery until ctx is done.
func (m *metrics) runSampler(ctx context.Context) {
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.stalled.Set(float64(m.series.sample()))
		}
	}
}
