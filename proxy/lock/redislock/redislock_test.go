package redislock_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/proxy/lock/locktest"
	"github.com/kinescope-tools/tusproxy/proxy/lock/redislock"
)

// patience bounds waits that are expected to end; it only decides a test
// when something is wrong.
const patience = 30 * time.Second

// newLocker returns a Locker closed when the test ends (before client).
func newLocker(t *testing.T, client redis.UniversalClient, opts redislock.Options) *redislock.Locker {
	t.Helper()
	l, err := redislock.New(client, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestContractOneLocker(t *testing.T) {
	locktest.Run(t, func(t *testing.T) locktest.Deployment {
		l := newLocker(t, redistest.Client(t), redislock.Options{Prefix: redistest.Prefix(t)})
		return func() handler.Locker { return l }
	})
}

// TestContractTwoReplicas runs the suite with two Lockers on two clients,
// as two tusproxy processes: consecutive lockers the suite asks for
// alternate between them, so waiters and holders sit on different replicas.
func TestContractTwoReplicas(t *testing.T) {
	locktest.Run(t, func(t *testing.T) locktest.Deployment {
		prefix := redistest.Prefix(t)
		replicas := []*redislock.Locker{
			newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix}),
			newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix}),
		}
		var next atomic.Int64
		return func() handler.Locker { return replicas[next.Add(1)%2] }
	})
}

func TestNewValidates(t *testing.T) {
	if _, err := redislock.New(nil, redislock.Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	if _, err := redislock.New(client, redislock.Options{Lease: redislock.MinLease - 1}); err == nil {
		t.Error("New with a lease below MinLease succeeded")
	}
}

func mustNewLock(t *testing.T, l handler.Locker, id string) handler.Lock {
	t.Helper()
	lock, err := l.NewLock(id)
	if err != nil {
		t.Fatalf("NewLock: %v", err)
	}
	return lock
}

func lockWithin(lock handler.Lock, d time.Duration, requestRelease func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return lock.Lock(ctx, requestRelease)
}

// signal returns a callback that closes the returned channel on its first
// call.
func signal() (func(), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }, ch
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("%s never happened", what)
	}
}

// TestDeadReplica kills a replica holding a lock (its client closes, so it
// can neither renew nor unlock) and checks that another replica gets the
// lock once the lease runs out.
func TestDeadReplica(t *testing.T) {
	prefix := redistest.Prefix(t)
	const lease = 500 * time.Millisecond
	deadClient := redistest.Client(t)
	dead := newLocker(t, deadClient, redislock.Options{Prefix: prefix, Lease: lease})
	live := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix, Lease: lease})

	held := mustNewLock(t, dead, "upload")
	if err := lockWithin(held, patience, func() {}); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := deadClient.Close(); err != nil {
		t.Fatal(err)
	}
	taker := mustNewLock(t, live, "upload")
	if err := lockWithin(taker, patience, func() {}); err != nil {
		t.Fatalf("Lock after the holder's replica died = %v, want the lock once its lease ran out", err)
	}
	if err := taker.Unlock(); err != nil {
		t.Errorf("Unlock: %v", err)
	}
}

// TestRenewalKeepsTheLock holds a lock for several leases while another
// replica tries to take it; the renewals must keep it.
func TestRenewalKeepsTheLock(t *testing.T) {
	prefix := redistest.Prefix(t)
	const lease = 2 * time.Second
	a := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix, Lease: lease})
	b := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix, Lease: lease})

	held := mustNewLock(t, a, "upload")
	if err := lockWithin(held, patience, func() {}); err != nil { // never lets go
		t.Fatalf("Lock: %v", err)
	}
	waiter := mustNewLock(t, b, "upload")
	if err := lockWithin(waiter, 3*lease, func() {}); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("Lock of a lock renewed by its holder = %v, want ErrLockTimeout", err)
	}
	if err := held.Unlock(); err != nil {
		t.Errorf("Unlock after holding for %v: %v (the renewals failed)", 3*lease, err)
	}
}

