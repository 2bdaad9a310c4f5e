package proxy

import (
	"context"
	"crypto/rand"
	"net/netip"
	"sync"
	"time"
)

// stallAfter is how long a PATCH in flight may move no byte before it
// counts as stalled.
const stallAfter = 30 * time.Second

// streams are the request bodies streaming to the upstream now (PATCHes and
// creations with data): the one count that the per-address and process caps,
// the shutdown (Abort) and the in-flight and stalled gauges all read. The
// per-address cap is shared by the replicas when there is a Limiter; the
// process cap is always this replica's own.
type streams struct {
	perAddr int // at most this many per client address (limitKey); 0: no cap
	total   int // at most this many in all; 0: no cap
	shared  *sharedLimits
	lease   time.Duration // of a stream in the Limiter, renewed every third of it

	mu       sync.Mutex
	aborting bool
	active   map[*bodyReader]*stream
	byAddr   map[netip.Addr]int // this replica's own count, also the fallback's
}

// stream is one body in flight.
type stream struct {
	addr     netip.Addr
	sharedID string    // its id in the Limiter; "" when not counted there
	lastRead int64     // bytes read at the last stall sample
	lastMove time.Time // when that count last changed
}

func newStreams(perAddr, total int, shared *sharedLimits) *streams {
	return &streams{perAddr: perAddr, total: total, shared: shared, lease: streamLease,
		active: make(map[*bodyReader]*stream), byAddr: make(map[netip.Addr]int)}
}

// start counts body as streaming for a client (its limitKey), or says why it
// may not: the process is at its cap (503), a shutdown aborted streaming
// (503), or the address is at its cap (429): across the replicas when there
// is a Limiter, else (or when it does not answer) on this replica. done must
// be called when the body is finished with.
func (s *streams) start(ctx context.Context, addr netip.Addr, body *bodyReader, now time.Time) (done func(), err error) {
	s.mu.Lock()
	switch {
	case s.total > 0 && len(s.active) >= s.total:
		s.mu.Unlock()
		return nil, errBusy
	case s.aborting:
		s.mu.Unlock()
		return nil, errShuttingDown
	}
	addrFull := s.perAddr > 0 && s.byAddr[addr] >= s.perAddr
	shared := s.capShared()
	if addrFull && !shared {
		s.mu.Unlock()
		return nil, errTooManyPatches
	}
	// Counted here before the Limiter is asked (without the lock held), so
	// the process cap holds meanwhile.
	st := &stream{addr: addr, lastMove: now}
	s.active[body] = st
	s.byAddr[addr]++
	s.mu.Unlock()
	if shared {
		id := rand.Text()
		admitted, decided := s.shared.startStream(ctx, addr, id, s.perAddr, now, s.lease)
		// Refused by the shared count or, when it did not answer, by this
		// replica's own.
		if (decided && !admitted) || (!decided && addrFull) {
			s.end(ctx, body, st)
			return nil, errTooManyPatches
		}
		if decided {
			s.mu.Lock()
			st.sharedID = id
			s.mu.Unlock()
		}
	}
	return func() { s.end(ctx, body, st) }, nil
}

// end stops counting a body, here and in the Limiter.
func (s *streams) end(ctx context.Context, body *bodyReader, st *stream) {
	s.mu.Lock()
	delete(s.active, body)
	if s.byAddr[st.addr]--; s.byAddr[st.addr] <= 0 {
		delete(s.byAddr, st.addr)
	}
	sharedID := st.sharedID
	s.mu.Unlock()
	if sharedID != "" {
		s.shared.endStream(ctx, st.addr, sharedID)
	}
}

// renewShared renews the leases of the streams counted in the Limiter every
// third of a lease until ctx ends, so they keep counting while they stream.
func (s *streams) renewShared(ctx context.Context, now func() time.Time) {
	if !s.capShared() {
		return
	}
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if ids := s.sharedIDs(); len(ids) > 0 {
			s.shared.renewStreams(ctx, ids, now(), s.lease)
		}
	}
}

// sharedIDs are the ids of the streams counted in the Limiter, by address.
func (s *streams) sharedIDs() map[netip.Addr][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[netip.Addr][]string)
	for _, st := range s.active {
		if st.sharedID != "" {
			ids[st.addr] = append(ids[st.addr], st.sharedID)
		}
	}
	return ids
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

// capShared reports whether the per-address cap is counted with the other
// replicas (a Limiter), not by this replica alone.
func (s *streams) capShared() bool { return s.perAddr > 0 && s.shared.limiter != nil }
