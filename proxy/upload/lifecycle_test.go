package upload_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// fakeKinescope is Kinescope's init and an upstream tus server in memory.
type fakeKinescope struct {
	mu      sync.Mutex
	offsets map[string]int64
	videos  int
}

func (f *fakeKinescope) Init(ctx context.Context, req kinescope.InitRequest) (kinescope.Upload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.videos++
	endpoint := "https://upload.example/" + string(rune('a'+f.videos))
	f.offsets[endpoint] = 0
	return kinescope.Upload{VideoID: "video", Endpoint: endpoint, RequestID: "req-1"}, nil
}

func (f *fakeKinescope) Head(ctx context.Context, endpoint string) (tusproto.UploadState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	offset, ok := f.offsets[endpoint]
	if !ok {
		return tusproto.UploadState{}, &tusproto.Error{Op: "head", Kind: tusproto.KindStatus, Status: 404}
	}
	return tusproto.UploadState{Offset: offset, Length: -1}, nil
}

func (f *fakeKinescope) Patch(ctx context.Context, endpoint string, offset int64, body io.Reader, size int64) (int64, error) {
	n, err := io.Copy(io.Discard, body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offsets[endpoint] = offset + n
	if err != nil {
		return 0, &tusproto.Error{Op: "patch", Kind: tusproto.KindBody}
	}
	return offset + n, nil
}

func (f *fakeKinescope) Delete(ctx context.Context, endpoint string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.offsets, endpoint)
	return nil
}

type anyEndpoint struct{}

func (anyEndpoint) Check(string) error { return nil }

type body struct {
	r    io.Reader
	read atomic.Int64
}

func newBody(b []byte) *body { return &body{r: bytes.NewReader(b)} }

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}
func (b *body) Failure() error  { return nil }
func (b *body) Received() int64 { return b.read.Load() }

// recorder keeps every durable event, and checks, as each arrives, that
// the store already holds the change it reports.
type recorder struct {
	t      *testing.T
	store  state.Store
	mu     sync.Mutex
	events []upload.Event
}

func (r *recorder) Observe(e upload.Event) {
	if !e.Kind.Durable() {
		return
	}
	rec, err := r.store.Get(context.Background(), e.Upload.ID)
	switch e.Kind {
	case upload.Created:
		if err != nil {
			r.t.Errorf("Created before the record was stored: %v", err)
		}
	case upload.Completed:
		if err != nil || rec.Offset != rec.Length {
			r.t.Errorf("Completed before the last byte was stored: %+v, %v", rec, err)
		}
	case upload.Terminated, upload.Expired, upload.Lost:
		if !errors.Is(err, state.ErrNotFound) {
			r.t.Errorf("%v while the record is still stored", e.Kind)
		}
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) kinds() []upload.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var kinds []upload.EventKind
	for _, e := range r.events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

func newLifecycle(t *testing.T, cfg upload.Config) (*upload.Lifecycle, *recorder, *fakeKinescope, *time.Time) {
	t.Helper()
	store := state.NewMemory()
	fake := &fakeKinescope{offsets: make(map[string]int64)}
	rec := &recorder{t: t, store: store}
	now := time.Unix(1_800_000_000, 0)
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = time.Second
	}
	l := upload.New(cfg, upload.Deps{Store: store, Locker: memorylocker.New(), Init: fake, Upstream: fake,
		Endpoints: anyEndpoint{}, Observer: rec, Now: func() time.Time { return now }})
	return l, rec, fake, &now
}

func create(t *testing.T, l *upload.Lifecycle, length int64) state.Record {
	t.Helper()
	st, _, err := l.Create(context.Background(), upload.CreateRequest{ID: upload.NewID(), Length: length})
	if err != nil {
		t.Fatal(err)
	}
	return st.Record
}

