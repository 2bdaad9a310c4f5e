package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// outboxTests are the contract cases of the outbox and of the writes that
// carry events.
var outboxTests = []struct {
	name string
	run  func(t *testing.T, s state.Store)
}{
	{"OutboxCreateCarriesEvent", testOutboxCreateCarriesEvent},
	{"OutboxFailedWriteStoresNothing", testOutboxFailedWriteStoresNothing},
	{"OutboxUpdateEventFromUpdatedRecord", testOutboxUpdateEventFromUpdatedRecord},
	{"OutboxDeleteCarriesEvent", testOutboxDeleteCarriesEvent},
	{"OutboxSweepCarriesEvents", testOutboxSweepCarriesEvents},
	{"OutboxOrderPerUpload", testOutboxOrderPerUpload},
	{"OutboxLease", testOutboxLease},
	{"OutboxRetry", testOutboxRetry},
	{"OutboxAckIdempotent", testOutboxAckIdempotent},
	{"OutboxClaimLimitAndOrder", testOutboxClaimLimitAndOrder},
	{"OutboxStats", testOutboxStats},
	{"OutboxConcurrentClaimers", testOutboxConcurrentClaimers},
	{"OutboxCancelledContext", testOutboxCancelledContext},
}

// event returns an event of the upload, made at the given time, with a
// body that names it.
func event(id, upload, typ string, at time.Time) state.Event {
	return state.Event{ID: id, UploadID: upload, Type: typ, Body: []byte(`{"type":"` + typ + `","id":"` + id + `"}`), CreatedAt: at}
}

// claim claims with a lease of an hour and returns the ids, joined by
// spaces.
func claim(t *testing.T, s state.Store, now time.Time, limit int) string {
	t.Helper()
	got, err := s.ClaimEvents(context.Background(), now, time.Hour, limit)
	if err != nil {
		t.Fatalf("ClaimEvents: %v", err)
	}
	return eventIDs(got)
}

func eventIDs(events []state.Event) string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return strings.Join(ids, " ")
}

func ack(t *testing.T, s state.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.AckEvent(context.Background(), id); err != nil {
			t.Fatalf("AckEvent(%s): %v", id, err)
		}
	}
}

// drain claims and acks until nothing is deliverable at now, and returns
// every id claimed, in order, joined by spaces.
func drain(t *testing.T, s state.Store, now time.Time) string {
	t.Helper()
	var all []string
	for range 100 {
		got, err := s.ClaimEvents(context.Background(), now, time.Hour, 100)
		if err != nil {
			t.Fatalf("ClaimEvents: %v", err)
		}
		if len(got) == 0 {
			return strings.Join(all, " ")
		}
		for _, ev := range got {
			all = append(all, ev.ID)
			ack(t, s, ev.ID)
		}
	}
	t.Fatal("the outbox never drained")
	return ""
}

func wantStats(t *testing.T, s state.Store, pending int, oldest time.Time) {
	t.Helper()
	n, got, err := s.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	if n != pending || !got.Equal(oldest) {
		t.Errorf("OutboxStats = %d, %v; want %d, %v", n, got, pending, oldest)
	}
}

// eventDiff lists the fields in which got differs from want.
func eventDiff(want, got state.Event) string {
	var d []string
	if got.ID != want.ID || got.UploadID != want.UploadID || got.Type != want.Type || got.Attempts != want.Attempts {
		d = append(d, fmt.Sprintf("ID, UploadID, Type, Attempts = %q, %q, %q, %d; want %q, %q, %q, %d",
			got.ID, got.UploadID, got.Type, got.Attempts, want.ID, want.UploadID, want.Type, want.Attempts))
	}
	if !bytes.Equal(got.Body, want.Body) {
		d = append(d, fmt.Sprintf("Body = %q, want %q", got.Body, want.Body))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.NextAt.Equal(want.NextAt) {
		d = append(d, fmt.Sprintf("CreatedAt, NextAt = %v, %v; want %v, %v", got.CreatedAt, got.NextAt, want.CreatedAt, want.NextAt))
	}
	return strings.Join(d, "; ")
}

func testOutboxCreateCarriesEvent(t *testing.T, s state.Store) {
	ctx := context.Background()
	wantStats(t, s, 0, time.Time{})
	// Every byte of the body comes back as written: it is signed as is.
	ev := event("msg_created", "up", "upload.created", base)
	ev.Body = append(ev.Body, 0, 0xff, '\n', '"')
	if err := s.Create(ctx, recordAt("up", base), state.WithEvents(ev)); err != nil {
		t.Fatalf("Create: %v", err)
	}
	ev.Body[0] = 'X' // the caller's slice, after the write
	wantStored(t, s, recordAt("up", base))
	got, err := s.ClaimEvents(ctx, base, time.Minute, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("ClaimEvents = %v, %v; want the event", eventIDs(got), err)
	}
	want := event("msg_created", "up", "upload.created", base)
	want.Body = append(want.Body, 0, 0xff, '\n', '"')
	if d := eventDiff(want, got[0]); d != "" {
		t.Errorf("claimed event: %s", d)
	}
	wantStats(t, s, 1, base)
	// An event without an upload id gets the record's.
	noUpload := event("msg_other", "", "upload.created", base)
	if err := s.Create(ctx, recordAt("other", base), state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		if before.ID != "" || after.ID != "other" {
			t.Errorf("Create's events func got before %q, after %q; want the zero record and the new one", before.ID, after.ID)
		}
		return []state.Event{noUpload}, nil
	})); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err = s.ClaimEvents(ctx, base, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].UploadID != "other" {
		t.Errorf("ClaimEvents = %+v, %v; want msg_other of upload other", got, err)
	}
}

