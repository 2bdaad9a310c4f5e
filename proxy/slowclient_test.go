package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
)

// announcedBody sends a request whose headers announce a 100-byte body that
// never comes, and returns the answer's status line and whether the server
// closed the connection. wait bounds the test only: it is far longer than
// anything the server is configured to wait.
func announcedBody(t *testing.T, server, method, path string, headers map[string]string, wait time.Duration) (status string, closed bool) {
	t.Helper()
	u, _ := url.Parse(server)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Error(err)
		return "", false
	}
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n", method, path, u.Host)
	for k, v := range headers {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Error(err)
		return "", false
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	answer, err := io.ReadAll(conn)
	status, _, _ = strings.Cut(string(answer), "\r\n")
	var ne net.Error
	return status, !(errors.As(err, &ne) && ne.Timeout())
}

// TestAnnouncedBodyNeverSentDoesNotHoldTheConnection: requests that
// announce a body and never send it, on every route that does not stream
// an upload, get their answer and lose their connection (issue 11: 2000
// such connections stayed open for minutes). The seed's JSON is waited for
// within the body idle timeout, then answered 408.
func TestAnnouncedBodyNeverSentDoesNotHoldTheConnection(t *testing.T) {
	const idle = 200 * time.Millisecond
	e := newEnv(t, map[string]string{"TUSPROXY_BODY_IDLE_TIMEOUT": idle.String()})
	admin := httptest.NewServer(e.svc.AdminHandler(prometheus.NewRegistry()))
	t.Cleanup(admin.Close)
	upload := strings.TrimPrefix(e.create(1000, ""), e.srv.URL)
	doomed := strings.TrimPrefix(e.create(1000, ""), e.srv.URL)
	patched := strings.TrimPrefix(e.create(1000, ""), e.srv.URL)
	tus := map[string]string{"Tus-Resumable": "1.0.0"}
	for _, tt := range []struct {
		name, server, method, path string
		headers                    map[string]string
		status                     string
	}{
		{"healthz", e.srv.URL, "GET", "/healthz", nil, "200"},
		{"admin healthz", admin.URL, "GET", "/healthz", nil, "200"},
		{"options", e.srv.URL, "OPTIONS", "/files/", nil, "204"},
		{"head", e.srv.URL, "HEAD", upload, tus, "200"},
		{"delete", e.srv.URL, "DELETE", doomed, tus, "20"}, // 204, then 404 for the others
		{"get upload", e.srv.URL, "GET", upload, tus, "405"},
		{"unknown path", e.srv.URL, "GET", "/nowhere", nil, "404"},
		{"unknown method", e.srv.URL, "PUT", "/files/", tus, "405"},
		{"post unknown path", e.srv.URL, "POST", "/nowhere", nil, "404"},
		{"creation without a tus body", e.srv.URL, "POST", "/files/", map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Content-Type": "text/plain"}, "415"},
		{"patch refused", e.srv.URL, "PATCH", patched, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "7", "Content-Type": "application/offset+octet-stream"}, "409"},
		{"seed json", e.srv.URL, "POST", "/upload", map[string]string{"Content-Type": "application/json"}, "408"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const conns = 10
			var wg sync.WaitGroup
			var mu sync.Mutex
			held, wrong := 0, map[string]int{}
			for range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status, closed := announcedBody(t, tt.server, tt.method, tt.path, tt.headers, 50*idle)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case !closed:
						held++
					case tt.name == "delete" && strings.Contains(status, " 404 "):
						// another connection deleted it first
					case !strings.HasPrefix(status, "HTTP/1.1 "+tt.status):
						wrong[status]++
					}
				}()
			}
			wg.Wait()
			if held > 0 {
				t.Errorf("%s %s: %d of %d connections still open after %s", tt.method, tt.path, held, conns, 50*idle)
			}
			for status, n := range wrong {
				t.Errorf("%s %s: %d answers %q, want %s", tt.method, tt.path, n, status, tt.status)
			}
		})
	}
}