func write(t *testing.T, l *upload.Lifecycle, id string, offset int64, data []byte) (upload.Status, error) {
	t.Helper()
	h, err := l.Open(context.Background(), id, nil, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return h.Write(context.Background(), offset, newBody(data), int64(len(data)))
}

// Every lifecycle fact is emitted once, after the store holds it: Completed
// by the write that stored the last byte, not by a later empty one.
func TestEventsFollowTheStoredChange(t *testing.T) {
	l, events, _, _ := newLifecycle(t, upload.Config{})
	rec := create(t, l, 10)
	if _, err := write(t, l, rec.ID, 0, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if got, err := write(t, l, rec.ID, 4, make([]byte, 6)); err != nil || got.Offset != 10 {
		t.Fatalf("second write: %+v, %v", got, err)
	}
	if _, err := write(t, l, rec.ID, 10, nil); err != nil {
		t.Fatalf("empty write to a complete upload: %v", err)
	}
	h, err := l.Open(context.Background(), rec.ID, nil, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Terminate(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.Close()
	want := []upload.EventKind{upload.Created, upload.Completed, upload.Terminated}
	if got := events.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestExpiredAndLostAreEmittedOnce(t *testing.T) {
	l, events, fake, now := newLifecycle(t, upload.Config{UploadTTL: time.Hour})
	expiring := create(t, l, 10)
	*now = now.Add(2 * time.Hour)
	lost := create(t, l, 10)
	l.Expire(context.Background())
	l.Expire(context.Background())
	fake.Delete(context.Background(), lost.Endpoint) // the upstream forgets it
	h, err := l.Open(context.Background(), lost.ID, nil, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Offset(context.Background()); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("offset of an upload the upstream lost: %v, want ErrNotFound", err)
	}
	h.Close()
	want := []upload.EventKind{upload.Created, upload.Created, upload.Expired, upload.Lost}
	if got := events.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if _, err := l.Open(context.Background(), expiring.ID, nil, func() {}); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("open after expiry: %v, want ErrNotFound", err)
	}
}

// The lifecycle returns what happened, never a status.
func TestDomainErrors(t *testing.T) {
	l, _, _, _ := newLifecycle(t, upload.Config{LockWait: 50 * time.Millisecond})
	rec := create(t, l, 10)

	if _, err := write(t, l, rec.ID, 3, make([]byte, 2)); !errors.As(err, new(*upload.OffsetMismatchError)) {
		t.Errorf("write at the wrong offset: %v, want *OffsetMismatchError", err)
	}
	if _, err := write(t, l, rec.ID, 0, make([]byte, 11)); !errors.As(err, new(*upload.BodyTooLargeError)) {
		t.Errorf("write past the length: %v, want *BodyTooLargeError", err)
	}
	if _, err := l.Open(context.Background(), upload.NewID(), nil, func() {}); !errors.Is(err, upload.ErrNotFound) {
		t.Errorf("open of an unknown upload: %v, want ErrNotFound", err)
	}
	refused := errors.New("refused")
	if _, err := l.Open(context.Background(), rec.ID, func(state.Record) error { return refused }, func() {}); err != refused {
		t.Errorf("open refused by the access check: %v, want its error", err)
	}

	// A holder that does not let go: a waiter gets LockedError, or
	// ErrClientGone when its own client leaves first.
	held, err := l.Open(context.Background(), rec.ID, nil, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := l.Open(context.Background(), rec.ID, nil, func() {}); !errors.As(err, new(*upload.LockedError)) {
		t.Errorf("open of a held upload: %v, want *LockedError", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Open(ctx, rec.ID, nil, func() {}); !errors.Is(err, upload.ErrClientGone) {
		t.Errorf("open by a client that left: %v, want ErrClientGone", err)
	}
}

// TestCreateStoresWhatTheCreationSaid: the record, and the Created event
// that reports it, carry where the video went, for whom, at which URL and
// with the application's context; the context is not part of what
// Kinescope is asked (kinescope.InitRequest has no field for it).
func TestCreateStoresWhatTheCreationSaid(t *testing.T) {
	l, events, _, _ := newLifecycle(t, upload.Config{})
	id := upload.NewID()
	req := upload.CreateRequest{ID: id, Length: 10, Metadata: "filename YS5tcDQ=", Owner: "alice",
		Init:    kinescope.InitRequest{ParentID: "folder-7", ClientIP: "203.0.113.9", Filesize: 10, Type: "video"},
		URL:     "https://uploads.example/files/" + id,
		Context: `{"order":42}`}
	st, _, err := l.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	check := func(where string, rec state.Record) {
		t.Helper()
		if rec.ParentID != "folder-7" || rec.ClientIP != "203.0.113.9" || rec.URL != req.URL ||
			rec.Context != `{"order":42}` || rec.Owner != "alice" {
			t.Errorf("%s: parent %q ip %q url %q context %q owner %q", where, rec.ParentID, rec.ClientIP, rec.URL,
				rec.Context, rec.Owner)
		}
	}
	check("returned", st.Record)
	stored, err := events.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	check("stored", stored)
	if kinds := events.kinds(); !slices.Equal(kinds, []upload.EventKind{upload.Created}) {
		t.Fatalf("events %v, want [created]", kinds)
	}
	events.mu.Lock()
	defer events.mu.Unlock()
	check("Created event", events.events[0].Upload)
}

// An offset query marks the record even when the record changed while it
// waited for the lock: a PATCH that read the record after that change, and
// waits behind the query, must find it changed again once the offset is
// answered (on another replica, UpdatedAt is all it can compare).
func TestOffsetMarksTheRecordWrittenWhileItWaited(t *testing.T) {
	l, rec, _, _ := newLifecycle(t, upload.Config{LockWait: 10 * time.Second})
	id := create(t, l, 10).ID
	if _, err := write(t, l, id, 0, []byte("0123")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	asked := make(chan struct{}, 1)
	holder, err := l.Open(ctx, id, nil, func() {
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  upload.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := l.Open(ctx, id, nil, func() {})
		if err != nil {
			done <- result{err: err}
			return
		}
		defer h.Close()
		st, err := h.Offset(ctx)
		done <- result{st, err}
	}()
	<-asked // the query has read the record and waits for the lock
	// The holder records its progress before it lets go.
	written, err := rec.store.Update(ctx, id, func(r *state.Record) error {
		r.UpdatedAt = r.UpdatedAt.Add(time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	holder.Close()
	res := <-done
	if res.err != nil || res.st.Record.Offset != 4 {
		t.Fatalf("Offset = %d, %v; want 4, nil", res.st.Record.Offset, res.err)
	}
	after, err := rec.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedAt.After(written.UpdatedAt) {
		t.Errorf("UpdatedAt %v after the offset was answered, not later than the holder's write at %v",
			after.UpdatedAt, written.UpdatedAt)
	}
}
