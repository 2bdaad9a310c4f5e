// Package statetest is the contract suite every state.Store must pass. It is
// a non-test package so the tests of any backend, in any package, can run it:
//
//	func TestRedis(t *testing.T) {
//		statetest.Run(t, func(t *testing.T) state.Store { return openRedis(t) })
//	}
package statetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// Run runs the contract suite against the store. open must return a new,
// empty store each time it is called; Run closes every store it opens, so
// open should not register its own Close (it may clean up files or keys).
func Run(t *testing.T, open func(t *testing.T) state.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s state.Store)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"ZeroFieldsRoundTrip", testZeroFieldsRoundTrip},
		{"CreationFieldsKept", testCreationFieldsKept},
		{"CreateEmptyID", testCreateEmptyID},
		{"CreateExists", testCreateExists},
		{"CreateConcurrentSameID", testCreateConcurrentSameID},
		{"NotFound", testNotFound},
		{"UpdateStoresAndReturns", testUpdateStoresAndReturns},
		{"UpdateFnErrorAborts", testUpdateFnErrorAborts},
		{"UpdateCannotChangeID", testUpdateCannotChangeID},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"NoAliasing", testNoAliasing},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"SweepCutoffAndLimit", testSweepCutoffAndLimit},
		{"SweepFollowsUpdates", testSweepFollowsUpdates},
		{"SweepBadLimit", testSweepBadLimit},
		{"IntentRoundTrip", testIntentRoundTrip},
		{"CreateIntentExists", testCreateIntentExists},
		{"CreateRemovesIntent", testCreateRemovesIntent},
		{"SetIntentVideo", testSetIntentVideo},
		{"DeleteIntentIdempotent", testDeleteIntentIdempotent},
		{"SweepIntentsCutoffAndLimit", testSweepIntentsCutoffAndLimit},
		{"SweepIntentsConcurrent", testSweepIntentsConcurrent},
		{"IntentsAndRecordsApart", testIntentsAndRecordsApart},
		{"CancelledContext", testCancelledContext},
		{"Ping", testPing},
	}
	tests = append(tests, outboxTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.run(t, s)
		})
	}
	// Ping after Close needs a store that is closed during the test, so it
	// does not share the cleanup above.
	t.Run("PingAfterClose", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Ping(context.Background()); err == nil {
			t.Error("Ping after Close = nil, want an error")
		}
	})
}

// base is a fixed instant with nanoseconds and a non-UTC zone, so a store
// that truncates times or drops the offset fails the round trip.
var base = time.Date(2025, time.March, 4, 5, 6, 7, 123456789, time.FixedZone("MSK", 3*60*60))

// fullRecord returns a record with every field set to a distinct, non-zero
// value.
func fullRecord(id string) state.Record {
	return state.Record{
		ID:              id,
		VideoID:         "video-" + id,
		Endpoint:        "https://uploader.example/files/" + id + "?signature=secret",
		Length:          1 << 40,
		Offset:          12345,
		OffsetUncertain: true,
		Metadata:        "filename dGVzdC5tcDQ=,is_confidential",
		Owner:           "owner-" + id,
		ParentID:        "parent-" + id,
		ClientIP:        "2001:db8::7",
		URL:             "https://uploads.example/files/" + id,
		Context:         `{"order":"o-` + id + `","n":1.50,"tags":["a","<b>&"],"u":"Привет \u00e9","esc":"\"q\"\n"}`,
		CreatedAt:       base,
		UpdatedAt:       base.Add(90 * time.Second),
	}
}

// recordAt returns a minimal record last updated at the given time.
func recordAt(id string, updatedAt time.Time) state.Record {
	return state.Record{ID: id, VideoID: "v-" + id, Length: 100, CreatedAt: updatedAt, UpdatedAt: updatedAt}
}