func TestSeedJSONBodyIsBounded(t *testing.T) {
	e := newEnv(t, nil)
	fits := fmt.Sprintf(`{"filename": "a.mp4", "filesize": 10, "description": %q}`, strings.Repeat("d", 7<<10))
	tooLong := fmt.Sprintf(`{"filename": "a.mp4", "filesize": 10, "description": %q}`, strings.Repeat("d", 8<<10))
	for _, tt := range []struct {
		name    string
		body    string
		chunked bool
		status  int
	}{
		{"7 KiB description", fits, false, http.StatusCreated},
		{"8 KiB description", tooLong, false, http.StatusRequestEntityTooLarge},
		{"8 KiB description, chunked", tooLong, true, http.StatusRequestEntityTooLarge},
	} {
		var body io.Reader = strings.NewReader(tt.body)
		if tt.chunked {
			body = io.MultiReader(body) // no length known: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, answer, tt.status)
		}
		if tt.status == http.StatusRequestEntityTooLarge && !bytes.Contains(answer, []byte("larger than 8 KiB")) {
			t.Errorf("%s: answer %s does not say the limit", tt.name, answer)
		}
	}
	if n := len(e.emu.Videos()); n != 1 {
		t.Errorf("%d Kinescope videos, want 1", n)
	}
}

// dribble sends a PATCH of body from the address of dialer one byte at a
// time, every 5ms (200 bytes a second) until slow is closed and every 250ms
// (4 bytes a second) after, until tusproxy answers; it returns the answer
// and how many bytes it wrote.
func dribble(t *testing.T, dialer *net.Dialer, uploadURL string, body []byte, slow <-chan struct{}) (*http.Response, []byte, int) {
	t.Helper()
	u, _ := url.Parse(uploadURL)
	head := fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, len(body))
	return dribbleRequest(t, dialer, u.Host, head, body, slow)
}

