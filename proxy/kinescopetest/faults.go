package kinescopetest

import (
	"context"
	"net/http"
	"time"
)

// Faults make the emulator misbehave on purpose. The zero value injects none.
// Set them with [Emulator.SetFaults].
type Faults struct {
	// InitStatus, when not 0, makes /v2/init answer this status with a
	// Kinescope-shaped error body (401 -> 100102 Unauthorized, 403 -> 100103
	// Access denied, 402 -> 100106 Limit reached, 400 -> 400101, 5xx -> 500000)
	// or with InitBody when that is set. No video is created.
	InitStatus int
	// InitBody is the raw body sent with InitStatus, so tests can send garbage
	// JSON, even with status 201. Ignored when InitStatus is 0.
	InitBody string
	// InitDrop makes /v2/init close the connection without answering and
	// without creating a video.
	InitDrop bool
	// InitDelay is slept before /v2/init is handled. A client that gives up
	// meanwhile gets nothing and no video is created.
	InitDelay time.Duration
	// InitEndpoint, when set, rewrites the endpoint of successful init answers
	// (to issue http:// or foreign-host endpoints, or to point clients at a
	// fault-injecting proxy). The video's Endpoint is the rewritten one.
	InitEndpoint func(endpoint string) string

	// CutPatchEvery, when > 0, cuts every Nth PATCH (the Nth, 2Nth, ... counted
	// since SetFaults): after CutPatchAfter body bytes the emulator keeps those
	// bytes, as a real server does, and closes the TCP connection without any
	// answer. A PATCH whose body is shorter than CutPatchAfter is not cut; one
	// of exactly CutPatchAfter bytes is cut after all of them are stored (the
	// answer is lost). A PATCH refused before its body is read (409, 412,
	// 413...) is answered as usual, and one chosen by FailEvery is failed, not
	// cut.
	CutPatchEvery int
	// CutPatchAfter is the number of body bytes a cut PATCH keeps.
	CutPatchAfter int64

	// FailEvery, when > 0, answers every Nth tus request (HEAD, PATCH and
	// DELETE counted together since SetFaults) with FailStatus before it
	// touches the upload.
	FailEvery int
	// FailStatus is the status of failed tus requests. Default 503.
	FailStatus int

	// Latency is added before every tus answer and every init answer.
	Latency time.Duration
	// WrongOffset makes successful PATCH answers carry Upload-Offset + 1, as a
	// lying upstream would. HEAD still tells the truth.
	WrongOffset bool
}

// SetFaults replaces the faults in effect and resets the counters of
// CutPatchEvery and FailEvery. It is safe to call at any time, also while
// requests are served; a request follows the faults in effect when it arrived.
func (e *Emulator) SetFaults(f Faults) {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	e.faults = f
	e.tusSeen = 0
	e.patchSeen = 0
}

// initPlan is what the faults make of one /v2/init request.
type initPlan struct {
	delay    time.Duration
	drop     bool
	status   int
	body     string
	endpoint func(string) string
}

func (e *Emulator) planInit() initPlan {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	f := e.faults
	return initPlan{
		delay:    f.InitDelay + f.Latency,
		drop:     f.InitDrop,
		status:   f.InitStatus,
		body:     f.InitBody,
		endpoint: f.InitEndpoint,
	}
}

// tusPlan is what the faults make of one tus request.
type tusPlan struct {
	latency     time.Duration
	wrongOffset bool
	failStatus  int   // 0: not failed
	cutAfter    int64 // < 0: not cut
}

func (e *Emulator) planTus(method string) tusPlan {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	f := e.faults
	plan := tusPlan{latency: f.Latency, wrongOffset: f.WrongOffset, cutAfter: -1}

	switch method {
	case http.MethodHead, http.MethodPatch, http.MethodDelete:
		e.tusSeen++
		if f.FailEvery > 0 && e.tusSeen%f.FailEvery == 0 {
			plan.failStatus = f.FailStatus
			if plan.failStatus == 0 {
				plan.failStatus = http.StatusServiceUnavailable
			}
		}
	}
	if method == http.MethodPatch {
		e.patchSeen++
		if f.CutPatchEvery > 0 && e.patchSeen%f.CutPatchEvery == 0 && plan.failStatus == 0 {
			plan.cutAfter = max(f.CutPatchAfter, 0)
		}
	}
	return plan
}

// sleepCtx sleeps for d unless ctx ends first; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// abortConnection closes the client's connection without an answer. Hijacking
// is the plain TCP close the faults promise; where it is not available
// (HTTP/2), http.ErrAbortHandler makes the server reset the stream instead.
func abortConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