// TestLostLock takes a lock away behind its holder's back, as when its
// lease ran out during a stall and another request took it without asking:
// the renewal must notice and ask the holder to stop, and the holder's
// Unlock must report the loss without touching the new holder's lock.
func TestLostLock(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	client := redistest.Client(t)
	l := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix, Lease: 600 * time.Millisecond})

	held := mustNewLock(t, l, "upload")
	stop, stopped := signal()
	if err := lockWithin(held, patience, stop); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	key := prefix + "lock:upload"
	if err := client.Set(ctx, key, "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stopped, "the holder's requestRelease after its lock was lost")
	if err := held.Unlock(); !errors.Is(err, redislock.ErrLost) {
		t.Errorf("Unlock of a lost lock = %v, want ErrLost", err)
	}
	if token, err := client.Get(ctx, key).Result(); err != nil || token != "someone-else" {
		t.Errorf("the new holder's lock after the old holder's Unlock = %q, %v; want it untouched", token, err)
	}
}

// TestSilentRedis makes Redis stop answering while a lock is held: the
// holder must be asked to stop once the lease can no longer be renewed,
// and Lock must fail rather than wait for ever.
func TestSilentRedis(t *testing.T) {
	relay := redistest.NewRelay(t)
	opts, err := redis.ParseURL(relay.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.ReadTimeout, opts.WriteTimeout, opts.DialTimeout = time.Second, time.Second, time.Second
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	l := newLocker(t, client, redislock.Options{Prefix: redistest.Prefix(t), Lease: 600 * time.Millisecond})

	held := mustNewLock(t, l, "held")
	stop, stopped := signal()
	if err := lockWithin(held, patience, stop); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	relay.Mute()
	waitFor(t, stopped, "requestRelease of a lock whose lease could not be renewed")
	if err := held.Unlock(); err == nil {
		t.Error("Unlock with Redis silent = nil, want an error")
	}
	err = lockWithin(mustNewLock(t, l, "other"), patience, func() {})
	if err == nil || errors.Is(err, handler.ErrLockTimeout) {
		t.Errorf("Lock with Redis silent = %v, want the Redis error", err)
	}
}

func TestUnreachableRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	locker := newLocker(t, client, redislock.Options{})
	err = lockWithin(mustNewLock(t, locker, "upload"), patience, func() {})
	if err == nil || errors.Is(err, handler.ErrLockTimeout) || !strings.Contains(err.Error(), "upload") {
		t.Errorf("Lock with no Redis = %v, want a Redis error naming the upload", err)
	}
}

// commandCounter counts the commands a client sends, by name.
type commandCounter struct {
	mu    sync.Mutex
	names []string
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.names = append(c.names, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		for _, cmd := range cmds {
			c.names = append(c.names, cmd.Name())
		}
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// take returns the commands counted since the last call, leaving out the
// subscription's health-check pings.
func (c *commandCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for _, name := range c.names {
		if name != "ping" {
			names = append(names, name)
		}
	}
	c.names = nil
	return names
}

// TestRoundTrips pins the cost of an uncontended Lock and Unlock, which
// every PATCH pays: one script call each.
func TestRoundTrips(t *testing.T) {
	client := redistest.Client(t)
	counter := &commandCounter{}
	client.AddHook(counter)
	l := newLocker(t, client, redislock.Options{Prefix: redistest.Prefix(t)})
	lock := mustNewLock(t, l, "upload")
	// Warm up: the first calls load the scripts into Redis.
	for range 2 {
		if err := lockWithin(lock, patience, func() {}); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		if err := lock.Unlock(); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
	}
	counter.take()
	if err := lockWithin(lock, patience, func() {}); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if got := counter.take(); len(got) != 1 || got[0] != "evalsha" {
		t.Errorf("uncontended Lock sent %q, want one evalsha", got)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if got := counter.take(); len(got) != 1 || got[0] != "evalsha" {
		t.Errorf("Unlock sent %q, want one evalsha", got)
	}
}

// TestWaiterDoesNotHammerRedis counts a waiter's attempts while a lock is
// held for a while: it polls with backoff, it does not spin.
func TestWaiterDoesNotHammerRedis(t *testing.T) {
	prefix := redistest.Prefix(t)
	holder := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix})
	waiterClient := redistest.Client(t)
	counter := &commandCounter{}
	waiterClient.AddHook(counter)
	waiter := newLocker(t, waiterClient, redislock.Options{Prefix: prefix})

	held := mustNewLock(t, holder, "upload")
	if err := lockWithin(held, patience, func() {}); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	const wait = 2 * time.Second
	if err := lockWithin(mustNewLock(t, waiter, "upload"), wait, func() {}); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("Lock = %v, want ErrLockTimeout", err)
	}
	// The backoff (10 ms doubling to 500 ms) allows about 10 attempts in
	// 2 s; a spinning waiter would make thousands.
	if attempts := len(counter.take()); attempts > 30 {
		t.Errorf("a waiter made %d attempts in %v", attempts, wait)
	}
	if err := held.Unlock(); err != nil {
		t.Errorf("Unlock: %v", err)
	}
}