func testOutboxFailedWriteStoresNothing(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreate(t, s, recordAt("taken", base))
	if err := s.Create(ctx, recordAt("taken", base), state.WithEvents(event("e1", "taken", "upload.created", base))); !errors.Is(err, state.ErrExists) {
		t.Errorf("Create of a taken id = %v, want ErrExists", err)
	}
	// fn refuses: neither the change nor the event.
	errStop := &stopError{reason: "no"}
	_, err := s.Update(ctx, "taken", func(rec *state.Record) error { rec.Offset = 100; return errStop },
		state.WithEvents(event("e2", "taken", "upload.completed", base)))
	if err != error(errStop) {
		t.Errorf("Update error = %v, want fn's", err)
	}
	// The events func refuses: neither, and its error comes back as it is.
	errEvents := &stopError{reason: "events"}
	_, err = s.Update(ctx, "taken", func(rec *state.Record) error { rec.Offset = 100; return nil },
		state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) { return nil, errEvents }))
	if err != error(errEvents) {
		t.Errorf("Update error = %v, want the events func's", err)
	}
	// A bad event (no id) fails the write: the record is not stored either.
	if err := s.Create(ctx, recordAt("bad", base), state.WithEvents(state.Event{UploadID: "bad"})); err == nil {
		t.Error("Create with an event without id = nil, want an error")
	}
	wantGone(t, s, "bad")
	// An event of another upload is refused.
	if err := s.Create(ctx, recordAt("mine", base), state.WithEvents(event("e3", "yours", "upload.created", base))); err == nil {
		t.Error("Create with another upload's event = nil, want an error")
	}
	wantGone(t, s, "mine")
	// Nothing to delete, so nothing happened: no event.
	if err := s.Delete(ctx, "missing", state.WithEvents(event("e4", "missing", "upload.terminated", base))); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	if _, err := s.Update(ctx, "missing", func(*state.Record) error { return nil },
		state.WithEvents(event("e5", "missing", "upload.completed", base))); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Update of a missing record = %v, want ErrNotFound", err)
	}
	// An event id already pending fails the write, which stores nothing.
	if err := s.Create(ctx, recordAt("first", base), state.WithEvents(event("dup", "first", "upload.created", base))); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Create(ctx, recordAt("second", base), state.WithEvents(event("dup", "second", "upload.created", base))); !errors.Is(err, state.ErrEventExists) {
		t.Errorf("Create with a pending event id = %v, want ErrEventExists", err)
	}
	wantGone(t, s, "second")
	wantStored(t, s, recordAt("taken", base))
	if got := drain(t, s, base); got != "dup" {
		t.Errorf("events = [%s], want only [dup]", got)
	}
}

// completedEvents is what the lifecycle passes to the Update that records
// an offset: upload.completed only when this update made the record
// complete.
func completedEvents(id string) state.WriteOption {
	return state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		if before.Offset < before.Length && after.Offset == after.Length {
			return []state.Event{event(id, after.ID, "upload.completed", after.UpdatedAt)}, nil
		}
		return nil, nil
	})
}

