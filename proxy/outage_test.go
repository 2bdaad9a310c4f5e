package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// flakyStore is a store that can be switched off, as a Redis outage would.
type flakyStore struct {
	state.Store
	down atomic.Bool
}

var errStoreDown = errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")

func (f *flakyStore) Create(ctx context.Context, rec state.Record, opts ...state.WriteOption) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Create(ctx, rec, opts...)
}

func (f *flakyStore) Get(ctx context.Context, id string) (state.Record, error) {
	if f.down.Load() {
		return state.Record{}, errStoreDown
	}
	return f.Store.Get(ctx, id)
}

func (f *flakyStore) Update(ctx context.Context, id string, fn func(*state.Record) error, opts ...state.WriteOption) (state.Record, error) {
	if f.down.Load() {
		return state.Record{}, errStoreDown
	}
	return f.Store.Update(ctx, id, fn, opts...)
}

func (f *flakyStore) Delete(ctx context.Context, id string, opts ...state.WriteOption) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Delete(ctx, id, opts...)
}

func (f *flakyStore) Ping(ctx context.Context) error {
	if f.down.Load() {
		return errStoreDown
	}
	return f.Store.Ping(ctx)
}

// TestStoreOutage: while the state store is unreachable, requests get 503
// with Retry-After — HEAD gets 423, never a 5xx that would make
// tus-js-client start a new upload — no Kinescope video is created, and
// once the store is back the upload resumes where it was.
func TestStoreOutage(t *testing.T) {
	flaky := &flakyStore{Store: state.NewMemory()}
	e := newEnvWith(t, nil, proxy.Deps{Store: flaky})

	data := testkit.RandomBytes(300_000)
	url := e.create(int64(len(data)), "")
	if resp := e.patch(url, 0, data[:100_000]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH before the outage: %d", resp.StatusCode)
	}
	inits := e.emu.Stats().Init

	flaky.down.Store(true)
	for _, c := range []struct {
		name string
		resp *http.Response
		want int
	}{
		{"HEAD", e.do(http.MethodHead, url, nil, nil), http.StatusLocked},
		{"PATCH", e.patch(url, 100_000, data[100_000:200_000]), http.StatusServiceUnavailable},
		{"POST", e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil), http.StatusServiceUnavailable},
		{"DELETE", e.do(http.MethodDelete, url, nil, nil), http.StatusServiceUnavailable},
	} {
		if c.resp.StatusCode != c.want {
			t.Errorf("%s during the outage: %d, want %d", c.name, c.resp.StatusCode, c.want)
		}
		if ra := c.resp.Header.Get("Retry-After"); ra == "" {
			t.Errorf("%s during the outage: no Retry-After", c.name)
		}
	}
	if got := e.emu.Stats().Init; got != inits {
		t.Errorf("Kinescope got %d init calls during the outage, want none", got-inits)
	}

	flaky.down.Store(false)
	if off := testkit.HeadOffset(t, http.DefaultClient, url); off != 100_000 {
		t.Fatalf("HEAD after the outage = %d, want 100000", off)
	}
	if resp := e.patch(url, 100_000, data[100_000:]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH after the outage: %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(url).ID, data)
	// Creation works again once the store answers a ping.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
		if resp.StatusCode == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST after the outage: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The store's error (which may name its address) is for the operator's
	// log, never for the client.
	if !strings.Contains(e.logs.String(), "state store failed") {
		t.Error("the store failure was not logged")
	}
}

// aheadStore makes the record move ahead, as another replica's writes would,
// just before the proxy's next Update.
type aheadStore struct {
	state.Store
	ahead atomic.Int64 // when > 0, the offset written before the next Update
}

func (a *aheadStore) Update(ctx context.Context, id string, fn func(*state.Record) error, opts ...state.WriteOption) (state.Record, error) {
	if off := a.ahead.Swap(0); off > 0 {
		if _, err := a.Store.Update(ctx, id, func(r *state.Record) error { r.Offset = off; return nil }); err != nil {
			return state.Record{}, err
		}
	}
	return a.Store.Update(ctx, id, fn, opts...)
}

