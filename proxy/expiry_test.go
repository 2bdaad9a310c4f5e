package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func TestUploadsExpireAfterIdleTTL(t *testing.T) {
	clock := &fakeClock{}
	clock.now.Store(time.Now().UnixNano())
	e := newEnvWith(t, map[string]string{"TUSPROXY_UPLOAD_TTL": "1h"}, proxy.Deps{Now: clock.Now})
	idle := e.create(100, "")
	active := e.create(100, "")

	resp := e.do(http.MethodHead, idle, nil, nil)
	exp, err := http.ParseTime(resp.Header.Get("Upload-Expires"))
	if err != nil || exp.Sub(clock.Now()) < 59*time.Minute || exp.Sub(clock.Now()) > time.Hour+time.Second {
		t.Fatalf("Upload-Expires %q, want an hour from now", resp.Header.Get("Upload-Expires"))
	}
	clock.Advance(40 * time.Minute)
	if r := e.patch(active, 0, []byte("0123456789")); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode) // activity restarts the idle clock
	}
	clock.Advance(30 * time.Minute)
	if r := e.do(http.MethodHead, idle, nil, nil); r.StatusCode != http.StatusGone {
		t.Fatalf("HEAD of an expired upload: %d, want 410", r.StatusCode)
	}
	if r := e.patch(idle, 0, []byte("x")); r.StatusCode != http.StatusGone {
		t.Fatalf("PATCH of an expired upload: %d, want 410", r.StatusCode)
	}
	if got := testkit.HeadOffset(t, http.DefaultClient, active); got != 10 {
		t.Fatalf("active upload: offset %d", got)
	}

	// The sweeper forgets the expired record and keeps the active one.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go e.svc.Run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := e.store.Get(t.Context(), idle[len(e.base):]); errors.Is(err, state.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired record was never swept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.store.Get(t.Context(), active[len(e.base):]); err != nil {
		t.Fatalf("the active record was swept: %v", err)
	}
}
