package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/lock/redislock"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// Issue 14, item 5: a client whose connection drops mid-PATCH and who at
// once HEADs and resumes from the offset it was told must succeed. The
// offset HEAD answers has to be settled: no byte of the dead PATCH may
// reach the upstream after it.

const (
	settleLength = 8 << 20
	settleCut    = 3 << 20
)

// settleCycles is how many cut-then-resume cycles a test runs: fast by
// default, TUSPROXY_TEST_SETTLE_CYCLES for the long run (500 in the issue).
func settleCycles(t *testing.T, fast int) int {
	t.Helper()
	if v := os.Getenv("TUSPROXY_TEST_SETTLE_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TUSPROXY_TEST_SETTLE_CYCLES=%q is not a positive number", v)
		}
		return n
	}
	if testing.Short() {
		return fast / 4
	}
	return fast
}

// settleVars is the default of a deployment: a client PATCH is never split
// upstream, as with Kinescope.
var settleVars = map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "0"}

func TestResumeAfterDropSingleReplica(t *testing.T) {
	e := newEnv(t, settleVars)
	runSettleCycles(t, e, []string{e.srv.URL}, settleCycles(t, 40))
}

func TestResumeAfterDropAcrossReplicas(t *testing.T) {
	// Connections a previous test left idle in the default client's pool
	// can be reused against a closed server's recycled port: start clean.
	http.DefaultClient.CloseIdleConnections()
	redisURL := redistest.URL(t)
	prefix := redistest.Prefix(t)
	open := func() (state.Store, *redislock.Locker) {
		store, err := state.OpenRedis(t.Context(), redisURL, state.RedisOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		locker, err := redislock.New(store.Client(), redislock.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = locker.Close(); _ = store.Close() })
		return store, locker
	}
	store, locker := open()
	e := newEnvWith(t, settleVars, proxy.Deps{Store: store, Locker: locker})
	// A second replica: same config, emulator and Redis, its own locker.
	store2, locker2 := open()
	svc2, err := proxy.New(e.cfg, proxy.Deps{Store: store2, Locker: locker2,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewUnstartedServer(svc2)
	srv2.Config.ConnContext = proxy.ConnContext
	srv2.Start()
	t.Cleanup(srv2.Close)
	runSettleCycles(t, e, []string{e.srv.URL, srv2.URL}, settleCycles(t, 20))
}

// runSettleCycles runs cycles of: create an 8 MiB upload, PATCH it and cut
// the connection after 3 MiB, HEAD at once and PATCH the rest from the
// offset answered. With two origins the cut goes to one replica, the HEAD
// and resume to the other. It fails the test with the count of failed
// cycles.
func runSettleCycles(t *testing.T, e *env, origins []string, cycles int) {
	t.Helper()
	data := make([]byte, settleLength)
	_, _ = rand.Read(data)
	var failures []string
	for i := range cycles {
		cutAt := origins[i%len(origins)]
		resumeAt := origins[(i+1)%len(origins)]
		if err := settleCycle(t, e, cutAt, resumeAt, data); err != nil {
			failures = append(failures, fmt.Sprintf("cycle %d: %v", i, err))
		}
	}
	t.Logf("%d cycles across %d replica(s): %d failed", cycles, len(origins), len(failures))
	for _, f := range failures {
		t.Error(f)
	}
}

func settleCycle(t *testing.T, e *env, cutAt, resumeAt string, data []byte) error {
	loc := e.create(int64(len(data)), "")
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	path := u.Path
	if err := cutPatch(cutAt, path, data, settleCut); err != nil {
		return fmt.Errorf("cut PATCH: %w", err)
	}
	head := testkit.TusRequest(t, http.MethodHead, resumeAt+path, nil)
	resp, _ := testkit.Send(t, http.DefaultClient, head)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HEAD: status %d", resp.StatusCode)
	}
	offset, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return fmt.Errorf("HEAD: Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	patch := testkit.TusRequest(t, http.MethodPatch, resumeAt+path, bytes.NewReader(data[offset:]))
	patch.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	patch.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, body := testkit.Send(t, http.DefaultClient, patch)
	if resp.StatusCode != http.StatusNoContent {
		if os.Getenv("SETTLE_DEBUG") != "" {
			for _, line := range bytes.Split([]byte(e.logs.String()), []byte("\n")) {
				if bytes.Contains(line, []byte(testkit.UploadID(loc))) {
					t.Logf("%s", line)
				}
			}
		}
		return fmt.Errorf("resume from %d: status %d: %s", offset, resp.StatusCode, bytes.TrimSpace(body))
	}
	if got := resp.Header.Get("Upload-Offset"); got != strconv.Itoa(len(data)) {
		return fmt.Errorf("resume from %d: Upload-Offset %s", offset, got)
	}
	v := e.video(loc)
	if v.Offset != int64(len(data)) {
		return fmt.Errorf("the emulator holds %d bytes", v.Offset)
	}
	return nil
}

// cutPatch sends a PATCH of all of data from offset 0 on a connection of
// its own and closes that connection after cut bytes of the body, as a
// client whose network drops.
func cutPatch(origin, path string, data []byte, cut int) error {
	u, err := url.Parse(origin)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n",
		path, u.Host, len(data))
	if _, err := w.Write(data[:cut]); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return nil
}
