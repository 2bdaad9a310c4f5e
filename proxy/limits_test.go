package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/redislimit"
)

func TestCreateRatePerClientIP(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_CREATE_RATE": "2"})
	for i := 0; i < 2; i++ {
		e.create(10, "")
	}
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third creation in a minute: %d %s", resp.StatusCode, body)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 30 {
		t.Errorf("Retry-After %q, want the ~30 s until the next token", resp.Header.Get("Retry-After"))
	}
	if n := len(e.emu.Videos()); n != 2 {
		t.Errorf("%d Kinescope videos, want 2", n)
	}
}

// stalledPatch opens a PATCH that sends the first sent bytes of a body of
// length total and then waits, holding the connection open.
func stalledPatch(t *testing.T, uploadURL string, total, sent int) net.Conn {
	t.Helper()
	u, _ := url.Parse(uploadURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, total)
	conn.Write(bytes.Repeat([]byte{'s'}, sent))
	return conn
}

func waitUpstreamOffset(t *testing.T, e *env, loc string, atLeast int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.video(loc).Offset < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("upstream never reached %d bytes", atLeast)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentPatchLimits(t *testing.T) {
	for _, tt := range []struct {
		vars   map[string]string
		status int
	}{
		{map[string]string{"TUSPROXY_MAX_PATCHES_PER_IP": "1"}, http.StatusTooManyRequests},
		{map[string]string{"TUSPROXY_MAX_INFLIGHT": "1"}, http.StatusServiceUnavailable},
	} {
		e := newEnv(t, tt.vars)
		first := e.create(1000, "")
		second := e.create(1000, "")
		stalledPatch(t, first, 1000, 100)
		waitUpstreamOffset(t, e, first, 1) // the first PATCH is in flight
		resp := e.patch(second, 0, testkit.RandomBytes(1000))
		if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%v: second PATCH %d (Retry-After %q), want %d", tt.vars, resp.StatusCode, resp.Header.Get("Retry-After"), tt.status)
		}
	}
}

func TestStalledClientIsCutAndItsBytesKept(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_BODY_IDLE_TIMEOUT": "300ms"})
	loc := e.create(100_000, "")
	conn := stalledPatch(t, loc, 100_000, 40_000)
	// tusproxy gives up on the silent client and answers 408.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(conn)
	if !bytes.Contains(answer, []byte(" 408 ")) {
		t.Fatalf("stalled client got %q, want a 408", answer)
	}
	v := e.video(loc)
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != v.Offset || got == 0 {
		t.Fatalf("HEAD %d, upstream holds %d: the stalled PATCH's bytes must be recorded", got, v.Offset)
	}
}

