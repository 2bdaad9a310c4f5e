package proxy

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// creationRate caps how many uploads one client address may start a minute
// (off when 0). The caps on bodies streaming at once are in streams.
type creationRate struct {
	createPerMinute int

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket // creation tokens per limitKey
}

// bucket is a token bucket holding up to createPerMinute creations, refilled
// evenly over a minute.
type bucket struct {
	tokens float64
	last   time.Time
}

// limitsMaxAddrs bounds the per-address state; idle full buckets are
// dropped when it is reached.
const limitsMaxAddrs = 100_000

func newCreationRate(createPerMinute int) *creationRate {
	return &creationRate{createPerMinute: createPerMinute, buckets: make(map[netip.Addr]*bucket)}
}

// allowCreate takes a creation token for a client (its limitKey), or says
// how long to wait.
func (l *creationRate) allowCreate(addr netip.Addr, now time.Time) error {
	if l.createPerMinute <= 0 {
		return nil
	}
	capacity := float64(l.createPerMinute)
	perSecond := capacity / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= limitsMaxAddrs {
			l.dropFullBuckets(now, capacity, perSecond)
		}
		b = &bucket{tokens: capacity, last: now}
		l.buckets[addr] = b
	}
	b.tokens = math.Min(capacity, b.tokens+now.Sub(b.last).Seconds()*perSecond)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	e := *errCreateRate
	e.RetryAfter = time.Duration((1 - b.tokens) / perSecond * float64(time.Second))
	return &e
}

func (l *creationRate) dropFullBuckets(now time.Time, capacity, perSecond float64) {
	for addr, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*perSecond >= capacity {
			delete(l.buckets, addr)
		}
	}
}
