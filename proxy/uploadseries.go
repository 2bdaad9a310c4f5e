package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// sampleEvery is how often the per-upload gauges and the stalled count are
// brought up to date. A long PATCH moves its upload's offset gauge at this
// rate, whatever its size, and the hot path only adds to a byte counter it
// already keeps for the logs.
const sampleEvery = 5 * time.Second

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
	createdAt    *prometheus.GaugeVec
	withSeries   prometheus.GaugeFunc
	refused      prometheus.Counter

	mu      sync.Mutex
	uploads map[string]*seriesUpload
}

// seriesUpload is what the gauges of one upload are computed from.
type seriesUpload struct {
	id, videoID  string
	length       int64
	offset       int64          // the offset as last known (confirmed, or streamed so far)
	live         *upload.Stream // the write in flight, if any
	lastActivity time.Time
	sampledAt    time.Time
	sampledBytes int64     // offset at sampledAt, for the speed
	doneAt       time.Time // completed, terminated or expired; zero while active
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
		createdAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_upload_created_timestamp_seconds",
			Help: "Per upload: Unix time of its creation, for its age.",
		}, labels),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tusproxy_upload_series_refused_total",
			Help: "Times an upload got no per-upload series because TUSPROXY_METRICS_MAX_UPLOADS uploads had them (once per creation or PATCH).",
		}),
		uploads: make(map[string]*seriesUpload),
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
	reg.MustRegister(u.offset, u.length, u.speed, u.lastActivity, u.createdAt, u.withSeries, u.refused)
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
	e := &seriesUpload{id: rec.ID, videoID: videoID, length: rec.Length, offset: rec.Offset, lastActivity: now,
		sampledAt: now, sampledBytes: rec.Offset}
	u.uploads[rec.ID] = e
	u.length.WithLabelValues(e.id, e.videoID).Set(float64(rec.Length))
	u.speed.WithLabelValues(e.id, e.videoID).Set(0)
	createdAt := rec.CreatedAt
	if createdAt.IsZero() {
		createdAt = now
	}
	u.createdAt.WithLabelValues(e.id, e.videoID).Set(float64(createdAt.UnixNano()) / 1e9)
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
	u.createdAt.DeletePartialMatch(match)
}

// created gives a new upload its series.
func (u *uploadSeries) created(rec state.Record) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.trackLocked(rec, u.now())
}

// patchStarted follows a write of rec (a PATCH, or a creation's body).
func (u *uploadSeries) patchStarted(rec state.Record, p *upload.Stream) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if e := u.trackLocked(rec, now); e != nil {
		e.live = p
		e.lastActivity = now
		e.doneAt = time.Time{}
		u.setLocked(e)
	}
}

// patchEnded stops following p; rec is the upload afterwards. An upload
// that ends at its length starts its grace period, whether this write
// completed it (the lifecycle's Completed event says that) or it was
// already complete (an empty PATCH to a finished upload).
func (u *uploadSeries) patchEnded(rec state.Record, p *upload.Stream) {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.uploads[rec.ID]
	if !ok {
		return
	}
	if e.live == p {
		e.live = nil
	}
	e.offset = rec.Offset
	e.lastActivity = now
	if rec.Offset == rec.Length && e.doneAt.IsZero() {
		e.doneAt = now
	}
	u.setLocked(e)
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

// sample brings the gauges up to date: offsets of streaming uploads and
// speeds; and removes the series whose time is up.
func (u *uploadSeries) sample() {
	now := u.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, e := range u.uploads {
		if e.live != nil {
			offset := min(e.live.Start+e.live.Received(), e.length)
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
			m.sample()
		}
	}
}

// sample brings the sampled gauges up to date: the per-upload series and
// the stalled count.
func (m *metrics) sample() {
	m.stalled.Set(float64(m.streams.stalled(m.series.now())))
	m.series.sample()
}
