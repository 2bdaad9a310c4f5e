package upload_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// fakeEncoder builds events that say which kind and which record state
// they were built from; it leaves out the kinds in skip, as a webhook
// configuration without them would.
type fakeEncoder struct {
	mu    sync.Mutex
	n     int
	skip  map[upload.EventKind]bool
	fail  bool
	calls []upload.EventKind
}

// fakeBody is what fakeEncoder puts in an event's body.
type fakeBody struct {
	Kind    string
	Upload  string
	VideoID string
	Offset  int64
	Length  int64
}

func (f *fakeEncoder) Encode(kind upload.EventKind, rec state.Record, at time.Time) (state.Event, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, kind)
	if f.fail {
		return state.Event{}, false, errors.New("encoder broke")
	}
	if f.skip[kind] {
		return state.Event{}, false, nil
	}
	f.n++
	body, err := json.Marshal(fakeBody{Kind: kind.String(), Upload: rec.ID, VideoID: rec.VideoID, Offset: rec.Offset, Length: rec.Length})
	if err != nil {
		return state.Event{}, false, err
	}
	return state.Event{ID: fmt.Sprintf("msg_%032x", f.n), UploadID: rec.ID, Type: kind.Type(), Body: body, CreatedAt: at}, true, nil
}

// durableEnv is a lifecycle over a real store with the fake encoder.
type durableEnv struct {
	l     *upload.Lifecycle
	store state.Store
	enc   *fakeEncoder
	fake  *fakeKinescope
	now   *time.Time
}

func newDurableEnv(t *testing.T, store state.Store, cfg upload.Config) *durableEnv {
	t.Helper()
	e := &durableEnv{store: store, enc: &fakeEncoder{}, fake: &fakeKinescope{offsets: make(map[string]int64)}}
	now := time.Unix(1_800_000_000, 0)
	e.now = &now
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = time.Second
	}
	e.l = upload.New(cfg, upload.Deps{Store: store, Locker: memorylocker.New(), Init: e.fake, Upstream: e.fake,
		Endpoints: anyEndpoint{}, Events: e.enc, Observer: &recorder{t: t, store: store}, Now: func() time.Time { return *e.now }})
	return e
}

// stores runs the test over the memory store and a bbolt file.
func stores(t *testing.T, run func(t *testing.T, store state.Store)) {
	t.Run("memory", func(t *testing.T) { run(t, state.NewMemory()) })
	t.Run("bolt", func(t *testing.T) {
		b, err := state.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		run(t, b)
	})
}