// TestRecordNeverMovesBack: a PATCH that records its offset after the
// record moved ahead (a replica that lost the upload's lock while stalled,
// recording late) leaves the newer offset in place, and still answers its
// own client with what the upstream confirmed to it.
func TestRecordNeverMovesBack(t *testing.T) {
	store := &aheadStore{Store: state.NewMemory()}
	e := newEnvWith(t, nil, proxy.Deps{Store: store})
	data := testkit.RandomBytes(1000)
	url := e.create(int64(len(data)), "")
	store.ahead.Store(600)
	resp := e.patch(url, 0, data[:100])
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != "100" {
		t.Fatalf("PATCH: %d, Upload-Offset %q; want 204 and 100", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	rec, err := store.Get(t.Context(), testkit.UploadID(url))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Offset != 600 {
		t.Errorf("record offset = %d after a late, lower recording; want 600 kept", rec.Offset)
	}
	// HEAD asks the upstream (100) and records the truth, lower or not.
	if off := testkit.HeadOffset(t, http.DefaultClient, url); off != 100 {
		t.Errorf("HEAD = %d, want the upstream's 100", off)
	}
}

// canceledStore answers Get as a store does whose caller went away.
type canceledStore struct{ state.Store }

func (c canceledStore) Get(ctx context.Context, id string) (state.Record, error) {
	return state.Record{}, fmt.Errorf("redis: %w", context.Canceled)
}

// TestClientGoneIsNotAnOutage: a store call cut short because the client
// left is the client's doing, not a store failure to log and act on.
func TestClientGoneIsNotAnOutage(t *testing.T) {
	e := newEnvWith(t, nil, proxy.Deps{Store: canceledStore{state.NewMemory()}})
	req := testkit.TusRequest(t, http.MethodHead, e.base+"0123456789abcdef0123456789abcdef", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("HEAD got an answer (%d); want the connection dropped, as for a client that left", resp.StatusCode)
	}
	if logs := e.logs.String(); strings.Contains(logs, "state store failed") || !strings.Contains(logs, `"status":499`) {
		t.Errorf("want a 499 and no store failure in the log:\n%s", logs)
	}
}

// TestStoreOutageMetrics: a store outage shows in the metrics, not only in
// answers: tusproxy_ready moves to store_unreachable (one-hot) and back,
// store errors are counted by operation, and a drain reads draining.
func TestStoreOutageMetrics(t *testing.T) {
	flaky := &flakyStore{Store: state.NewMemory()}
	reg := proxy.NewRegistry("test")
	e := newEnvWith(t, nil, proxy.Deps{Store: flaky, Metrics: reg})
	m := &metricsEnv{env: e, reg: reg}
	admin := httptest.NewServer(e.svc.AdminHandler(reg))
	t.Cleanup(admin.Close)
	checkReady := func(when, want string) {
		t.Helper()
		for _, state := range []string{"ready", "draining", "store_unreachable"} {
			v := m.value("tusproxy_ready", map[string]string{"state": state})
			if (state == want) != (v == 1) || (v != 0 && v != 1) {
				t.Errorf("%s: tusproxy_ready{state=%q} = %v, want only %s at 1", when, state, v, want)
			}
		}
	}
	storeErrors := func(op string) float64 {
		t.Helper()
		return m.value("tusproxy_store_errors_total", map[string]string{"operation": op})
	}
	checkReady("at start", "ready")
	for _, op := range []string{"create", "get", "update", "lock", "ping"} {
		if v := storeErrors(op); v != 0 {
			t.Errorf("store errors %s = %v at start, want a pre-created 0", op, v)
		}
	}

	data := testkit.RandomBytes(1000)
	url := e.create(int64(len(data)), "")
	flaky.down.Store(true)
	e.do(http.MethodHead, url, nil, nil)                                         // get
	e.patch(url, 0, data)                                                        // get
	e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil) // ping (creation's check)
	if v := storeErrors("get"); v != 2 {
		t.Errorf("store errors get = %v after a HEAD and a PATCH, want 2", v)
	}
	if v := storeErrors("ping"); v < 1 {
		t.Errorf("store errors ping = %v after a refused creation, want at least 1", v)
	}
	if resp, _ := adminGet(t, admin, "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %d", resp.StatusCode)
	}
	checkReady("store down", "store_unreachable")

	flaky.down.Store(false)
	if resp, _ := adminGet(t, admin, "/readyz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz after the outage: %d", resp.StatusCode)
	}
	checkReady("store back", "ready")

	e.svc.Drain()
	checkReady("draining", "draining")
	flaky.down.Store(true)
	adminGet(t, admin, "/readyz", "")
	checkReady("draining, store down", "draining")
}
