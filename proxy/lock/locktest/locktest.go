// Package locktest is the contract suite for an upload locker, a tusd
// handler.Locker, as tusproxy relies on it: one holder per upload, a waiter
// that asks the holder to let go and takes over once it has, and
// handler.ErrLockTimeout when the waiter's context ends first. It is a
// non-test package so any locker's tests can run it, tusd's memorylocker
// included, which the proxy uses with a single replica:
//
//	func TestMemoryLocker(t *testing.T) {
//		locktest.Run(t, func(t *testing.T) locktest.Deployment {
//			l := memorylocker.New()
//			return func() handler.Locker { return l }
//		})
//	}
package locktest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
)

// Deployment returns the lockers of one deployment. Every locker it returns
// shares one lock space with all the others it returned: they stand for the
// replicas of one tusproxy deployment, so a suite run with a Deployment that
// hands out lockers of several processes (or clients) checks that locks hold
// across replicas. Calls may return the same locker.
type Deployment func() handler.Locker

// patience bounds every wait that is expected to succeed. It is far above
// what a correct locker needs, even under -race on a loaded machine, so it
// only ever decides a test when something is wrong.
const patience = 30 * time.Second

// Run runs the contract suite. open is called once per test and must return
// a Deployment whose lock space no other test shares (a fresh memory locker,
// or a fresh key prefix). Lockers that need closing are closed by open's own
// cleanups.
func Run(t *testing.T, open func(t *testing.T) Deployment) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, d Deployment)
	}{
		{"LockUnlock", testLockUnlock},
		{"WaiterTimesOut", testWaiterTimesOut},
		{"HolderReleasesOnRequest", testHolderReleasesOnRequest},
		{"MutualExclusion", testMutualExclusion},
		{"RelockAfterUnlock", testRelockAfterUnlock},
		{"IndependentIDs", testIndependentIDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, open(t))
		})
	}
}

func newLock(t *testing.T, locker handler.Locker, id string) handler.Lock {
	t.Helper()
	lock, err := locker.NewLock(id)
	if err != nil {
		t.Fatalf("NewLock(%s): %v", id, err)
	}
	return lock
}

// mustLock takes the lock or fails the test.
func mustLock(t *testing.T, lock handler.Lock, requestRelease func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := lock.Lock(ctx, requestRelease); err != nil {
		t.Fatalf("Lock: %v", err)
	}
}

func mustUnlock(t *testing.T, lock handler.Lock) {
	t.Helper()
	if err := lock.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

// releaseSignal returns a requestRelease callback and a channel that
// receives a value each time it is called (calls beyond the buffer are
// counted but not queued).
func releaseSignal() (func(), <-chan struct{}, *atomic.Int64) {
	ch := make(chan struct{}, 1)
	var calls atomic.Int64
	return func() {
		calls.Add(1)
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch, &calls
}

func noRelease() {}

func testLockUnlock(t *testing.T, d Deployment) {
	lock := newLock(t, d(), "upload")
	mustLock(t, lock, noRelease)
	mustUnlock(t, lock)
}

func testWaiterTimesOut(t *testing.T, d Deployment) {
	holder := newLock(t, d(), "upload")
	release, asked, _ := releaseSignal()
	mustLock(t, holder, release) // and never lets go when asked

	waiter := newLock(t, d(), "upload")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := waiter.Lock(ctx, noRelease)
	if !errors.Is(err, handler.ErrLockTimeout) {
		if err == nil {
			waiter.Unlock()
		}
		t.Fatalf("Lock of a held lock = %v, want ErrLockTimeout once the context is done", err)
	}
	// The waiter asked the holder to let go (the holder may hear of it
	// through a message that arrives after the waiter gave up).
	select {
	case <-asked:
	case <-time.After(patience):
		t.Error("the holder's requestRelease was never called")
	}
	// The failed attempt took nothing: once the holder lets go, the lock
	// is free for anyone.
	mustUnlock(t, holder)
	next := newLock(t, d(), "upload")
	mustLock(t, next, noRelease)
	mustUnlock(t, next)
}

func testHolderReleasesOnRequest(t *testing.T, d Deployment) {
	holder := newLock(t, d(), "upload")
	release, asked, _ := releaseSignal()
	mustLock(t, holder, release)
	var holderDone, wasAsked atomic.Bool
	unlocked := make(chan error, 1)
	go func() {
		// The holder stops when asked, as a PATCH stops reading its body.
		select {
		case <-asked:
			wasAsked.Store(true)
		case <-time.After(patience):
		}
		holderDone.Store(true)
		unlocked <- holder.Unlock()
	}()

	waiter := newLock(t, d(), "upload")
	mustLock(t, waiter, noRelease)
	if !holderDone.Load() {
		t.Error("the waiter got the lock while the holder still held it")
	}
	if err := <-unlocked; err != nil {
		t.Errorf("holder Unlock: %v", err)
	}
	if !wasAsked.Load() {
		t.Error("the holder's requestRelease was never called; the waiter got the lock only when the holder gave up")
	}
	mustUnlock(t, waiter)
}

func testMutualExclusion(t *testing.T, d Deployment) {
	const (
		workers    = 8
		iterations = 15
	)
	var (
		inside  atomic.Int32
		counter int // guarded by the lock under test only
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for w := range workers {
		locker := d() // workers spread over the deployment's replicas
		wg.Go(func() {
			<-start
			for i := range iterations {
				lock, err := locker.NewLock("shared")
				if err != nil {
					t.Errorf("NewLock: %v", err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				err = lock.Lock(ctx, noRelease)
				cancel()
				if err != nil {
					t.Errorf("worker %d, iteration %d: Lock: %v", w, i, err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders of one lock at once", n)
				}
				value := counter
				runtime.Gosched() // invite a second holder to interleave
				counter = value + 1
				inside.Add(-1)
				if err := lock.Unlock(); err != nil {
					t.Errorf("Unlock: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if counter != workers*iterations {
		t.Errorf("counter = %d after %d locked increments", counter, workers*iterations)
	}
}

func testRelockAfterUnlock(t *testing.T, d Deployment) {
	locker := d()
	lock := newLock(t, locker, "upload")
	for range 3 {
		// The same Lock value, locked again after each Unlock, and a
		// fresh one from another replica in between.
		mustLock(t, lock, noRelease)
		mustUnlock(t, lock)
		other := newLock(t, d(), "upload")
		mustLock(t, other, noRelease)
		mustUnlock(t, other)
	}
}

func testIndependentIDs(t *testing.T, d Deployment) {
	releaseA, askedA, callsA := releaseSignal()
	a := newLock(t, d(), "upload-a")
	mustLock(t, a, releaseA)
	for i := range 3 {
		id := fmt.Sprint("upload-b", i)
		b := newLock(t, d(), id)
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := b.Lock(ctx, noRelease)
		cancel()
		if err != nil {
			t.Fatalf("Lock(%s) while upload-a is held: %v", id, err)
		}
		mustUnlock(t, b)
	}
	select {
	case <-askedA:
		t.Errorf("upload-a was asked to release %d times by locks of other uploads", callsA.Load())
	default:
	}
	mustUnlock(t, a)
}
