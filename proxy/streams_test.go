package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/proxy/redislimit"
)

// TestSharedStreamsRenewed: a body streaming longer than its lease keeps
// its place in the shared count while its replica renews it, and frees it
// within a lease once the renewals stop, as when the replica dies.
func TestSharedStreamsRenewed(t *testing.T) {
	limiter, err := redislimit.New(redistest.Client(t), redislimit.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	replica := func() *streams {
		s := newStreams(1, 0, newSharedLimits(limiter, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)))
		s.lease = 1500 * time.Millisecond
		return s
	}
	a, b := replica(), replica()
	addr := netip.MustParseAddr("192.0.2.7")
	renewing, stopRenewing := context.WithCancel(context.Background())
	defer stopRenewing()
	renewed := make(chan struct{})
	go func() {
		a.renewShared(renewing, time.Now)
		close(renewed)
	}()
	if _, err := a.start(context.Background(), addr, new(bodyReader), time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * a.lease)
	if done, err := b.start(context.Background(), addr, new(bodyReader), time.Now()); err != errTooManyPatches {
		if done != nil {
			done()
		}
		t.Fatalf("after %v, two leases, a second stream of the address: %v, want errTooManyPatches", 3*a.lease, err)
	}
	stopRenewing()
	<-renewed
	for deadline := time.Now().Add(3 * a.lease); ; time.Sleep(50 * time.Millisecond) {
		done, err := b.start(context.Background(), addr, new(bodyReader), time.Now())
		if err == nil {
			done()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewals stopped %v ago, and the stream still counts", 3*a.lease)
		}
	}
}