func testOutboxUpdateEventFromUpdatedRecord(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreate(t, s, recordAt("up", base)) // Length 100
	for i, offset := range []int64{40, 100, 100} {
		_, err := s.Update(ctx, "up", func(rec *state.Record) error {
			rec.Offset, rec.UpdatedAt = offset, base.Add(time.Duration(i+1)*time.Second)
			return nil
		}, completedEvents(fmt.Sprint("completed-", i)))
		if err != nil {
			t.Fatalf("Update to %d: %v", offset, err)
		}
	}
	got, err := s.ClaimEvents(ctx, base, time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if eventIDs(got) != "completed-1" {
		t.Fatalf("events = [%s], want [completed-1]: only the update that reached the length", eventIDs(got))
	}
	if !got[0].CreatedAt.Equal(base.Add(2 * time.Second)) {
		t.Errorf("event computed from %v, want from the updated record's time %v", got[0].CreatedAt, base.Add(2*time.Second))
	}
}

func testOutboxDeleteCarriesEvent(t *testing.T, s state.Store) {
	ctx := context.Background()
	stored := fullRecord("del")
	mustCreate(t, s, stored)
	seen := 0
	terminated := state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		seen++
		if d := diff(stored, before); d != "" || after.ID != "" {
			t.Errorf("Delete's events func: before differs (%s) or after %q is not the zero record", d, after.ID)
		}
		return []state.Event{event(fmt.Sprint("terminated-", seen), "del", "upload.terminated", base)}, nil
	})
	if err := s.Delete(ctx, "del", terminated); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantGone(t, s, "del")
	// Deleted again: one terminal event is all an upload gets.
	if err := s.Delete(ctx, "del", terminated); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if got := drain(t, s, base); got != "terminated-1" {
		t.Errorf("events = [%s], want [terminated-1]", got)
	}
}

func testOutboxSweepCarriesEvents(t *testing.T, s state.Store) {
	ctx := context.Background()
	for i, id := range []string{"old-1", "old-2", "old-3", "fresh"} {
		age := time.Duration(3-i) * time.Hour
		if id == "fresh" {
			age = -time.Hour
		}
		mustCreate(t, s, recordAt(id, base.Add(-age)))
	}
	expired := state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		if after.ID != "" {
			t.Errorf("Sweep's events func got after %q, want the zero record", after.ID)
		}
		return []state.Event{event("expired-"+before.ID, before.ID, "upload.expired", before.UpdatedAt)}, nil
	})
	if _, err := s.Sweep(ctx, base, 10, state.WithEvents(event("x", "old-1", "upload.expired", base))); err == nil {
		t.Error("Sweep with WithEvents = nil, want an error")
	}
	swept, err := s.Sweep(ctx, base, 2, expired)
	if err != nil || idsOf(swept) != "old-1 old-2" {
		t.Fatalf("Sweep = [%s], %v; want [old-1 old-2]", idsOf(swept), err)
	}
	swept, err = s.Sweep(ctx, base, 10, expired)
	if err != nil || idsOf(swept) != "old-3" {
		t.Fatalf("second Sweep = [%s], %v; want [old-3]", idsOf(swept), err)
	}
	// An events func that fails stops the sweep before anything changes.
	mustCreate(t, s, recordAt("kept", base.Add(-time.Hour)))
	errEvents := &stopError{reason: "events"}
	if _, err := s.Sweep(ctx, base, 10, state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		return nil, errEvents
	})); err != error(errEvents) {
		t.Errorf("Sweep with a failing events func = %v, want its error", err)
	}
	wantStored(t, s, recordAt("kept", base.Add(-time.Hour)))
	wantStored(t, s, recordAt("fresh", base.Add(time.Hour)))
	if got := drain(t, s, base); got != "expired-old-1 expired-old-2 expired-old-3" {
		t.Errorf("events = [%s], want one expired event per swept record, oldest first", got)
	}
}

func testOutboxOrderPerUpload(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreate(t, s, recordAt("up", base))
	// Stored in this order; the second's CreatedAt is even earlier, so a
	// store that orders by time instead of by write fails.
	for _, ev := range []state.Event{event("first", "up", "upload.created", base), event("second", "up", "upload.completed", base.Add(-time.Minute))} {
		if _, err := s.Update(ctx, "up", func(rec *state.Record) error { rec.Offset++; return nil }, state.WithEvents(ev)); err != nil {
			t.Fatalf("Update: %v", err)
		}
	}
	if err := s.Delete(ctx, "up", state.WithEvents(event("third", "up", "upload.terminated", base))); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	now := base.Add(time.Hour)
	if got := claim(t, s, now, 10); got != "first" {
		t.Fatalf("claim = [%s], want [first]: only the upload's oldest event", got)
	}
	// Leased, and the next one waits for its ack, not for its lease.
	if got := claim(t, s, now, 10); got != "" {
		t.Fatalf("claim while the head is leased = [%s], want nothing", got)
	}
	if got := claim(t, s, now.Add(2*time.Hour), 10); got != "first" {
		t.Fatalf("claim after the lease = [%s], want [first] again", got)
	}
	ack(t, s, "first")
	if got := claim(t, s, now, 10); got != "second" {
		t.Fatalf("claim after the ack = [%s], want [second]", got)
	}
	// Acking one that is not the head (a given-up event) leaves the order.
	ack(t, s, "third")
	if got := claim(t, s, now.Add(4*time.Hour), 10); got != "second" {
		t.Fatalf("claim = [%s], want [second]", got)
	}
	ack(t, s, "second")
	wantStats(t, s, 0, time.Time{})
}

