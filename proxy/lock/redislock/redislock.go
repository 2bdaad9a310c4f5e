// Package redislock is a tusd handler.Locker kept in Redis, so tusproxy
// replicas behind a load balancer without sticky sessions still let one
// request at a time work on an upload, whichever replica each request
// reaches. It keeps the semantics of tusd's memorylocker, which the proxy
// uses with a single replica: a request that wants a held lock has the
// holder's requestRelease called (the holder stops its PATCH and unlocks),
// then waits for the lock until its context ends, and gets
// handler.ErrLockTimeout if it does first.
//
// # In Redis
//
// Under the prefix P, an upload's lock is the key "P lock:<id>" holding a
// token unique to one Lock call, with a lease (PX) that the holder renews
// while it holds the lock. Taking a free lock is one script call: it sets the
// key if it is absent. When the key is someone else's, the same call sets
// "P lockwait:<id>" (someone waits) and publishes a release request on the
// channel "P lock-events"; every Locker subscribes to that channel once and
// calls the requestRelease of the upload's holders in its process. Unlock is
// one script call that deletes the key only if it still holds this holder's
// token, and publishes "released" only when someone waits, so an
// uncontended PATCH costs two round trips in all and sends no messages.
//
// Pub/sub messages are lost while a subscriber reconnects, so a waiter never
// relies on them: it also tries again after a short randomised backoff
// (10 ms doubling up to 500 ms, or Lease/4 if that is less), and each try
// repeats the release request. A waiter never busy-loops Redis.
//
// # Leases and lost locks
//
// A lock outlives nothing: if a replica dies, its locks expire after at most
// Lease and a waiter takes over. While a lock is held, the Locker renews its
// lease every Lease/3 with a script that extends it only if it still holds
// this holder's token. When a renewal finds the lock gone, or Redis has not
// confirmed a renewal for so long that the lease would run out before the
// next one (Redis unreachable, this process stalled), the lock is lost:
// another replica may take it at any moment. The Locker then calls the
// holder's requestRelease, so a PATCH stops writing at once, and its Unlock
// returns an error wrapping ErrLost. The lease bounds how long two holders
// can overlap after such a loss; choose it well above Redis latency and
// garbage-collection pauses (the 10 s default), and below what a client is
// willing to wait for a dead replica's lock.
//
// # Use
//
// Replicas share the Redis of the state store, and the Locker can use the
// store's client (close the Locker before the store):
//
//	store, err := state.OpenRedis(ctx, redisURL, state.RedisOptions{Prefix: prefix})
//	...
//	locker, err := redislock.New(store.Client(), redislock.Options{Prefix: prefix, Logger: log})
//
// It needs a single Redis (standalone, or a Sentinel-managed primary), like
// the state store: its scripts touch keys derived from the upload id.
package redislock

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tus/tusd/v2/pkg/handler"
)

var _ handler.Locker = (*Locker)(nil)

// Defaults and bounds of Options.
const (
	// DefaultPrefix is the key prefix when Options.Prefix is empty. It is
	// the state store's default too: their keys do not collide.
	DefaultPrefix = "tusproxy:"
	// DefaultLease is the lease when Options.Lease is 0.
	DefaultLease = 10 * time.Second
	// MinLease is the shortest lease New accepts: renewals run every
	// Lease/3 and must have time for a round trip.
	MinLease = 100 * time.Millisecond
)

// Waiting for a held lock: first retry after minPoll, doubling up to
// maxPoll (or Lease/4, so the wait flag, which lives one lease, never lapses
// while someone waits).
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 500 * time.Millisecond
)

// Errors returned by the Locker and its locks.
var (
	// ErrLost is wrapped by Unlock when the lock was no longer this
	// holder's: its lease ran out (see the package documentation) and
	// another request may have held it in the meantime. The holder's
	// requestRelease was called when the loss was noticed. Nothing of the
	// new holder's is touched. (Rarely, it also means Redis executed the
	// unlock but its reply was lost and go-redis retried it.)
	ErrLost = errors.New("redislock: the lock was lost before Unlock (its lease ran out)")
	// ErrClosed is returned by Lock once the Locker is closed.
	ErrClosed = errors.New("redislock: locker is closed")
)

// Options configures New.
type Options struct {
	// Prefix starts every key and the channel the Locker uses, so several
	// deployments can share one Redis. Replicas of one deployment must use
	// the same prefix. Default: DefaultPrefix.
	Prefix string
	// Lease is how long a lock lives in Redis without renewal: the longest
	// a dead replica's lock blocks its upload, and the longest two holders
	// can overlap after a holder loses its lock. Default: DefaultLease;
	// at least MinLease.
	Lease time.Duration
	// Logger receives lost locks and renewal failures. Default: discard.
	Logger *slog.Logger
}