// sharedLimiter is a redislimit.Limiter on the test Redis under the given
// prefix, with a client of its own (as each replica has).
func sharedLimiter(t *testing.T, prefix string) *redislimit.Limiter {
	t.Helper()
	l, err := redislimit.New(redistest.Client(t), redislimit.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLimitsSharedByReplicas: two services sharing a Limiter count one
// address together: a creation rate of 3 lets 3 creations through in all,
// whichever replica each reaches, and a PATCH cap of 1 refuses a PATCH on
// one replica while a PATCH of the same address streams on the other, until
// that one ends.
func TestLimitsSharedByReplicas(t *testing.T) {
	prefix := redistest.Prefix(t)
	vars := map[string]string{"TUSPROXY_CREATE_RATE": "3", "TUSPROXY_MAX_PATCHES_PER_IP": "1"}
	a := newEnvWith(t, vars, proxy.Deps{Limiter: sharedLimiter(t, prefix)})
	b := newEnvWith(t, vars, proxy.Deps{Limiter: sharedLimiter(t, prefix)})
	first := a.create(1000, "")
	second := b.create(1000, "")
	a.create(1000, "")
	resp := b.do(http.MethodPost, b.base, map[string]string{"Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth creation, on the other replica: %d, want 429", resp.StatusCode)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 20 {
		t.Errorf("Retry-After %q, want the up to 20 s until the next token", resp.Header.Get("Retry-After"))
	}

	conn := stalledPatch(t, first, 1000, 100)
	waitUpstreamOffset(t, a, first, 1) // the first PATCH streams on a
	resp = b.patch(second, 0, testkit.RandomBytes(1000))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("PATCH on b while one streams on a: %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	conn.Close() // the client leaves: a counts its PATCH out
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = b.patch(second, 0, testkit.RandomBytes(1000))
		if resp.StatusCode == http.StatusNoContent {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("PATCH on b after a's ended: %d, want 204", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// switchLimiter is a Limiter that is the test Redis, or a Redis nobody
// listens at (every call fails: connection refused) while down is set.
type switchLimiter struct {
	up, dead proxy.Limiter
	down     atomic.Bool
}

func (s *switchLimiter) current() proxy.Limiter {
	if s.down.Load() {
		return s.dead
	}
	return s.up
}

func (s *switchLimiter) TakeCreation(ctx context.Context, addr netip.Addr, perMinute int, now time.Time) (time.Duration, error) {
	return s.current().TakeCreation(ctx, addr, perMinute, now)
}

func (s *switchLimiter) StartStream(ctx context.Context, addr netip.Addr, id string, max int, now time.Time, lease time.Duration) (bool, error) {
	return s.current().StartStream(ctx, addr, id, max, now, lease)
}

func (s *switchLimiter) RenewStreams(ctx context.Context, streams map[netip.Addr][]string, now time.Time, lease time.Duration) error {
	return s.current().RenewStreams(ctx, streams, now, lease)
}

func (s *switchLimiter) EndStream(ctx context.Context, addr netip.Addr, id string) error {
	return s.current().EndStream(ctx, addr, id)
}

// TestLimitsFallBackWhileRedisIsDown: while the shared limits do not
// answer, nobody is refused for it: each check is decided by the replica's
// own count (which still caps), counted in tusproxy_limiter_fallbacks_total
// and logged once as a warning; once Redis answers again an info line says
// so and the shared counts decide again.
func TestLimitsFallBackWhileRedisIsDown(t *testing.T) {
	deadClient := redis.NewClient(&redis.Options{Addr: testkit.FreeAddr(t), MaxRetries: -1})
	t.Cleanup(func() { _ = deadClient.Close() })
	dead, err := redislimit.New(deadClient, redislimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	limiter := &switchLimiter{up: sharedLimiter(t, redistest.Prefix(t)), dead: dead}
	reg := proxy.NewRegistry("test")
	vars := map[string]string{"TUSPROXY_CREATE_RATE": "2", "TUSPROXY_MAX_PATCHES_PER_IP": "1"}
	m := &metricsEnv{env: newEnvWith(t, vars, proxy.Deps{Limiter: limiter, Metrics: reg}), reg: reg}
	fallbacks := func(limit string) float64 {
		t.Helper()
		return m.value("tusproxy_limiter_fallbacks_total", map[string]string{"limit": limit})
	}
	logged := func(msg string) int { return strings.Count(m.logs.String(), `"msg":"`+msg) }
	const warnMsg, infoMsg = "per-address limits cannot be shared", "per-address limits are shared by the replicas again"

	shared := m.create(1000, "") // a token of the shared bucket
	limiter.down.Store(true)
	first := m.create(1000, "")
	m.create(1000, "")
	if resp := m.do(http.MethodPost, m.base, map[string]string{"Upload-Length": "10"}, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third creation while Redis is down: %d, want 429 from this replica's own bucket of 2", resp.StatusCode)
	}
	if v := fallbacks("create_rate"); v != 3 {
		t.Errorf("create_rate fallbacks = %v, want 3", v)
	}
	conn := stalledPatch(t, first, 1000, 100)
	waitUpstreamOffset(t, m.env, first, 1)
	if resp := m.patch(shared, 0, testkit.RandomBytes(1000)); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second PATCH while Redis is down: %d, want 429 from this replica's own count", resp.StatusCode)
	}
	if v := fallbacks("patches_per_ip"); v != 2 {
		t.Errorf("patches_per_ip fallbacks = %v, want 2", v)
	}
	if n := logged(warnMsg); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
	conn.Close()

	limiter.down.Store(false)
	// The PATCH admitted while Redis was down is not in the shared count.
	if resp := m.patch(shared, 0, testkit.RandomBytes(1000)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH once Redis is back: %d, want 204", resp.StatusCode)
	}
	if n := logged(infoMsg); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
	// The shared bucket had one token taken before the outage: one more.
	m.create(1000, "")
	if resp := m.do(http.MethodPost, m.base, map[string]string{"Upload-Length": "10"}, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("creation beyond the shared bucket after the outage: %d, want 429", resp.StatusCode)
	}
	if v := fallbacks("create_rate"); v != 3 {
		t.Errorf("create_rate fallbacks = %v after Redis came back, want still 3", v)
	}
}