// dribbleRequest is dribble for any request: head is its request line and
// headers, body the bytes dribbled after it.
func dribbleRequest(t *testing.T, dialer *net.Dialer, addr, head string, body []byte, slow <-chan struct{}) (*http.Response, []byte, int) {
	t.Helper()
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return nil, nil, 0
	}
	defer conn.Close()
	io.WriteString(conn, head)
	answered := make(chan struct{})
	written := make(chan int, 1)
	go func() {
		n := 0
		defer func() { written <- n }()
		for n < len(body) {
			if _, err := conn.Write(body[n : n+1]); err != nil {
				return
			}
			n++
			gap := 5 * time.Millisecond
			select {
			case <-slow:
				gap = 250 * time.Millisecond
			default:
			}
			select {
			case <-answered:
				return
			case <-time.After(gap):
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // a bound for the test only
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	close(answered)
	n := <-written
	if err != nil {
		t.Errorf("dribbling PATCH got no answer: %v", err)
		return nil, nil, n
	}
	answer, _ := io.ReadAll(resp.Body)
	return resp, answer, n
}

// TestDribblingClientIsCutAndOthersStillUpload: one address dribbling a
// byte at a time on several PATCHes holds at most its own share of the
// in-flight slots, each of its PATCHes is cut with 408 once it falls below
// the minimum rate, and exactly the bytes it sent are kept for it to resume
// (issue 11: six such PATCHes held every slot and everyone else got 503).
// The dribblers keep above the rate until the other address has uploaded,
// so they are surely in flight meanwhile, then drop to 4 bytes a second.
func TestDribblingClientIsCutAndOthersStillUpload(t *testing.T) {
	e := newEnv(t, map[string]string{
		"TUSPROXY_MAX_PATCHES_PER_IP":   "2",
		"TUSPROXY_MAX_INFLIGHT":         "3",
		"TUSPROXY_MIN_BODY_RATE":        "50",
		"TUSPROXY_MIN_BODY_RATE_WINDOW": "2s",
	})
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if conn, err := other.Dial("tcp", e.srv.Listener.Addr().String()); err != nil {
		t.Skipf("cannot send from 127.0.0.2: %v", err)
	} else {
		conn.Close()
	}

	data := testkit.RandomBytes(100_000)
	uploads := []string{e.create(100_000, ""), e.create(100_000, "")}
	slow := make(chan struct{})
	type result struct {
		resp    *http.Response
		answer  []byte
		written int
	}
	results := make([]result, len(uploads))
	var wg sync.WaitGroup
	for i, loc := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, answer, n := dribble(t, attacker, loc, data, slow)
			results[i] = result{resp, answer, n}
		}()
	}
	for _, loc := range uploads {
		waitUpstreamOffset(t, e, loc, 1) // both dribbling PATCHes are in flight
	}
	// The attacker's address is at its cap; another address still uploads.
	third := e.create(100_000, "")
	if resp := e.patch(third, 0, data); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a third PATCH from the dribbling address: %d, want 429", resp.StatusCode)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return other.DialContext(ctx, network, addr)
	}}}
	resp, _ := testkit.Tus(t, client, http.MethodPatch, third, bytes.NewReader(data),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("a PATCH from another address while the dribbling ones run: %d, want 204", resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(third).ID, data)

	close(slow)
	wg.Wait()
	for i, loc := range uploads {
		r := results[i]
		if r.resp == nil {
			continue
		}
		if r.resp.StatusCode != http.StatusRequestTimeout || !bytes.Contains(r.answer, []byte("client_too_slow")) {
			t.Errorf("dribbling PATCH: %d %s, want 408 client_too_slow", r.resp.StatusCode, r.answer)
		}
		// What the dribbler sent before the cut is kept: HEAD says what the
		// upstream holds, and that is the start of the body, byte for byte.
		offset := testkit.HeadOffset(t, http.DefaultClient, loc)
		v := e.video(loc)
		if offset != v.Offset || offset == 0 || offset > int64(r.written) {
			t.Errorf("HEAD %d, upstream holds %d, the client wrote %d: want HEAD = upstream, 0 < HEAD <= written", offset, v.Offset, r.written)
			continue
		}
		testkit.CheckBytes(t, e.emu, v.ID, data[:offset])
		// The client resumes from there and finishes.
		if resp := e.patch(loc, offset, data[offset:]); resp.StatusCode != http.StatusNoContent {
			t.Errorf("resuming at %d: %d", offset, resp.StatusCode)
		}
		testkit.CheckBytes(t, e.emu, v.ID, data)
	}
}

// TestDribblingCreationWithUploadIsCut: the minimum rate applies to a
// creation's body too. As for any creation whose body is cut, the answer is
// 201 with the offset the upstream kept (a failed creation would make
// tus-js-client create another upload, and another Kinescope video), and the
// client resumes from it with PATCH.
func TestDribblingCreationWithUploadIsCut(t *testing.T) {
	e := newEnv(t, map[string]string{
		"TUSPROXY_MIN_BODY_RATE":        "50",
		"TUSPROXY_MIN_BODY_RATE_WINDOW": "1s",
	})
	data := testkit.RandomBytes(10_000)
	u, _ := url.Parse(e.base)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Length: %d\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, len(data), len(data))
	slow := make(chan struct{})
	close(slow)
	resp, answer, written := dribbleRequest(t, &net.Dialer{}, u.Host, head, data, slow)
	if resp == nil {
		return
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("dribbling creation: %d %s, want 201", resp.StatusCode, answer)
	}
	loc := resp.Header.Get("Location")
	offset := atoi(t, resp.Header.Get("Upload-Offset"))
	v := e.video(loc)
	if offset != v.Offset || offset == 0 || offset > int64(written) || offset == int64(len(data)) {
		t.Fatalf("201 with Upload-Offset %d, upstream holds %d, the client wrote %d of %d", offset, v.Offset, written, len(data))
	}
	testkit.CheckBytes(t, e.emu, v.ID, data[:offset])
	if resp := e.patch(loc, offset, data[offset:]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resuming at %d: %d", offset, resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, v.ID, data)
}
