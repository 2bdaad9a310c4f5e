package proxy

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limits caps what one client address and the whole process may do at once.
// Every cap is off when its setting is 0.
type limits struct {
	createPerMinute int
	patchesPerIP    int
	inFlight        int

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket // creation tokens per limitKey
	patches map[netip.Addr]int     // PATCHes in flight per limitKey
	total   int                    // PATCHes in flight in all
}

// limitKey is the address a client is counted under by every per-address
// limit. An IPv6 client is counted by its /64: that is the smallest prefix
// one subscriber gets (RFC 6177), and a host can take any address in it at
// will, so counting /128s lets one machine rotate its way past every limit.
// An IPv4 client (IPv4-mapped IPv6 included) is counted by its address.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
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

func newLimits(createPerMinute, patchesPerIP, inFlight int) *limits {
	return &limits{
		createPerMinute: createPerMinute,
		patchesPerIP:    patchesPerIP,
		inFlight:        inFlight,
		buckets:         make(map[netip.Addr]*bucket),
		patches:         make(map[netip.Addr]int),
	}
}

// allowCreate takes a creation token for addr, or says how long to wait.
func (l *limits) allowCreate(addr netip.Addr, now time.Time) error {
	if l.createPerMinute <= 0 {
		return nil
	}
	addr = limitKey(addr)
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

func (l *limits) dropFullBuckets(now time.Time, capacity, perSecond float64) {
	for addr, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*perSecond >= capacity {
			delete(l.buckets, addr)
		}
	}
}

// startPatch counts a PATCH in flight for addr; release must be called when
// it ends.
func (l *limits) startPatch(addr netip.Addr) (release func(), err error) {
	addr = limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight > 0 && l.total >= l.inFlight {
		return nil, errBusy
	}
	if l.patchesPerIP > 0 && l.patches[addr] >= l.patchesPerIP {
		return nil, errTooManyPatches
	}
	l.total++
	l.patches[addr]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.patches[addr]--; l.patches[addr] <= 0 {
			delete(l.patches, addr)
		}
	}, nil
}
