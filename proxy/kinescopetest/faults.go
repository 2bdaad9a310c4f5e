package kinescopetest

import (
	"context"
	"net/http"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/faultspec"
)

// Faults make the emulator misbehave on purpose. The zero value injects none.
// Set them with [Emulator.SetFaults]. The type lives in a package of its own,
// with its spec parser, so that tusproxy's configuration can hold and check a
// spec without depending on the emulator (and on tusd).
type Faults = faultspec.Faults

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
