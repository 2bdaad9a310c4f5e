package webhook_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// fakeOutbox is an in-memory outbox that honours the contract of
// state.Outbox: an upload's events are claimed one at a time in the order
// they were stored, a claimed event is leased, and a retried one waits for
// its NextAt.
type fakeOutbox struct {
	mu       sync.Mutex
	events   []*fakeEvent // in the order stored
	claimErr error        // returned by ClaimEvents while set
	retries  []retryCall
	acked    []string
	claims   int
}

type fakeEvent struct {
	ev         state.Event
	leaseUntil time.Time
}

type retryCall struct {
	id         string
	next, when time.Time // the time asked for, and when it was asked
}

var _ webhook.Outbox = (*fakeOutbox)(nil)

func (f *fakeOutbox) add(evs ...state.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range evs {
		f.events = append(f.events, &fakeEvent{ev: ev})
	}
}

func (f *fakeOutbox) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]state.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	if f.claimErr != nil {
		return nil, f.claimErr
	}
	var out []state.Event
	headSeen := map[string]bool{}
	for _, e := range f.events {
		if headSeen[e.ev.UploadID] {
			continue // a later event of an upload waits for the earlier one
		}
		headSeen[e.ev.UploadID] = true
		if e.ev.NextAt.After(now) || e.leaseUntil.After(now) {
			continue
		}
		e.leaseUntil = now.Add(lease)
		ev := e.ev
		ev.Body = slices.Clone(ev.Body)
		out = append(out, ev)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

func (f *fakeOutbox) AckEvent(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked = append(f.acked, id)
	f.events = slices.DeleteFunc(f.events, func(e *fakeEvent) bool { return e.ev.ID == id })
	return nil
}

func (f *fakeOutbox) RetryEvent(ctx context.Context, id string, next time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retries = append(f.retries, retryCall{id: id, next: next, when: time.Now()})
	for _, e := range f.events {
		if e.ev.ID == id {
			e.ev.Attempts++
			e.ev.NextAt = next
			e.leaseUntil = time.Time{}
		}
	}
	return nil
}

func (f *fakeOutbox) OutboxStats(ctx context.Context) (int, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var oldest time.Time
	for _, e := range f.events {
		if oldest.IsZero() || e.ev.CreatedAt.Before(oldest) {
			oldest = e.ev.CreatedAt
		}
	}
	return len(f.events), oldest, nil
}

func (f *fakeOutbox) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

func (f *fakeOutbox) retryCalls() []retryCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.retries)
}

func (f *fakeOutbox) event(id string) (state.Event, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.ev.ID == id {
			return e.ev, true
		}
	}
	return state.Event{}, false
}

// fakeMetrics records what the dispatcher reports.
type fakeMetrics struct {
	mu       sync.Mutex
	attempts map[string]int // "type outcome"
	givenUp  map[string]int
	pending  int
	oldest   time.Time
	samples  int
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{attempts: map[string]int{}, givenUp: map[string]int{}}
}

func (m *fakeMetrics) Attempt(eventType, outcome string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts[eventType+" "+outcome]++
}

func (m *fakeMetrics) GivenUp(eventType string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.givenUp[eventType]++
}

func (m *fakeMetrics) Backlog(pending int, oldest time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending, m.oldest = pending, oldest
	m.samples++
}

func (m *fakeMetrics) count(eventType, outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attempts[eventType+" "+outcome]
}

func (m *fakeMetrics) outcomes(outcome string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, v := range m.attempts {
		if strings.HasSuffix(k, " "+outcome) {
			n += v
		}
	}
	return n
}

// Secrets of the tests: 32 random bytes each, as receivers are told to
// make them.
var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString(testkit.RandomBytes(32))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString(testkit.RandomBytes(32))
)

// fastConfig is a dispatcher configuration for tests: short waits all
// round, so retries happen in milliseconds.
func fastConfig(url string) webhook.Config {
	return webhook.Config{
		URL:           url,
		Secret:        secretA,
		Timeout:       2 * time.Second,
		MaxAge:        time.Hour,
		Workers:       4,
		PollInterval:  5 * time.Millisecond,
		StatsInterval: 10 * time.Millisecond,
		RetryBase:     5 * time.Millisecond,
		RetryCap:      40 * time.Millisecond,
	}
}

// harness runs one dispatcher over a fake outbox.
type harness struct {
	box     *fakeOutbox
	metrics *fakeMetrics
	logs    *testkit.SyncBuffer
	d       *webhook.Dispatcher
	cancel  context.CancelFunc
	stopped chan struct{}
}

func start(t *testing.T, cfg webhook.Config, client *http.Client, events ...state.Event) *harness {
	t.Helper()
	h := &harness{box: &fakeOutbox{}, metrics: newFakeMetrics(), logs: &testkit.SyncBuffer{}, stopped: make(chan struct{})}
	h.box.add(events...)
	d, err := webhook.New(cfg, webhook.Deps{
		Outbox:  h.box,
		Log:     slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: h.metrics,
		HTTP:    client,
	})
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.stopped)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		d.Shutdown(shutdown)
		<-h.stopped
	})
	return h
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// encode builds an event with a default encoder, failing the test on error.
func encode(t *testing.T, typ string, at time.Time, d webhook.Data) state.Event {
	t.Helper()
	enc, err := webhook.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := enc.Encode(typ, at, d)
	if err != nil {
		t.Fatalf("Encode(%s): %v", typ, err)
	}
	return ev
}
