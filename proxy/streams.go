package proxy

import (
	"net/netip"
	"sync"
	"time"
)

// stallAfter is how long a PATCH in flight may move no byte before it
// counts as stalled.
const stallAfter = 30 * time.Second

// streams are the request bodies streaming to the upstream now (PATCHes and
// creations with data): the one count that the per-address and process caps,
// the shutdown (Abort) and the in-flight and stalled gauges all read.
type streams struct {
	perAddr int // at most this many per client address (limitKey); 0: no cap
	total   int // at most this many in all; 0: no cap

	mu       sync.Mutex
	aborting bool
	active   map[*bodyReader]*stream
	byAddr   map[netip.Addr]int
}

// stream is one body in flight.
type stream struct {
	addr     netip.Addr
	lastRead int64     // bytes read at the last stall sample
	lastMove time.Time // when that count last changed
}

func newStreams(perAddr, total int) *streams {
	return &streams{perAddr: perAddr, total: total, active: make(map[*bodyReader]*stream), byAddr: make(map[netip.Addr]int)}
}

// start counts body as streaming for a client (its limitKey), or says why it may not: the
// process is at its cap (503), the address is (429), or a shutdown aborted
// streaming (503). done must be called when the body is finished with.
func (s *streams) start(addr netip.Addr, body *bodyReader, now time.Time) (done func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.total > 0 && len(s.active) >= s.total:
		return nil, errBusy
	case s.perAddr > 0 && s.byAddr[addr] >= s.perAddr:
		return nil, errTooManyPatches
	case s.aborting:
		return nil, errShuttingDown
	}
	s.active[body] = &stream{addr: addr, lastMove: now}
	s.byAddr[addr]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.active, body)
		if s.byAddr[addr]--; s.byAddr[addr] <= 0 {
			delete(s.byAddr, addr)
		}
	}, nil
}

// abort interrupts every body in flight, and refuses new ones from now on.
func (s *streams) abort() {
	s.mu.Lock()
	s.aborting = true
	bodies := make([]*bodyReader, 0, len(s.active))
	for b := range s.active {
		bodies = append(bodies, b)
	}
	s.mu.Unlock()
	for _, b := range bodies {
		b.interrupt(errShuttingDown)
	}
}

// count is the number of bodies in flight.
func (s *streams) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// stalled counts the bodies that moved no byte for stallAfter, as of now.
func (s *streams) stalled(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for b, st := range s.active {
		if read := b.Received(); read != st.lastRead {
			st.lastRead, st.lastMove = read, now
		} else if now.Sub(st.lastMove) >= stallAfter {
			n++
		}
	}
	return n
}