// outbox drains the store's outbox as a dispatcher would (claim, deliver,
// ack, in order per upload) and returns "type@upload:offset" for each.
func outbox(t *testing.T, store state.Store, names map[string]string) []string {
	t.Helper()
	var got []string
	for range 100 {
		evs, err := store.ClaimEvents(context.Background(), time.Unix(1_900_000_000, 0), time.Minute, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return got
		}
		for _, ev := range evs {
			var body fakeBody
			if err := json.Unmarshal(ev.Body, &body); err != nil {
				t.Fatalf("event body %q: %v", ev.Body, err)
			}
			if ev.Type != "upload."+map[string]string{"created": "created", "completed": "completed", "terminated": "terminated",
				"expired": "expired", "lost": "failed"}[body.Kind] || body.Upload != ev.UploadID {
				t.Errorf("event %s of type %s built for %s of %s", ev.ID, ev.Type, body.Kind, body.Upload)
			}
			got = append(got, fmt.Sprintf("%s@%s:%d", ev.Type, names[ev.UploadID], body.Offset))
			if err := store.AckEvent(context.Background(), ev.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("the outbox never drained")
	return nil
}

// TestDurableEventsOnePerFact: each lifecycle fact stores exactly one event
// of its type, built from the record as that write stored it, in order per
// upload.
func TestDurableEventsOnePerFact(t *testing.T) {
	stores(t, func(t *testing.T, store state.Store) {
		e := newDurableEnv(t, store, upload.Config{UploadTTL: time.Hour})
		done := create(t, e.l, 10)
		for _, w := range []struct{ at, n int64 }{{0, 4}, {4, 6}, {10, 0}} {
			if _, err := write(t, e.l, done.ID, w.at, make([]byte, w.n)); err != nil {
				t.Fatalf("write at %d: %v", w.at, err)
			}
		}
		h, err := e.l.Open(context.Background(), done.ID, nil, func() {})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Terminate(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.Close()
		// Terminated twice (a second replica's DELETE after the record is
		// gone) stores nothing more: that write deletes nothing.
		if err := store.Delete(context.Background(), done.ID); err != nil {
			t.Fatal(err)
		}

		lost := create(t, e.l, 10)
		e.fake.Delete(context.Background(), lost.Endpoint)
		h, err = e.l.Open(context.Background(), lost.ID, nil, func() {})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Offset(context.Background()); !errors.Is(err, upload.ErrNotFound) {
			t.Fatalf("HEAD of a lost upload: %v", err)
		}
		h.Close()

		idle := create(t, e.l, 10)
		if _, err := write(t, e.l, idle.ID, 0, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		*e.now = e.now.Add(2 * time.Hour)
		e.l.Expire(context.Background())
		e.l.Expire(context.Background())

		names := map[string]string{done.ID: "done", lost.ID: "lost", idle.ID: "idle"}
		got := outbox(t, store, names)
		// Per upload, in order; across uploads, oldest first.
		want := []string{"upload.created@done:0", "upload.created@lost:0", "upload.created@idle:0",
			"upload.completed@done:10", "upload.failed@lost:0", "upload.expired@idle:3", "upload.terminated@done:10"}
		if !sameEvents(got, want) {
			t.Fatalf("outbox:\n %v\nwant (per upload in this order):\n %v", got, want)
		}
	})
}

// sameEvents compares the events of each upload, in order: across uploads
// the dispatcher's order is free.
func sameEvents(got, want []string) bool {
	per := func(events []string) map[string][]string {
		m := make(map[string][]string)
		for _, ev := range events {
			upload := ev[strings.Index(ev, "@")+1 : strings.LastIndex(ev, ":")]
			m[upload] = append(m[upload], ev)
		}
		return m
	}
	g, w := per(got), per(want)
	if len(g) != len(w) {
		return false
	}
	for k, v := range w {
		if !slices.Equal(g[k], v) {
			return false
		}
	}
	return true
}

// failingStore fails the writes a test chooses, as a store that is down at
// that moment: the write's event must not be stored either.
type failingStore struct {
	state.Store
	failCreate, failDelete, failUpdate bool
}

var errDown = errors.New("store down")

func (f *failingStore) Create(ctx context.Context, rec state.Record, opts ...state.WriteOption) error {
	if f.failCreate {
		return errDown
	}
	return f.Store.Create(ctx, rec, opts...)
}

func (f *failingStore) Update(ctx context.Context, id string, fn func(*state.Record) error, opts ...state.WriteOption) (state.Record, error) {
	if f.failUpdate {
		// The write is attempted, its events computed, then refused: the
		// store's own atomicity is what keeps the event out.
		return f.Store.Update(ctx, id, func(r *state.Record) error {
			if err := fn(r); err != nil {
				return err
			}
			return errDown
		}, opts...)
	}
	return f.Store.Update(ctx, id, fn, opts...)
}

func (f *failingStore) Delete(ctx context.Context, id string, opts ...state.WriteOption) error {
	if f.failDelete {
		return errDown
	}
	return f.Store.Delete(ctx, id, opts...)
}

// TestDurableEventsOnlyWithTheirWrite: a write that fails stores no event,
// and the fact is stored once the write succeeds.
func TestDurableEventsOnlyWithTheirWrite(t *testing.T) {
	stores(t, func(t *testing.T, inner state.Store) {
		store := &failingStore{Store: inner, failCreate: true}
		e := newDurableEnv(t, store, upload.Config{})
		if _, _, err := e.l.Create(context.Background(), upload.CreateRequest{ID: upload.NewID(), Length: 10}); !errors.Is(err, upload.ErrStoreUnavailable) {
			t.Fatalf("create with the store down: %v", err)
		}
		if got := outbox(t, store, nil); len(got) != 0 {
			t.Fatalf("a failed creation stored events: %v", got)
		}
		store.failCreate = false
		rec := create(t, e.l, 10)

		// The write of the last byte fails: no completed event.
		store.failUpdate = true
		if _, err := write(t, e.l, rec.ID, 0, make([]byte, 10)); !errors.Is(err, upload.ErrStoreUnavailable) {
			t.Fatalf("write with the store down: %v", err)
		}
		store.failUpdate = false
		names := map[string]string{rec.ID: "up"}
		if got := outbox(t, store, names); !slices.Equal(got, []string{"upload.created@up:0"}) {
			t.Fatalf("outbox after a failed last write = %v, want the creation only", got)
		}
		// HEAD records the upstream's offset: that write stores the last
		// byte, and with it upload.completed, which no PATCH stored.
		h, err := e.l.Open(context.Background(), rec.ID, nil, func() {})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := h.Offset(context.Background()); err != nil || st.Offset != 10 {
			t.Fatalf("HEAD: %+v, %v", st, err)
		}
		store.failDelete = true
		if err := h.Terminate(context.Background()); !errors.Is(err, upload.ErrStoreUnavailable) {
			t.Fatalf("terminate with the store down: %v", err)
		}
		h.Close()
		if got := outbox(t, store, names); !slices.Equal(got, []string{"upload.completed@up:10"}) {
			t.Fatalf("outbox = %v, want the completion only (the failed delete stored nothing)", got)
		}
	})
}

// TestDurableEventsFollowTheEncoder: no encoder, no events (webhooks off);
// a type nobody subscribed to is not stored; an encoder that fails loses
// its event, never the upload.
func TestDurableEventsFollowTheEncoder(t *testing.T) {
	store := state.NewMemory()
	fake := &fakeKinescope{offsets: make(map[string]int64)}
	l := upload.New(upload.Config{UpstreamTimeout: time.Second}, upload.Deps{Store: store, Locker: memorylocker.New(),
		Init: fake, Upstream: fake, Endpoints: anyEndpoint{}})
	rec := create(t, l, 4)
	if _, err := write(t, l, rec.ID, 0, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := store.OutboxStats(context.Background()); err != nil || n != 0 {
		t.Errorf("without an encoder %d events were stored (%v)", n, err)
	}

	e := newDurableEnv(t, state.NewMemory(), upload.Config{})
	e.enc.skip = map[upload.EventKind]bool{upload.Created: true}
	rec = create(t, e.l, 4)
	if _, err := write(t, e.l, rec.ID, 0, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if got := outbox(t, e.store, map[string]string{rec.ID: "up"}); !slices.Equal(got, []string{"upload.completed@up:4"}) {
		t.Errorf("outbox = %v, want only upload.completed (upload.created is not subscribed)", got)
	}

	e.enc.fail = true
	rec = create(t, e.l, 4)
	if _, err := write(t, e.l, rec.ID, 0, make([]byte, 4)); err != nil {
		t.Fatalf("write with a failing encoder: %v", err)
	}
	if n, _, _ := e.store.OutboxStats(context.Background()); n != 0 {
		t.Errorf("a failing encoder stored %d events", n)
	}
}

// raceStore lets another replica store the upload's last byte, with its
// upload.completed, just before this replica's next Update.
type raceStore struct {
	state.Store
	other bool
}

func (r *raceStore) Update(ctx context.Context, id string, fn func(*state.Record) error, opts ...state.WriteOption) (state.Record, error) {
	if r.other {
		r.other = false
		var length int64
		_, err := r.Store.Update(ctx, id, func(rec *state.Record) error { rec.Offset, length = rec.Length, rec.Length; return nil },
			state.WithEvents(state.Event{ID: "msg_other", Type: "upload.completed", Body: []byte(`{"Kind":"completed","Upload":"` + id + `","Offset":10}`)}))
		if err != nil || length == 0 {
			return state.Record{}, fmt.Errorf("the other replica's write: %v", err)
		}
	}
	return r.Store.Update(ctx, id, fn, opts...)
}

// TestDurableCompletedOncePerUpload: of two writes that both record the
// last byte (a replica that lost the lock and records late), only the one
// that moved the record there stores upload.completed.
func TestDurableCompletedOncePerUpload(t *testing.T) {
	stores(t, func(t *testing.T, inner state.Store) {
		store := &raceStore{Store: inner}
		e := newDurableEnv(t, store, upload.Config{})
		rec := create(t, e.l, 10)
		store.other = true
		if _, err := write(t, e.l, rec.ID, 0, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		got := outbox(t, store, map[string]string{rec.ID: "up"})
		if !slices.Equal(got, []string{"upload.created@up:0", "upload.completed@up:10"}) {
			t.Errorf("outbox = %v, want one creation and one completion", got)
		}
	})
}