// diff lists the fields in which got differs from want, or returns "" when
// they agree. Times are compared with Equal: a store may return them in
// another location or without the monotonic reading. The Endpoint value is
// never printed, as it stands for a secret.
func diff(want, got state.Record) string {
	var d []string
	field := func(name string, w, g any) {
		if w != g {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	field("ID", want.ID, got.ID)
	field("VideoID", want.VideoID, got.VideoID)
	if want.Endpoint != got.Endpoint {
		d = append(d, "Endpoint differs")
	}
	field("Length", want.Length, got.Length)
	field("Offset", want.Offset, got.Offset)
	field("OffsetUncertain", want.OffsetUncertain, got.OffsetUncertain)
	field("Metadata", want.Metadata, got.Metadata)
	field("Owner", want.Owner, got.Owner)
	field("ParentID", want.ParentID, got.ParentID)
	field("ClientIP", want.ClientIP, got.ClientIP)
	field("URL", want.URL, got.URL)
	field("Context", want.Context, got.Context)
	if !got.CreatedAt.Equal(want.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		d = append(d, fmt.Sprintf("UpdatedAt = %v, want %v", got.UpdatedAt, want.UpdatedAt))
	}
	return strings.Join(d, "; ")
}

func mustCreate(t *testing.T, s state.Store, rec state.Record) {
	t.Helper()
	if err := s.Create(context.Background(), rec); err != nil {
		t.Fatalf("Create(%s): %v", rec.ID, err)
	}
}

// wantStored fails the test unless Get returns a record equal to want.
func wantStored(t *testing.T, s state.Store, want state.Record) {
	t.Helper()
	got, err := s.Get(context.Background(), want.ID)
	if err != nil {
		t.Fatalf("Get(%s): %v", want.ID, err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Get(%s): %s", want.ID, d)
	}
}

// wantGone fails the test unless Get reports ErrNotFound.
func wantGone(t *testing.T, s state.Store, id string) {
	t.Helper()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get(%s) error = %v, want ErrNotFound", id, err)
	}
}

func testCreateGetRoundTrip(t *testing.T, s state.Store) {
	for _, rec := range []state.Record{fullRecord("a"), fullRecord("B-_0123456789")} {
		mustCreate(t, s, rec)
	}
	wantStored(t, s, fullRecord("a"))
	wantStored(t, s, fullRecord("B-_0123456789"))
}

func testZeroFieldsRoundTrip(t *testing.T, s state.Store) {
	// Only the id set: zero values, including zero times, must come back
	// as zero values rather than, say, the Unix epoch.
	rec := state.Record{ID: "bare"}
	mustCreate(t, s, rec)
	got, err := s.Get(context.Background(), "bare")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := diff(rec, got); d != "" {
		t.Errorf("Get: %s", d)
	}
	if !got.CreatedAt.IsZero() || !got.UpdatedAt.IsZero() {
		t.Errorf("times = %v, %v; want zero", got.CreatedAt, got.UpdatedAt)
	}
}

// testCreationFieldsKept checks the fields a creation sets once and nothing
// changes afterwards (ParentID, ClientIP, URL, Context): they survive an
// Update that touches only the offset, and come back from Sweep, which is
// all an expiry's event has to go by. Context is kept byte for byte, at the
// largest size tusproxy accepts.
func testCreationFieldsKept(t *testing.T, s state.Store) {
	ctx := context.Background()
	rec := recordAt("ctx", base)
	rec.ParentID, rec.ClientIP, rec.URL = "folder-9", "203.0.113.7", "http://127.0.0.1:8080/files/ctx"
	// A 4 KiB object whose bytes a careless store would change: escapes,
	// HTML characters, non-ASCII text and numbers as written.
	rec.Context = `{"id":"app-1","x":1e3,"html":"<a href=\"/\">&amp;</a>","ru":"Видео \u2028","pad":"`
	rec.Context += strings.Repeat("z", 4096-len(rec.Context)-2) + `"}`
	mustCreate(t, s, rec)
	wantStored(t, s, rec)
	got, err := s.Update(ctx, "ctx", func(r *state.Record) error { r.Offset = 50; r.UpdatedAt = base.Add(time.Second); return nil })
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := rec
	want.Offset, want.UpdatedAt = 50, base.Add(time.Second)
	if d := diff(want, got); d != "" {
		t.Errorf("Update returned %s", d)
	}
	wantStored(t, s, want)
	swept, err := s.Sweep(ctx, base.Add(time.Hour), 10)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(swept) != 1 {
		t.Fatalf("Sweep returned %d records, want 1", len(swept))
	}
	if d := diff(want, swept[0]); d != "" {
		t.Errorf("Sweep returned %s", d)
	}
}

func testCreateEmptyID(t *testing.T, s state.Store) {
	if err := s.Create(context.Background(), state.Record{VideoID: "v"}); err == nil {
		t.Error("Create with empty ID = nil, want an error")
	}
}

func testCreateExists(t *testing.T, s state.Store) {
	first := fullRecord("dup")
	mustCreate(t, s, first)
	second := fullRecord("dup")
	second.VideoID = "another video"
	second.Offset = 0
	if err := s.Create(context.Background(), second); !errors.Is(err, state.ErrExists) {
		t.Errorf("second Create error = %v, want ErrExists", err)
	}
	wantStored(t, s, first)
}

func testCreateConcurrentSameID(t *testing.T, s state.Store) {
	const writers = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range writers {
		wg.Go(func() {
			rec := recordAt("race", base)
			rec.VideoID = fmt.Sprint("video-", i)
			err := s.Create(context.Background(), rec)
			switch {
			case err == nil:
				mu.Lock()
				created++
				mu.Unlock()
			case !errors.Is(err, state.ErrExists):
				t.Errorf("Create: %v", err)
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d concurrent Creates of one id succeeded, want exactly 1", created)
	}
}

func testNotFound(t *testing.T, s state.Store) {
	mustCreate(t, s, fullRecord("present"))
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get error = %v, want ErrNotFound", err)
	}
	called := false
	_, err := s.Update(ctx, "missing", func(*state.Record) error { called = true; return nil })
	if !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Update error = %v, want ErrNotFound", err)
	}
	if called {
		t.Error("Update called fn for a missing record")
	}
	wantGone(t, s, "missing") // Update must not have created it
}

func testUpdateStoresAndReturns(t *testing.T, s state.Store) {
	mustCreate(t, s, fullRecord("u"))
	want := fullRecord("u")
	want.Offset = 999
	want.OffsetUncertain = false
	want.UpdatedAt = base.Add(time.Hour)
	got, err := s.Update(context.Background(), "u", func(rec *state.Record) error {
		if d := diff(fullRecord("u"), *rec); d != "" {
			t.Errorf("fn got the record with %s", d)
		}
		rec.Offset = 999
		rec.OffsetUncertain = false
		rec.UpdatedAt = base.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if d := diff(want, got); d != "" {
		t.Errorf("Update returned %s", d)
	}
	wantStored(t, s, want)
}

func testUpdateFnErrorAborts(t *testing.T, s state.Store) {
	mustCreate(t, s, fullRecord("abort"))
	errStop := &stopError{reason: "offset mismatch"}
	_, err := s.Update(context.Background(), "abort", func(rec *state.Record) error {
		rec.Offset = 1
		rec.VideoID = "changed"
		return errStop
	})
	// Unchanged means the very same value, not merely one that wraps it:
	// callers compare with == and read the fields of their own types.
	if err != error(errStop) {
		t.Errorf("Update error = %#v, want the error fn returned, unchanged", err)
	}
	wantStored(t, s, fullRecord("abort"))
}

// stopError is a caller's own error type, for checking that Update hands it
// back untouched.
type stopError struct{ reason string }

func (e *stopError) Error() string { return "stop: " + e.reason }

func testUpdateCannotChangeID(t *testing.T, s state.Store) {
	mustCreate(t, s, fullRecord("stay"))
	_, err := s.Update(context.Background(), "stay", func(rec *state.Record) error {
		rec.ID = "moved"
		return nil
	})
	if err == nil {
		t.Error("Update that changed the ID = nil, want an error")
	}
	wantStored(t, s, fullRecord("stay"))
	wantGone(t, s, "moved")
}

func testUpdateConcurrent(t *testing.T, s state.Store) {
	const writers = 50
	mustCreate(t, s, recordAt("counter", base))
	var wg sync.WaitGroup
	// All writers start together and yield inside fn, so an implementation
	// that reads outside its lock or transaction loses updates here rather
	// than getting away with it because the goroutines happened to run one
	// after another.
	start := make(chan struct{})
	for range writers {
		wg.Go(func() {
			<-start
			_, err := s.Update(context.Background(), "counter", func(rec *state.Record) error {
				runtime.Gosched()
				rec.Offset++
				return nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	got, err := s.Get(context.Background(), "counter")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Offset != writers {
		t.Errorf("Offset after %d concurrent increments = %d (lost updates)", writers, got.Offset)
	}
}

func testNoAliasing(t *testing.T, s state.Store) {
	ctx := context.Background()
	rec := fullRecord("alias")
	mustCreate(t, s, rec)
	rec.Offset = -1 // the caller's copy, after Create
	got, err := s.Get(ctx, "alias")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	got.Offset = -2 // the caller's copy, after Get
	var kept *state.Record
	if _, err := s.Update(ctx, "alias", func(r *state.Record) error { kept = r; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	kept.Offset = -3 // the pointer fn was given, after Update returned
	wantStored(t, s, fullRecord("alias"))
}

func testDeleteIdempotent(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreate(t, s, fullRecord("del"))
	mustCreate(t, s, fullRecord("keep"))
	for i := range 2 {
		if err := s.Delete(ctx, "del"); err != nil {
			t.Errorf("Delete #%d: %v", i+1, err)
		}
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Errorf("Delete of a missing id: %v", err)
	}
	wantGone(t, s, "del")
	wantStored(t, s, fullRecord("keep"))
	// The id is free again.
	mustCreate(t, s, fullRecord("del"))
	wantStored(t, s, fullRecord("del"))
}

// sweep calls Sweep and returns the ids it reported, in order, joined by
// spaces.
func sweep(t *testing.T, s state.Store, cutoff time.Time, limit int) string {
	t.Helper()
	recs, err := s.Sweep(context.Background(), cutoff, limit)
	if err != nil {
		t.Fatalf("Sweep(limit %d): %v", limit, err)
	}
	return idsOf(recs)
}

func testSweepCutoffAndLimit(t *testing.T, s state.Store) {
	// Created out of time order, so a store that returns insertion order
	// instead of oldest first fails.
	ages := []struct {
		id  string
		age time.Duration // before the cutoff; negative is after it
	}{
		{"two-hours", 2 * time.Hour},
		{"future", -time.Hour},
		{"three-hours", 3 * time.Hour},
		{"at-cutoff", 0},
		{"one-ns", time.Nanosecond},
	}
	for _, a := range ages {
		mustCreate(t, s, recordAt(a.id, base.Add(-a.age)))
	}
	// A zero UpdatedAt is the oldest of all.
	mustCreate(t, s, state.Record{ID: "zero-time"})

	recs, err := s.Sweep(context.Background(), base, 2)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got, want := idsOf(recs), "zero-time three-hours"; got != want {
		t.Errorf("first Sweep(limit 2) = [%s], want [%s]", got, want)
	}
	// The returned records are complete, not just ids.
	if len(recs) == 2 {
		if d := diff(recordAt("three-hours", base.Add(-3*time.Hour)), recs[1]); d != "" {
			t.Errorf("swept record: %s", d)
		}
	}
	wantGone(t, s, "zero-time")
	wantGone(t, s, "three-hours")

	if got, want := sweep(t, s, base, 10), "two-hours one-ns"; got != want {
		t.Errorf("second Sweep(limit 10) = [%s], want [%s]", got, want)
	}
	if got := sweep(t, s, base, 10); got != "" {
		t.Errorf("third Sweep = [%s], want nothing left before the cutoff", got)
	}
	// UpdatedAt equal to the cutoff is not before it.
	wantStored(t, s, recordAt("at-cutoff", base))
	wantStored(t, s, recordAt("future", base.Add(time.Hour)))
}

func idsOf(recs []state.Record) string {
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
	}
	return strings.Join(ids, " ")
}

func testSweepFollowsUpdates(t *testing.T, s state.Store) {
	ctx := context.Background()
	// "refreshed" starts old and is touched; "aged" starts new and is
	// moved back in time. Sweep must see both changes.
	mustCreate(t, s, recordAt("refreshed", base.Add(-time.Hour)))
	mustCreate(t, s, recordAt("aged", base.Add(time.Hour)))
	for id, updatedAt := range map[string]time.Time{"refreshed": base.Add(time.Minute), "aged": base.Add(-time.Minute)} {
		_, err := s.Update(ctx, id, func(rec *state.Record) error { rec.UpdatedAt = updatedAt; return nil })
		if err != nil {
			t.Fatalf("Update(%s): %v", id, err)
		}
	}
	if got := sweep(t, s, base, 10); got != "aged" {
		t.Errorf("Sweep = [%s], want [aged]", got)
	}
	wantGone(t, s, "aged")
	if _, err := s.Get(ctx, "refreshed"); err != nil {
		t.Errorf("Get(refreshed): %v", err)
	}
	// A deleted record is not swept (nor does its ghost break Sweep).
	mustCreate(t, s, recordAt("deleted", base.Add(-time.Hour)))
	if err := s.Delete(ctx, "deleted"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := sweep(t, s, base.Add(time.Hour), 10); got != "refreshed" {
		t.Errorf("Sweep after Delete = [%s], want [refreshed]", got)
	}
}

func testSweepBadLimit(t *testing.T, s state.Store) {
	mustCreate(t, s, recordAt("old", base.Add(-time.Hour)))
	for _, limit := range []int{0, -1} {
		if recs, err := s.Sweep(context.Background(), base, limit); err == nil {
			t.Errorf("Sweep(limit %d) = %d records, nil error; want an error", limit, len(recs))
		}
	}
	wantStored(t, s, recordAt("old", base.Add(-time.Hour)))
}

func testCancelledContext(t *testing.T, s state.Store) {
	mustCreate(t, s, recordAt("old", base.Add(-time.Hour)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if err := s.Create(ctx, recordAt("new", base)); !errors.Is(err, context.Canceled) {
		t.Errorf("Create error = %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, "old"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get error = %v, want context.Canceled", err)
	}
	called := false
	_, err := s.Update(ctx, "old", func(rec *state.Record) error { called = true; rec.Offset = 7; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update error = %v, want context.Canceled", err)
	}
	if called {
		t.Error("Update called fn with a cancelled context")
	}
	if err := s.Delete(ctx, "old"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete error = %v, want context.Canceled", err)
	}
	if _, err := s.Sweep(ctx, base, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep error = %v, want context.Canceled", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping error = %v, want context.Canceled", err)
	}
	if err := s.CreateIntent(ctx, intentAt("new", base)); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateIntent error = %v, want context.Canceled", err)
	}
	mustCreateIntent(t, s, intentAt("old", base.Add(-time.Hour)))
	if err := s.SetIntentVideo(ctx, "old", "v"); !errors.Is(err, context.Canceled) {
		t.Errorf("SetIntentVideo error = %v, want context.Canceled", err)
	}
	if err := s.DeleteIntent(ctx, "old"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteIntent error = %v, want context.Canceled", err)
	}
	if _, err := s.SweepIntents(ctx, base, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("SweepIntents error = %v, want context.Canceled", err)
	}
	// None of them did anything.
	wantGone(t, s, "new")
	wantStored(t, s, recordAt("old", base.Add(-time.Hour)))
	wantIntents(t, s, base.Add(time.Hour), intentAt("old", base.Add(-time.Hour)))
}

// intentAt returns an intent begun at the given time, its video unknown.
func intentAt(id string, createdAt time.Time) state.Intent {
	return state.Intent{ID: id, Length: 100, CreatedAt: createdAt}
}

func mustCreateIntent(t *testing.T, s state.Store, in state.Intent) {
	t.Helper()
	if err := s.CreateIntent(context.Background(), in); err != nil {
		t.Fatalf("CreateIntent(%s): %v", in.ID, err)
	}
}

// intentDiff is diff for intents.
func intentDiff(want, got state.Intent) string {
	var d []string
	if got.ID != want.ID || got.VideoID != want.VideoID || got.Length != want.Length {
		d = append(d, fmt.Sprintf("ID, VideoID, Length = %q, %q, %d, want %q, %q, %d",
			got.ID, got.VideoID, got.Length, want.ID, want.VideoID, want.Length))
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		d = append(d, fmt.Sprintf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt))
	}
	return strings.Join(d, "; ")
}

// wantIntents sweeps every intent before cutoff and fails the test unless
// they are exactly want, in order.
func wantIntents(t *testing.T, s state.Store, cutoff time.Time, want ...state.Intent) {
	t.Helper()
	got, err := s.SweepIntents(context.Background(), cutoff, 100)
	if err != nil {
		t.Fatalf("SweepIntents: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("SweepIntents = [%s], want [%s]", intentIDs(got), intentIDs(want))
	}
	for i := range want {
		if d := intentDiff(want[i], got[i]); d != "" {
			t.Errorf("swept intent %d: %s", i, d)
		}
	}
}

func intentIDs(ins []state.Intent) string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return strings.Join(ids, " ")
}

func testIntentRoundTrip(t *testing.T, s state.Store) {
	in := state.Intent{ID: "round", VideoID: "video-round", Length: 1 << 40, CreatedAt: base}
	mustCreateIntent(t, s, in)
	wantIntents(t, s, base.Add(time.Nanosecond), in)
	// Swept means gone: each intent is reported once.
	wantIntents(t, s, base.Add(time.Hour))
}

func testCreateIntentExists(t *testing.T, s state.Store) {
	mustCreateIntent(t, s, intentAt("taken", base))
	if err := s.CreateIntent(context.Background(), intentAt("taken", base.Add(time.Hour))); !errors.Is(err, state.ErrExists) {
		t.Errorf("second CreateIntent error = %v, want ErrExists", err)
	}
	if err := s.CreateIntent(context.Background(), intentAt("", base)); err == nil {
		t.Error("CreateIntent with an empty ID = nil, want an error")
	}
	wantIntents(t, s, base.Add(2*time.Hour), intentAt("taken", base))
}

func testCreateRemovesIntent(t *testing.T, s state.Store) {
	for _, id := range []string{"done", "clash", "other"} {
		mustCreateIntent(t, s, intentAt(id, base.Add(-time.Hour)))
	}
	mustCreate(t, s, recordAt("done", base))
	// A Create that fails because the id is taken leaves its intent.
	mustCreate(t, s, recordAt("clash-record", base))
	mustCreate(t, s, recordAt("clash", base))
	if err := s.Create(context.Background(), recordAt("clash", base)); !errors.Is(err, state.ErrExists) {
		t.Fatalf("Create of a taken id: %v", err)
	}
	// "clash" was removed by its first Create; "other" never got a record.
	wantIntents(t, s, base, intentAt("other", base.Add(-time.Hour)))
	wantStored(t, s, recordAt("done", base))
}

func testSetIntentVideo(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreateIntent(t, s, intentAt("cut", base))
	if err := s.SetIntentVideo(ctx, "cut", "video-cut"); err != nil {
		t.Fatalf("SetIntentVideo: %v", err)
	}
	// It never creates an intent: after Create there is none to update.
	mustCreateIntent(t, s, intentAt("recorded", base))
	mustCreate(t, s, recordAt("recorded", base))
	for _, id := range []string{"recorded", "never"} {
		if err := s.SetIntentVideo(ctx, id, "video-"+id); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("SetIntentVideo(%s) error = %v, want ErrNotFound", id, err)
		}
	}
	want := intentAt("cut", base)
	want.VideoID = "video-cut"
	wantIntents(t, s, base.Add(time.Hour), want)
}

func testDeleteIntentIdempotent(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreateIntent(t, s, intentAt("del", base))
	mustCreateIntent(t, s, intentAt("keep", base))
	for range 2 {
		if err := s.DeleteIntent(ctx, "del"); err != nil {
			t.Fatalf("DeleteIntent: %v", err)
		}
	}
	if err := s.DeleteIntent(ctx, "never"); err != nil {
		t.Errorf("DeleteIntent of a missing intent: %v", err)
	}
	wantIntents(t, s, base.Add(time.Hour), intentAt("keep", base))
}

func testSweepIntentsCutoffAndLimit(t *testing.T, s state.Store) {
	ctx := context.Background()
	// Created out of time order, as in testSweepCutoffAndLimit.
	for _, a := range []struct {
		id  string
		age time.Duration
	}{{"two-hours", 2 * time.Hour}, {"future", -time.Hour}, {"three-hours", 3 * time.Hour}, {"at-cutoff", 0}, {"one-ns", time.Nanosecond}} {
		mustCreateIntent(t, s, intentAt(a.id, base.Add(-a.age)))
	}
	for _, limit := range []int{0, -1} {
		if got, err := s.SweepIntents(ctx, base, limit); err == nil {
			t.Errorf("SweepIntents(limit %d) = %d intents, nil error; want an error", limit, len(got))
		}
	}
	got, err := s.SweepIntents(ctx, base, 2)
	if err != nil {
		t.Fatalf("SweepIntents: %v", err)
	}
	if ids := intentIDs(got); ids != "three-hours two-hours" {
		t.Errorf("first SweepIntents(limit 2) = [%s], want [three-hours two-hours]", ids)
	}
	wantIntents(t, s, base, intentAt("one-ns", base.Add(-time.Nanosecond)))
	// CreatedAt equal to the cutoff is not before it.
	wantIntents(t, s, base.Add(2*time.Hour), intentAt("at-cutoff", base), intentAt("future", base.Add(time.Hour)))
}

func testSweepIntentsConcurrent(t *testing.T, s state.Store) {
	const n = 40
	for i := range n {
		mustCreateIntent(t, s, intentAt(fmt.Sprintf("in-%02d", i), base.Add(time.Duration(i)*time.Second)))
	}
	// Sweepers racing, as replicas do: every intent is reported exactly once.
	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.SweepIntents(context.Background(), base.Add(time.Hour), 3)
				if err != nil {
					t.Errorf("SweepIntents: %v", err)
					return
				}
				mu.Lock()
				for _, in := range got {
					seen[in.ID]++
				}
				mu.Unlock()
				if len(got) < 3 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d intents reported, want %d", len(seen), n)
	}
	for id, times := range seen {
		if times != 1 {
			t.Errorf("intent %s reported %d times", id, times)
		}
	}
}

func testIntentsAndRecordsApart(t *testing.T, s state.Store) {
	ctx := context.Background()
	mustCreate(t, s, recordAt("both", base.Add(-time.Hour)))
	mustCreateIntent(t, s, intentAt("both", base.Add(-time.Hour)))
	mustCreateIntent(t, s, intentAt("intent-only", base.Add(-time.Hour)))
	// Sweeping records leaves intents, and the other way round.
	if got := sweep(t, s, base, 10); got != "both" {
		t.Errorf("Sweep = [%s], want [both]", got)
	}
	mustCreate(t, s, recordAt("record-only", base.Add(-time.Hour)))
	if err := s.Delete(ctx, "intent-only"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantIntents(t, s, base, intentAt("both", base.Add(-time.Hour)), intentAt("intent-only", base.Add(-time.Hour)))
	wantStored(t, s, recordAt("record-only", base.Add(-time.Hour)))
}

func testPing(t *testing.T, s state.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
