package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The local bucket, on a clock of the test's: a full bucket of 3 a minute
// lets 3 through, then one every 20 s; a refused creation takes nothing, so
// asking again does not push the next token further away.
func TestCreationRateBucket(t *testing.T) {
	l := newCreationRate(3, newSharedLimits(nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	addr, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	now := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if err := l.allowCreate(ctx, addr, now); err != nil {
			t.Fatalf("creation %d of a full bucket: %v", i+1, err)
		}
	}
	wantWait := func(at time.Time, want time.Duration) {
		t.Helper()
		err := l.allowCreate(ctx, addr, at)
		var e *Error
		if !errors.As(err, &e) || e.RetryAfter != want {
			t.Fatalf("creation at +%v: %v, want a wait of %v", at.Sub(now), err, want)
		}
	}
	wantWait(now, 20*time.Second)
	wantWait(now.Add(5*time.Second), 15*time.Second) // the refusal before took nothing
	if err := l.allowCreate(ctx, addr, now.Add(20*time.Second)); err != nil {
		t.Fatalf("creation once a token is back: %v", err)
	}
	wantWait(now.Add(20*time.Second), 20*time.Second)
	if err := l.allowCreate(ctx, other, now); err != nil {
		t.Fatalf("another address has its own bucket: %v", err)
	}

	// Full buckets are what is dropped when the map is at its bound.
	l.dropFullBuckets(now.Add(2 * time.Minute))
	if len(l.buckets) != 0 {
		t.Fatalf("%d buckets left after they were all full again, want 0", len(l.buckets))
	}
	l.allowCreate(ctx, addr, now)
	l.dropFullBuckets(now.Add(time.Second))
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets left, want the one still refilling", len(l.buckets))
	}
}
