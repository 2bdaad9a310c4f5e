package kinescopetest

import (
	"context"
	"sync"
	"time"
)

// uploadTurns lets one tus request per upload into tusd at a time.
//
// tusd v2.9.1 has a data race between a PATCH handler that still holds an
// upload's lock and the lock-release request of the next request for the same
// upload (pkg/handler/context.go reads the body reader that writeChunk is
// setting); under the race detector that fails the tests of every program
// that uses the emulator. A client of one upload sends one request at a time
// anyway, so waiting for the previous request to end changes nothing a client
// can see, except that a request arriving while a stale PATCH is still being
// read waits for that PATCH to notice its connection is gone. After maxTurnWait
// the request goes in regardless and tusd's own locking takes over.
type uploadTurns struct {
	mu    sync.Mutex
	turns map[string]chan struct{}
}

const maxTurnWait = 10 * time.Second

// wait blocks until it is id's turn and returns the func that ends it.
func (u *uploadTurns) wait(ctx context.Context, id string) (done func()) {
	u.mu.Lock()
	if u.turns == nil {
		u.turns = make(map[string]chan struct{})
	}
	turn, ok := u.turns[id]
	if !ok {
		turn = make(chan struct{}, 1)
		u.turns[id] = turn
	}
	u.mu.Unlock()
	timer := time.NewTimer(maxTurnWait)
	defer timer.Stop()
	select {
	case turn <- struct{}{}:
		return func() { <-turn }
	case <-timer.C:
	case <-ctx.Done():
	}
	return func() {}
}
