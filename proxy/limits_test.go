package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
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
