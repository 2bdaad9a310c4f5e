package upload

import (
	"context"
	"sync"
	"time"
)

type arrivalKey struct{}

// WithArrival tells the lifecycle when the request ctx belongs to reached
// this process (for the first request on a connection, when the connection
// was accepted). A write that arrived before an offset of its upload was
// last answered here is refused (ErrSuperseded). Without it, a request
// arrives when Open is called.
func WithArrival(ctx context.Context, arrived time.Time) context.Context {
	return context.WithValue(ctx, arrivalKey{}, arrived)
}

func arrival(ctx context.Context) time.Time {
	if t, ok := ctx.Value(arrivalKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// settles remembers, per upload, when this process last answered its
// offset (a HEAD), on the monotonic clock. A PATCH accepted before that
// answer but scheduled after it (its bytes were already buffered when its
// client dropped and sent the HEAD) must not move the offset answered.
// The record's UpdatedAt does the same across replicas (see Write); this
// covers what a read of the record cannot see: a request that arrived
// before the answer but read the record after it.
type settles struct {
	mu sync.Mutex
	at map[string]time.Time
}

// settleMemory is how long an answer is remembered: far longer than a
// request waits between its arrival and its handler.
const settleMemory = time.Minute

func (s *settles) mark(id string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = make(map[string]time.Time)
	}
	if len(s.at) >= 1024 {
		for k, t := range s.at {
			if now.Sub(t) > settleMemory {
				delete(s.at, k)
			}
		}
	}
	s.at[id] = now
}

// after reports whether an offset of id was answered after arrived.
func (s *settles) after(id string, arrived time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return ok && t.After(arrived)
}

// supersededPoll is how often a write waiting for its upload's lock checks
// whether it was superseded meanwhile.
const supersededPoll = 10 * time.Millisecond

// whileCurrent returns ctx, canceled with ErrSuperseded as soon as an offset
// of id is answered here after arrived, or its record is written (by any
// replica) after it read UpdatedAt seen. stop ends the watch.
func (l *Lifecycle) whileCurrent(ctx context.Context, id string, arrived, seen time.Time) (context.Context, func()) {
	watched, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(supersededPoll)
		defer t.Stop()
		for {
			select {
			case <-watched.Done():
				return
			case <-t.C:
			}
			if l.settles.after(id, arrived) {
				cancel(ErrSuperseded)
				return
			}
			if rec, err := l.store.Get(watched, id); err == nil && !rec.UpdatedAt.Equal(seen) {
				cancel(ErrSuperseded)
				return
			}
		}
	}()
	return watched, func() { cancel(nil) }
}
