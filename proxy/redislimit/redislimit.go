// Package redislimit keeps tusproxy's per-client-address limits in Redis, so
// that every replica of a deployment counts against the same numbers instead
// of each counting alone (three replicas would otherwise let an address
// create three times TUSPROXY_CREATE_RATE). It implements proxy.Limiter:
//
//   - the creation rate: a token bucket per address, holding up to the
//     rate's number of creations and refilled evenly over a minute, the
//     semantics a single replica has always had;
//   - the PATCHes in flight per address: a set of stream ids per address,
//     each counted only while its lease lasts, so a replica that dies
//     mid-PATCH holds its slots for at most one lease instead of forever (a
//     plain counter would never get its decrement).
//
// # In Redis
//
// Under the prefix P (the state store's, TUSPROXY_REDIS_PREFIX), address A's
// creation bucket is the hash "P rate:create:A" {t: tokens left, l: Unix ms of
// the last refill}; it expires once it would be full again, since an absent
// bucket is a full one. A's streams in flight are the sorted set
// "P streams:A", each member a stream id scored with the Unix ms its lease
// ends. Taking a token and admitting a stream are one script each (read,
// decide and write atomically), renewing every lease of a replica is one
// script, and ending a stream is a ZREM: one round trip per call.
//
// Times are the callers' clocks, as the state store's are. Replicas in NTP
// sync agree within milliseconds; a bucket never refills backwards (a caller
// behind the last refill adds nothing), so a skew of d lets through at most
// d's worth of refill, and a lease ends at most d early or late.
//
// It needs a single Redis (standalone, or a Sentinel-managed primary), like
// the state store: the renewal script touches the keys of many addresses.
package redislimit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty: the state
// store's default, whose keys these never collide with.
const DefaultPrefix = state.DefaultRedisPrefix

// refillPeriod is how long an empty bucket takes to fill up: the rate is
// creations per minute.
const refillPeriod = time.Minute

// takeScript takes one token from a bucket, refilling it first for the time
// since its last refill.
//
// KEYS: the bucket. ARGV: capacity, now (Unix ms), refill period (ms).
// Returns 0 when a token was taken, else the ms until one is back.
var takeScript = redis.NewScript(`
local capacity, now, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens, last = tonumber(state[1]), tonumber(state[2])
if not tokens or not last then
  tokens, last = capacity, now
end
if now > last then
  tokens = math.min(capacity, tokens + (now - last) * capacity / period)
  last = now
end
if tokens < 1 then
  return math.max(1, math.ceil((1 - tokens) * period / capacity))
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', tostring(last))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * period / capacity))
return 0
`)

// startScript drops the address's streams whose lease ended, then admits
// the stream unless max remain. A stream already a member (a call retried by
// go-redis after a lost reply) is admitted again. The key lives as long as
// the longest lease in it, so an address whose streams are all gone leaves
// nothing behind.
//
// KEYS: the address's streams. ARGV: now (Unix ms), lease end (Unix ms),
// max, stream id, lease (ms). Returns 1 when admitted, 0 when not.
var startScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
`)

// renewScript moves the lease end of streams still members (XX: a stream
// that ended, or whose lease ran out meanwhile, is not brought back).
//
// KEYS: the streams of each address. ARGV: lease end (Unix ms), lease (ms),
// then for each key in turn the number of its stream ids and the ids.
var renewScript = redis.NewScript(`
local at = 3
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  for i = at + 1, at + n do
    redis.call('ZADD', key, 'XX', ARGV[1], ARGV[i])
  end
  at = at + n + 1
  if redis.call('PTTL', key) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return 0
`)

// Options configures New.
type Options struct {
	// Prefix starts every key, so several deployments can share one Redis;
	// replicas of one deployment must use the same. Default: DefaultPrefix.
	Prefix string
}

// Limiter counts per-address limits in Redis. It is safe for concurrent
// use; every call is bounded by its context only.
type Limiter struct {
	client     redis.UniversalClient
	bucketKey  string // prefix of the creation buckets' keys
	streamsKey string // prefix of the stream sets' keys
}

// New returns a Limiter on client, which it does not close (the state store
// owns it: pass store.Client()).
func New(client redis.UniversalClient, opts Options) (*Limiter, error) {
	if client == nil {
		return nil, errors.New("redislimit: a Redis client is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Limiter{client: client, bucketKey: opts.Prefix + "rate:create:", streamsKey: opts.Prefix + "streams:"}, nil
}

// TakeCreation takes a creation token from addr's bucket of perMinute tokens,
// refilled evenly over a minute. When the bucket is empty it takes nothing,
// and wait is how long until a token is back (at least a millisecond).
func (l *Limiter) TakeCreation(ctx context.Context, addr netip.Addr, perMinute int, now time.Time) (wait time.Duration, err error) {
	if perMinute <= 0 {
		return 0, fmt.Errorf("redislimit: creation rate %d is not positive", perMinute)
	}
	ms, err := takeScript.Run(ctx, l.client, []string{l.bucketKey + addr.String()},
		perMinute, now.UnixMilli(), refillPeriod.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("redislimit: creation rate: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// StartStream counts the stream id as one of addr's until now+lease, unless
// addr already has max streams whose lease has not ended.
func (l *Limiter) StartStream(ctx context.Context, addr netip.Addr, id string, max int, now time.Time, lease time.Duration) (bool, error) {
	if lease < time.Millisecond {
		return false, fmt.Errorf("redislimit: stream lease %v is below a millisecond", lease)
	}
	admitted, err := startScript.Run(ctx, l.client, []string{l.streamsKey + addr.String()},
		now.UnixMilli(), now.Add(lease).UnixMilli(), max, id, lease.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("redislimit: start stream: %w", err)
	}
	return admitted == 1, nil
}

// RenewStreams moves the lease of every stream named (by address) to end at
// now+lease. Streams that ended, or whose lease ran out already, stay gone.
func (l *Limiter) RenewStreams(ctx context.Context, streams map[netip.Addr][]string, now time.Time, lease time.Duration) error {
	if len(streams) == 0 {
		return nil
	}
	if lease < time.Millisecond {
		return fmt.Errorf("redislimit: stream lease %v is below a millisecond", lease)
	}
	keys := make([]string, 0, len(streams))
	args := []any{now.Add(lease).UnixMilli(), lease.Milliseconds()}
	for addr, ids := range streams {
		keys = append(keys, l.streamsKey+addr.String())
		args = append(args, len(ids))
		for _, id := range ids {
			args = append(args, id)
		}
	}
	if err := renewScript.Run(ctx, l.client, keys, args...).Err(); err != nil {
		return fmt.Errorf("redislimit: renew streams: %w", err)
	}
	return nil
}

// EndStream stops counting the stream as addr's.
func (l *Limiter) EndStream(ctx context.Context, addr netip.Addr, id string) error {
	if err := l.client.ZRem(ctx, l.streamsKey+addr.String(), id).Err(); err != nil {
		return fmt.Errorf("redislimit: end stream: %w", err)
	}
	return nil
}