func testOutboxLease(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreateWith(t, s, recordAt("up", base), state.WithEvents(event("e", "up", "upload.created", base)))
	got, err := s.ClaimEvents(ctx, base, time.Minute, 10)
	if err != nil || eventIDs(got) != "e" {
		t.Fatalf("ClaimEvents = [%s], %v", eventIDs(got), err)
	}
	if got := claim(t, s, base.Add(time.Minute-time.Millisecond), 10); got != "" {
		t.Errorf("claim before the lease ends = [%s], want nothing", got)
	}
	if got := claim(t, s, base.Add(time.Minute), 10); got != "e" {
		t.Errorf("claim when the lease ends = [%s], want [e]", got)
	}
}

func testOutboxRetry(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreateWith(t, s, recordAt("up", base), state.WithEvents(event("e", "up", "upload.created", base)))
	if got := claim(t, s, base, 10); got != "e" {
		t.Fatalf("claim = [%s]", got)
	}
	next := base.Add(10 * time.Minute)
	if err := s.RetryEvent(ctx, "e", next); err != nil {
		t.Fatalf("RetryEvent: %v", err)
	}
	if got := claim(t, s, next.Add(-time.Millisecond), 10); got != "" {
		t.Errorf("claim before NextAt = [%s], want nothing", got)
	}
	got, err := s.ClaimEvents(ctx, next, time.Minute, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("ClaimEvents at NextAt = [%s], %v; want [e]", eventIDs(got), err)
	}
	want := event("e", "up", "upload.created", base)
	want.Attempts, want.NextAt = 1, next
	if d := eventDiff(want, got[0]); d != "" {
		t.Errorf("retried event: %s", d)
	}
	// Retry releases the lease: due at once, it is claimable at once.
	if err := s.RetryEvent(ctx, "e", next); err != nil {
		t.Fatalf("RetryEvent: %v", err)
	}
	got, err = s.ClaimEvents(ctx, next, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("ClaimEvents after a retry due now = %+v, %v; want e with 2 attempts", got, err)
	}
	// Retrying an event that is gone does nothing.
	ack(t, s, "e")
	if err := s.RetryEvent(ctx, "e", next); err != nil {
		t.Errorf("RetryEvent of an acked event: %v", err)
	}
	wantStats(t, s, 0, time.Time{})
}

func testOutboxAckIdempotent(t *testing.T, s state.Store) {
	mustCreateWith(t, s, recordAt("up", base), state.WithEvents(event("e", "up", "upload.created", base)))
	mustCreateWith(t, s, recordAt("other", base), state.WithEvents(event("f", "other", "upload.created", base)))
	ack(t, s, "e", "e", "never-existed")
	if got := drain(t, s, base); got != "f" {
		t.Errorf("events = [%s], want [f]", got)
	}
}

func testOutboxClaimLimitAndOrder(t *testing.T, s state.Store) {
	ctx := context.Background()
	// One event per upload, stored out of time order.
	for _, a := range []struct {
		id  string
		age time.Duration
	}{{"b", 2 * time.Hour}, {"d", 0}, {"a", 3 * time.Hour}, {"c", time.Hour}} {
		mustCreateWith(t, s, recordAt(a.id, base), state.WithEvents(event("e-"+a.id, a.id, "upload.created", base.Add(-a.age))))
	}
	for _, limit := range []int{0, -1} {
		if got, err := s.ClaimEvents(ctx, base, time.Minute, limit); err == nil {
			t.Errorf("ClaimEvents(limit %d) = %d events, nil error; want an error", limit, len(got))
		}
	}
	if got := claim(t, s, base, 2); got != "e-a e-b" {
		t.Errorf("claim(limit 2) = [%s], want the oldest two, [e-a e-b]", got)
	}
	// A scheduled retry that is due comes after first attempts: "a" is
	// retried, due now, and still "c" and "d" go first.
	if err := s.RetryEvent(ctx, "e-a", base.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, base, 2); got != "e-c e-d" {
		t.Errorf("claim(limit 2) = [%s], want [e-c e-d]", got)
	}
	if got := claim(t, s, base, 10); got != "e-a" {
		t.Errorf("claim = [%s], want [e-a]", got)
	}
}