// acquireScript takes the lock if it is free (or already this token's: a
// call retried by go-redis after a lost reply). Otherwise it marks that
// someone waits and publishes a release request naming the requester's
// token, so the requester never takes the request for itself if it gets the
// lock before the message is delivered.
//
// KEYS: lock, wait flag. ARGV: token, lease in ms, channel, upload id.
// Returns 1 when the lock is the caller's, 0 when someone else holds it.
var acquireScript = redis.NewScript(`
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], 'r' .. ARGV[1] .. ' ' .. ARGV[4])
return 0
`)

// renewScript extends the lease if the lock still holds the token.
//
// KEYS: lock. ARGV: token, lease in ms. Returns 1 if extended, else 0.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// unlockScript deletes the lock if it still holds the token, and tells the
// waiters, if any, that it is free.
//
// KEYS: lock, wait flag. ARGV: token, channel, upload id. Returns 1 if the
// lock was deleted, 0 if it was not the token's.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PUBLISH', ARGV[2], 'u' .. ARGV[3])
end
return 1
`)

// Message kinds on the channel: the first byte of the payload.
const (
	msgReleaseRequest = 'r' // then the requester's token, a space, the upload id
	msgReleased       = 'u' // then the upload id
)

// Locker is a handler.Locker backed by Redis. Create it with New and Close
// it when done; it is safe for concurrent use.
type Locker struct {
	client    redis.UniversalClient
	channel   string
	lockKey   string // prefix of lock keys
	waitKey   string // prefix of wait-flag keys
	lease     time.Duration
	leaseMS   int64
	maxPoll   time.Duration
	log       *slog.Logger
	tokenBase string
	tokenSeq  atomic.Uint64

	mu      sync.Mutex
	held    map[string][]*holding      // by upload id: this process's holders
	waiters map[string][]chan struct{} // by upload id: woken when it may be free
	closed  bool

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	pubsub    *redis.PubSub
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// holding is one held lock.
type holding struct {
	id, key, token string
	requestRelease func()
	validUntil     time.Time // guarded by Locker.mu: the lease runs out no earlier
}

// New returns a Locker using client, which it does not close: close the
// Locker first, then the client. It subscribes to the lock channel at once;
// if Redis cannot be reached yet, the subscription is retried in the
// background (meanwhile waiters rely on their polling).
func New(client redis.UniversalClient, opts Options) (*Locker, error) {
	if client == nil {
		return nil, errors.New("redislock: a Redis client is required")
	}
	if opts.Lease == 0 {
		opts.Lease = DefaultLease
	}
	if opts.Lease < MinLease {
		return nil, fmt.Errorf("redislock: lease %v is below the minimum of %v", opts.Lease, MinLease)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var random [8]byte
	_, _ = cryptorand.Read(random[:]) // never fails
	ctx, cancel := context.WithCancel(context.Background())
	l := &Locker{
		client:    client,
		channel:   opts.Prefix + "lock-events",
		lockKey:   opts.Prefix + "lock:",
		waitKey:   opts.Prefix + "lockwait:",
		lease:     opts.Lease,
		leaseMS:   opts.Lease.Milliseconds(),
		maxPoll:   min(maxPoll, opts.Lease/4),
		log:       opts.Logger,
		tokenBase: hex.EncodeToString(random[:]) + ".",
		held:      make(map[string][]*holding),
		waiters:   make(map[string][]chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	l.pubsub = client.Subscribe(ctx, l.channel)
	messages := l.pubsub.ChannelWithSubscriptions()
	l.wg.Go(func() { l.dispatch(messages) })
	l.wg.Go(l.renewLoop)
	return l, nil
}

// NewLock implements handler.Locker. It does not talk to Redis.
func (l *Locker) NewLock(id string) (handler.Lock, error) {
	return &lock{locker: l, id: id, keys: []string{l.lockKey + id, l.waitKey + id}}, nil
}

// Close stops the renewals and the subscription, and calls the
// requestRelease of every lock still held, since nothing renews them any
// more: they expire within Lease unless their holders Unlock them, which
// still works while the client is open. Lock fails with ErrClosed from now
// on. Calling Close again returns nil.
func (l *Locker) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		var stranded []*holding
		for _, list := range l.held {
			stranded = append(stranded, list...)
		}
		clear(l.held)
		l.mu.Unlock()
		l.cancel() // wakes the waiters, which then return ErrClosed
		if closeErr := l.pubsub.Close(); closeErr != nil && !errors.Is(closeErr, redis.ErrClosed) {
			err = fmt.Errorf("redislock: close subscription: %w", closeErr)
		}
		l.wg.Wait()
		for _, h := range stranded {
			h.requestRelease()
		}
	})
	return err
}

// lock is one upload's handler.Lock. tusd and the proxy use a Lock from one
// request at a time; current also makes a concurrent Unlock safe.
type lock struct {
	locker  *Locker
	id      string
	keys    []string // lock key, wait-flag key
	current atomic.Pointer[holding]
}

// Lock implements handler.Lock. It returns handler.ErrLockTimeout when ctx
// ends before the lock is had, ErrClosed once the Locker is closed, and an
// error naming the upload when Redis fails. requestRelease may be called
// more than once, concurrently, from the Locker's goroutines, also after the
// requester gave up: it must be quick and idempotent (the proxy's interrupts
// a body read).
func (lk *lock) Lock(ctx context.Context, requestRelease func()) error {
	l := lk.locker
	if lk.current.Load() != nil {
		return fmt.Errorf("redislock: lock upload %s: this Lock is already held", lk.id)
	}
	if requestRelease == nil {
		requestRelease = func() {}
	}
	token := l.tokenBase + strconv.FormatUint(l.tokenSeq.Add(1), 36)
	var wake chan struct{}
	defer func() {
		if wake != nil {
			l.removeWaiter(lk.id, wake)
		}
	}()
	poll := minPoll
	for {
		if l.isClosed() {
			return ErrClosed
		}
		sent := time.Now()
		acquired, err := acquireScript.Run(ctx, l.client, lk.keys, token, l.leaseMS, l.channel, lk.id).Int64()
		if err != nil {
			if ctx.Err() != nil {
				// The script may have run and taken the lock for a token
				// nobody holds or renews: give it back (compare-and-delete,
				// so nobody else's lock is touched) rather than block the
				// upload for a lease.
				l.abandon(lk.keys, token, lk.id)
				return handler.ErrLockTimeout
			}
			return fmt.Errorf("redislock: lock upload %s: %w", lk.id, err)
		}
		if acquired == 1 {
			h := &holding{id: lk.id, key: lk.keys[0], token: token, requestRelease: requestRelease, validUntil: sent.Add(l.lease)}
			if !l.addHolding(h) {
				// Closed meanwhile: give the lock back rather than hold
				// one that nothing renews.
				lk.current.Store(h)
				_ = lk.Unlock()
				return ErrClosed
			}
			lk.current.Store(h)
			return nil
		}
		// Held. A holder in this process hears at once; others through
		// the release request the script published.
		l.askHolders(lk.id, token)
		if wake == nil {
			wake = l.addWaiter(lk.id)
		}
		timer := time.NewTimer(poll/2 + rand.N(poll/2+1))
		select {
		case <-ctx.Done():
			timer.Stop()
			return handler.ErrLockTimeout
		case <-l.ctx.Done():
			timer.Stop()
			return ErrClosed
		case <-wake:
			timer.Stop()
		case <-timer.C:
			poll = min(2*poll, l.maxPoll)
		}
	}
}

// Unlock implements handler.Lock. It deletes the lock only if it is still
// this holder's, and returns an error wrapping ErrLost if it was not (see
// ErrLost), or the Redis error if Redis could not be asked (the lock then
// expires within Lease). Unlock of a Lock not held returns nil.
func (lk *lock) Unlock() error {
	h := lk.current.Swap(nil)
	if h == nil {
		return nil
	}
	l := lk.locker
	l.removeHolding(h)
	// The lease bounds the call: past it the lock is gone anyway.
	ctx, cancel := context.WithTimeout(context.Background(), l.lease)
	defer cancel()
	released, err := unlockScript.Run(ctx, l.client, lk.keys, h.token, l.channel, lk.id).Int64()
	// Waiters in this process need not wait for the message.
	l.wakeWaiters(lk.id)
	if err != nil {
		return fmt.Errorf("redislock: unlock upload %s (it expires within %v): %w", lk.id, l.lease, err)
	}
	if released == 0 {
		return fmt.Errorf("redislock: unlock upload %s: %w", lk.id, ErrLost)
	}
	return nil
}

// abandon releases a lock an acquire may have taken for token after its
// caller gave up. It runs in the background and is bounded by the lease.
func (l *Locker) abandon(keys []string, token, id string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.lease)
		defer cancel()
		_ = unlockScript.Run(ctx, l.client, keys, token, l.channel, id).Err()
	}()
}

func (l *Locker) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// addHolding registers a held lock for renewal and release requests. It
// returns false, registering nothing, once the Locker is closed.
func (l *Locker) addHolding(h *holding) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.held[h.id] = append(l.held[h.id], h)
	return true
}

// removeHolding unregisters h; it returns false if h was not registered
// (lost, or the Locker closed).
func (l *Locker) removeHolding(h *holding) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeHoldingLocked(h)
}

func (l *Locker) removeHoldingLocked(h *holding) bool {
	list := l.held[h.id]
	for i, other := range list {
		if other == h {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(l.held, h.id)
			} else {
				l.held[h.id] = list
			}
			return true
		}
	}
	return false
}

// askHolders calls the requestRelease of this process's holders of the
// upload, except the requester's own holding.
func (l *Locker) askHolders(id, requester string) {
	l.mu.Lock()
	list := l.held[id]
	callbacks := make([]func(), 0, len(list))
	for _, h := range list {
		if h.token != requester {
			callbacks = append(callbacks, h.requestRelease)
		}
	}
	l.mu.Unlock()
	// Called without the mutex: a callback may Unlock.
	for _, requestRelease := range callbacks {
		requestRelease()
	}
}

func (l *Locker) addWaiter(id string) chan struct{} {
	wake := make(chan struct{}, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiters[id] = append(l.waiters[id], wake)
	return wake
}

func (l *Locker) removeWaiter(id string, wake chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.waiters[id]
	for i, other := range list {
		if other == wake {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(l.waiters, id)
	} else {
		l.waiters[id] = list
	}
}

// wakeWaiters makes this process's waiters for the upload try again now.
func (l *Locker) wakeWaiters(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, wake := range l.waiters[id] {
		wakeUp(wake)
	}
}

// wakeAllWaiters makes every waiter of this process try again now.
func (l *Locker) wakeAllWaiters() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, list := range l.waiters {
		for _, wake := range list {
			wakeUp(wake)
		}
	}
}

// wakeUp signals a waiter without blocking: one pending signal is enough.
func wakeUp(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// dispatch hands the channel's messages to this process's holders and
// waiters until the subscription is closed.
func (l *Locker) dispatch(messages <-chan any) {
	for message := range messages {
		switch message := message.(type) {
		case *redis.Subscription:
			// (Re)subscribed: whatever was published while the
			// subscription was down is lost, so waiters try now rather
			// than at their next poll.
			if message.Kind == "subscribe" {
				l.wakeAllWaiters()
			}
		case *redis.Message:
			payload := message.Payload
			if payload == "" {
				continue
			}
			switch payload[0] {
			case msgReleaseRequest:
				if requester, id, ok := strings.Cut(payload[1:], " "); ok {
					l.askHolders(id, requester)
				}
			case msgReleased:
				l.wakeWaiters(payload[1:])
			}
		}
	}
}

// renewLoop renews the leases of the held locks every Lease/3 until Close.
func (l *Locker) renewLoop() {
	ticker := time.NewTicker(l.lease / 3)
	defer ticker.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-ticker.C:
			l.renewAll()
		}
	}
}

// renewAll renews every held lock in one pipeline and gives up the ones
// that are lost.
func (l *Locker) renewAll() {
	l.mu.Lock()
	var holdings []*holding
	for _, list := range l.held {
		holdings = append(holdings, list...)
	}
	l.mu.Unlock()
	if len(holdings) == 0 {
		return
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(l.ctx, l.lease/3)
	defer cancel()
	renewed, err := l.renew(ctx, holdings)
	if err != nil && l.ctx.Err() == nil {
		l.log.Warn("renewing upload locks failed", slog.Int("locks", len(holdings)), slog.String("error", err.Error()))
	}

	var lost []*holding
	now := time.Now()
	l.mu.Lock()
	for i, h := range holdings {
		switch {
		case renewed[i] == renewedYes:
			h.validUntil = sent.Add(l.lease)
			continue
		case renewed[i] == renewedNo:
			// Gone or someone else's: lost for sure.
		case now.Add(l.lease / 3).Before(h.validUntil):
			continue // not confirmed, but the next round is still in time
		}
		if l.removeHoldingLocked(h) { // not unlocked meanwhile
			lost = append(lost, h)
		}
	}
	l.mu.Unlock()
	for _, h := range lost {
		l.log.Warn("upload lock lost: its lease ran out before it could be renewed; asking its request to stop",
			slog.String("upload_id", h.id))
		h.requestRelease()
	}
}

// Outcomes of one renewal.
const (
	renewedUnknown = iota // Redis did not answer
	renewedYes
	renewedNo
)

// renew runs the renewal script for every holding in one pipeline.
func (l *Locker) renew(ctx context.Context, holdings []*holding) ([]int, error) {
	run := func() ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(holdings))
		_, err := l.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, h := range holdings {
				cmds[i] = renewScript.EvalSha(ctx, pipe, []string{h.key}, h.token, l.leaseMS)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
		// The first renewal since Redis started (or flushed its scripts).
		if err = renewScript.Load(ctx, l.client).Err(); err == nil {
			cmds, err = run()
		}
	}
	renewed := make([]int, len(holdings))
	for i, cmd := range cmds {
		switch n, cmdErr := cmd.Int64(); {
		case cmdErr != nil:
			renewed[i] = renewedUnknown
		case n == 1:
			renewed[i] = renewedYes
		default:
			renewed[i] = renewedNo
		}
	}
	return renewed, err
}