func TestClose(t *testing.T) {
	prefix := redistest.Prefix(t)
	client := redistest.Client(t)
	l, err := redislock.New(client, redislock.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	other := newLocker(t, redistest.Client(t), redislock.Options{Prefix: prefix})

	held := mustNewLock(t, l, "held")
	stop, stopped := signal()
	if err := lockWithin(held, patience, stop); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	// A waiter blocked in Lock when the Locker closes, for a lock held
	// elsewhere (so its release request does not reach "held").
	busy := mustNewLock(t, other, "busy")
	if err := lockWithin(busy, patience, func() {}); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	defer busy.Unlock()
	waiterLock := mustNewLock(t, l, "busy")
	waiting := make(chan error, 1)
	go func() { waiting <- lockWithin(waiterLock, patience, func() {}) }()

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitFor(t, stopped, "requestRelease of a lock held at Close")
	select {
	case err := <-waiting:
		if !errors.Is(err, redislock.ErrClosed) && !errors.Is(err, handler.ErrLockTimeout) {
			t.Errorf("Lock waiting at Close = %v, want ErrClosed", err)
		}
	case <-time.After(patience):
		t.Fatal("a Lock waiting at Close did not return")
	}
	if err := lockWithin(mustNewLock(t, l, "new"), patience, func() {}); !errors.Is(err, redislock.ErrClosed) {
		t.Errorf("Lock after Close = %v, want ErrClosed", err)
	}
	// Unlock still gives the lock back (the client is open): another
	// replica gets it well before the 10 s lease would have run out.
	if err := held.Unlock(); err != nil {
		t.Errorf("Unlock after Close: %v", err)
	}
	if err := lockWithin(mustNewLock(t, other, "held"), 5*time.Second, func() {}); err != nil {
		t.Errorf("Lock on another replica after Unlock = %v, want the lock at once", err)
	}
}

// TestCloseStopsGoroutines checks that a Locker leaves no goroutine behind:
// a process opening and closing lockers (tests, reloads) must not leak.
func TestCloseStopsGoroutines(t *testing.T) {
	client := redistest.Client(t)
	prefix := redistest.Prefix(t)
	cycle := func() {
		l, err := redislock.New(client, redislock.Options{Prefix: prefix, Lease: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		lock := mustNewLock(t, l, "upload")
		if err := lockWithin(lock, patience, func() {}); err != nil {
			t.Fatalf("Lock: %v", err)
		}
		if err := lock.Unlock(); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// A first cycle lets the client start the goroutines it keeps for its
	// own lifetime (go-redis starts some with its first connections).
	cycle()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	cycle()
	// Goroutines end shortly after Close returns; wait for the count to
	// come back rather than assume when.
	deadline := time.Now().Add(patience)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before New, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkLockUnlock measures the uncontended cycle every PATCH pays.
func BenchmarkLockUnlock(b *testing.B) {
	l, err := redislock.New(redistest.Client(b), redislock.Options{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lock, _ := l.NewLock("upload")
		if err := lock.Lock(ctx, func() {}); err != nil {
			b.Fatal(err)
		}
		if err := lock.Unlock(); err != nil {
			b.Fatal(err)
		}
	}
}