func testOutboxStats(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreateWith(t, s, recordAt("up", base), state.WithEvents(event("e1", "up", "upload.created", base.Add(time.Hour))))
	if _, err := s.Update(ctx, "up", func(*state.Record) error { return nil },
		state.WithEvents(event("e2", "up", "upload.completed", base.Add(2*time.Hour)))); err != nil {
		t.Fatal(err)
	}
	mustCreateWith(t, s, recordAt("other", base), state.WithEvents(event("e3", "other", "upload.created", base)))
	wantStats(t, s, 3, base)
	ack(t, s, "e3")
	wantStats(t, s, 2, base.Add(time.Hour))
	// A claim or a retry changes nothing pending.
	claim(t, s, base, 10)
	if err := s.RetryEvent(ctx, "e1", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantStats(t, s, 2, base.Add(time.Hour))
}

func testOutboxConcurrentClaimers(t *testing.T, s state.Store) {
	ctx := context.Background()
	const uploads = 30
	// Each upload gets two events; the second is claimable only after the
	// first is acked.
	want := 0
	for i := range uploads {
		id := fmt.Sprintf("up-%02d", i)
		mustCreateWith(t, s, recordAt(id, base), state.WithEvents(event(id+"-1", id, "upload.created", base.Add(time.Duration(i)*time.Second))))
		if _, err := s.Update(ctx, id, func(*state.Record) error { return nil },
			state.WithEvents(event(id+"-2", id, "upload.completed", base.Add(time.Duration(i)*time.Second)))); err != nil {
			t.Fatal(err)
		}
		want += 2
	}
	var (
		mu    sync.Mutex
		seen  = make(map[string]int)
		acked = make(map[string]bool) // AckEvent was called
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(30 * time.Second)
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				// A long lease: a second claim of one event can only be a
				// claim that ignored the first.
				got, err := s.ClaimEvents(ctx, base.Add(time.Hour), time.Hour, 3)
				if err != nil {
					t.Errorf("ClaimEvents: %v", err)
					return
				}
				mu.Lock()
				for _, ev := range got {
					seen[ev.ID]++
					if strings.HasSuffix(ev.ID, "-2") && !acked[strings.TrimSuffix(ev.ID, "-2")+"-1"] {
						t.Errorf("%s claimed before its upload's first event was acked", ev.ID)
					}
				}
				done := len(seen) == want
				mu.Unlock()
				for _, ev := range got {
					// Marked before the call: the next event may be claimed
					// by another claimer as soon as the ack is stored.
					mu.Lock()
					acked[ev.ID] = true
					mu.Unlock()
					if err := s.AckEvent(ctx, ev.ID); err != nil {
						t.Errorf("AckEvent: %v", err)
					}
				}
				if done {
					return
				}
				if len(got) == 0 {
					time.Sleep(time.Millisecond) // the others hold what is left
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != want {
		t.Errorf("%d events claimed, want %d", len(seen), want)
	}
	var twice []string
	for id, n := range seen {
		if n != 1 {
			twice = append(twice, id)
		}
	}
	slices.Sort(twice)
	if len(twice) > 0 {
		t.Errorf("claimed more than once under a lease: %v", twice)
	}
	wantStats(t, s, 0, time.Time{})
}

func testOutboxCancelledContext(t *testing.T, s state.Store) {
	mustCreateWith(t, s, recordAt("up", base), state.WithEvents(event("e", "up", "upload.created", base)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.ClaimEvents(ctx, base, time.Minute, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ClaimEvents error = %v, want context.Canceled", err)
	}
	if err := s.AckEvent(ctx, "e"); !errors.Is(err, context.Canceled) {
		t.Errorf("AckEvent error = %v, want context.Canceled", err)
	}
	if err := s.RetryEvent(ctx, "e", base); !errors.Is(err, context.Canceled) {
		t.Errorf("RetryEvent error = %v, want context.Canceled", err)
	}
	if _, _, err := s.OutboxStats(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("OutboxStats error = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "up", state.WithEvents(event("t", "up", "upload.terminated", base))); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete error = %v, want context.Canceled", err)
	}
	if got := drain(t, s, base); got != "e" {
		t.Errorf("events = [%s], want [e], unacked and alone", got)
	}
}

func mustCreateWith(t *testing.T, s state.Store, rec state.Record, opts ...state.WriteOption) {
	t.Helper()
	if err := s.Create(context.Background(), rec, opts...); err != nil {
		t.Fatalf("Create(%s): %v", rec.ID, err)
	}
}
