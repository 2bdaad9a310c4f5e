package redislimit_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/redislimit"
)

var _ proxy.Limiter = (*redislimit.Limiter)(nil)

var (
	alice = netip.MustParseAddr("192.0.2.1")
	bob   = netip.MustParseAddr("2001:db8:1:2::")
	t0    = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
)

const lease = 30 * time.Second

// replicas returns n limiters on one prefix, each on its own client, as n
// tusproxy processes sharing a Redis.
func replicas(t testing.TB, n int) []*redislimit.Limiter {
	t.Helper()
	prefix := redistest.Prefix(t)
	var ls []*redislimit.Limiter
	for range n {
		l, err := redislimit.New(redistest.Client(t), redislimit.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	return ls
}

func take(t *testing.T, l *redislimit.Limiter, addr netip.Addr, perMinute int, now time.Time) time.Duration {
	t.Helper()
	wait, err := l.TakeCreation(context.Background(), addr, perMinute, now)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

// TestCreationBucketSharedByReplicas: a bucket of 3 a minute taken through
// three replicas in turn holds 3 in all; the fourth waits the 20 s until the
// next token, which then comes back, and a minute later the bucket is full.
func TestCreationBucketSharedByReplicas(t *testing.T) {
	ls := replicas(t, 3)
	for i := range 3 {
		if wait := take(t, ls[i], alice, 3, t0); wait != 0 {
			t.Fatalf("creation %d through replica %d: wait %v, want a token", i+1, i, wait)
		}
	}
	for i := range 3 {
		if wait := take(t, ls[i], alice, 3, t0.Add(time.Second)); wait != 19*time.Second {
			t.Fatalf("fourth creation through replica %d: wait %v, want 19s (a token every 20 s)", i, wait)
		}
	}
	if wait := take(t, ls[1], bob, 3, t0); wait != 0 {
		t.Fatalf("another address waits %v: buckets are per address", wait)
	}
	if wait := take(t, ls[2], alice, 3, t0.Add(20*time.Second)); wait != 0 {
		t.Fatalf("after 20 s: wait %v, want the token refilled", wait)
	}
	if wait := take(t, ls[0], alice, 3, t0.Add(21*time.Second)); wait != 19*time.Second {
		t.Fatalf("after taking the refilled token: wait %v, want 19s", wait)
	}
	later := t0.Add(21*time.Second + time.Minute) // empty at 21 s, full a minute later
	for i := range 3 {
		if wait := take(t, ls[i], alice, 3, later); wait != 0 {
			t.Fatalf("a minute after the bucket emptied, creation %d: wait %v, want a full bucket", i+1, wait)
		}
	}
	if wait := take(t, ls[0], alice, 3, later); wait == 0 {
		t.Fatal("a full bucket of 3 gave a fourth token")
	}
}

// TestCreationClockBehind: a replica whose clock is behind the bucket's last
// refill adds nothing; it never gives tokens back in time.
func TestCreationClockBehind(t *testing.T) {
	ls := replicas(t, 2)
	for range 2 {
		take(t, ls[0], alice, 2, t0)
	}
	if wait := take(t, ls[1], alice, 2, t0.Add(-10*time.Second)); wait != 30*time.Second {
		t.Fatalf("a replica 10 s behind: wait %v, want the 30 s the bucket needs", wait)
	}
	if wait := take(t, ls[0], alice, 2, t0.Add(30*time.Second)); wait != 0 {
		t.Fatalf("30 s on: wait %v, want a token", wait)
	}
}

// TestCreationBucketExpires: a bucket's key lives only until it would be
// full again, so addresses that stopped creating leave nothing in Redis.
func TestCreationBucketExpires(t *testing.T) {
	prefix := redistest.Prefix(t)
	client := redistest.Client(t)
	l, err := redislimit.New(client, redislimit.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	take(t, l, alice, 6, time.Now()) // one token of 6: full again in 10 s
	ttl, err := client.PTTL(context.Background(), prefix+"rate:create:"+alice.String()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Fatalf("bucket TTL %v, want the 10 s until it is full", ttl)
	}
}

func start(t *testing.T, l *redislimit.Limiter, addr netip.Addr, id string, max int, now time.Time) bool {
	t.Helper()
	ok, err := l.StartStream(context.Background(), addr, id, max, now, lease)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestStreamsCappedAcrossReplicas: with a cap of 2, two streams on two
// replicas fill an address; a third on the third replica is refused until
// one ends. A stream admitted again (a retried call) is not counted twice.
func TestStreamsCappedAcrossReplicas(t *testing.T) {
	ls := replicas(t, 3)
	if !start(t, ls[0], alice, "a", 2, t0) || !start(t, ls[1], alice, "b", 2, t0) {
		t.Fatal("the first two streams were refused")
	}
	if start(t, ls[2], alice, "c", 2, t0) {
		t.Fatal("a third stream of an address with a cap of 2 was admitted")
	}
	if !start(t, ls[0], alice, "a", 2, t0) {
		t.Fatal("a stream already counted was refused when admitted again")
	}
	if !start(t, ls[2], bob, "c", 2, t0) {
		t.Fatal("another address was refused: caps are per address")
	}
	if err := ls[1].EndStream(context.Background(), alice, "b"); err != nil {
		t.Fatal(err)
	}
	if !start(t, ls[2], alice, "c", 2, t0) {
		t.Fatal("after a stream ended, a new one was refused")
	}
}

// TestStreamLeases: a replica that dies mid-PATCH never ends its streams;
// they stop counting when their lease runs out. Streams renewed keep
// counting, and a renewal does not bring back a stream that ended.
func TestStreamLeases(t *testing.T) {
	ls := replicas(t, 2)
	dead, live := ls[0], ls[1]
	start(t, dead, alice, "dead", 2, t0)
	start(t, live, alice, "live", 2, t0)
	start(t, live, bob, "ended", 1, t0)
	if err := live.EndStream(context.Background(), bob, "ended"); err != nil {
		t.Fatal(err)
	}
	renewed := map[netip.Addr][]string{alice: {"live"}, bob: {"ended"}}
	if err := live.RenewStreams(context.Background(), renewed, t0.Add(20*time.Second), lease); err != nil {
		t.Fatal(err)
	}
	after := t0.Add(lease + time.Millisecond) // the dead replica's lease is over
	if !start(t, live, alice, "new", 2, after) {
		t.Fatal("the dead replica's stream still counts after its lease")
	}
	if start(t, live, alice, "third", 2, after) {
		t.Fatal("the renewed stream stopped counting before its renewed lease")
	}
	if !start(t, live, bob, "other", 1, after) {
		t.Fatal("a renewal brought back a stream that had ended")
	}
}

// TestStreamKeysExpire: the set of an address lives as long as its longest
// lease, so a dead replica leaves no key behind for good.
func TestStreamKeysExpire(t *testing.T) {
	prefix := redistest.Prefix(t)
	client := redistest.Client(t)
	l, err := redislimit.New(client, redislimit.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	start(t, l, alice, "a", 1, time.Now())
	key := prefix + "streams:" + alice.String()
	ttl, err := client.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= lease-time.Second || ttl > lease {
		t.Fatalf("streams TTL %v, want the %v lease", ttl, lease)
	}
	if err := l.EndStream(context.Background(), alice, "a"); err != nil {
		t.Fatal(err)
	}
	if n, _ := client.Exists(context.Background(), key).Result(); n != 0 {
		t.Fatal("the set of an address with no stream is still there")
	}
}

// TestSilentRedisErrors: every call returns an error once its context ends
// when Redis stops answering; the caller decides what then.
func TestSilentRedisErrors(t *testing.T) {
	relay := redistest.NewRelay(t)
	opts, err := redis.ParseURL(relay.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true // as the state store's client
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	l, err := redislimit.New(client, redislimit.Options{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if wait := take(t, l, alice, 3, t0); wait != 0 {
		t.Fatalf("through the relay: wait %v", wait)
	}
	relay.Mute()
	calls := map[string]func(context.Context) error{
		"take": func(ctx context.Context) error { _, err := l.TakeCreation(ctx, alice, 3, t0); return err },
		"start": func(ctx context.Context) error {
			_, err := l.StartStream(ctx, alice, "a", 1, t0, lease)
			return err
		},
		"renew": func(ctx context.Context) error {
			return l.RenewStreams(ctx, map[netip.Addr][]string{alice: {"a"}}, t0, lease)
		},
		"end": func(ctx context.Context) error { return l.EndStream(ctx, alice, "a") },
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := call(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s: no error from a silent Redis", name)
		}
	}
}

// BenchmarkTakeCreation measures what the shared creation rate adds to a
// creation: one script call.
func BenchmarkTakeCreation(b *testing.B) {
	l := replicas(b, 1)[0]
	for b.Loop() {
		if _, err := l.TakeCreation(context.Background(), alice, 1_000_000, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartEndStream measures what the shared PATCH cap adds to a
// PATCH: the admitting script and the ZREM when it ends.
func BenchmarkStartEndStream(b *testing.B) {
	l := replicas(b, 1)[0]
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.StartStream(ctx, alice, "s", 64, time.Now(), lease); err != nil {
			b.Fatal(err)
		}
		if err := l.EndStream(ctx, alice, "s"); err != nil {
			b.Fatal(err)
		}
	}
}
