package proxy_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// Fault tests: the emulator (or the network in front of it) misbehaves, a
// client resumes the way tus-js-client does, and in the end the upstream
// must hold exactly the file, with no HEAD ever answered with a 5xx (which
// tus-js-client takes as "start a brand-new upload", a second video).

// exchange is one request of a resume loop and the status it got; 0 means
// no answer arrived (the connection failed).
type exchange struct {
	method string
	status int
}

func (x exchange) String() string { return x.method + " " + strconv.Itoa(x.status) }

// resumeClient is the client of uploadWithRetries. Its timeout only stops a
// hung test; no assertion depends on it.
var resumeClient = &http.Client{Timeout: time.Minute}

// maxResumeAttempts bounds uploadWithRetries, like tus-js-client's
// retryDelays (the faults below need at most about 20 rounds).
const maxResumeAttempts = 60

// uploadWithRetries uploads data to the upload at loc as tus-js-client does
// after any failure: HEAD, then one PATCH of everything from the offset HEAD
// answered, until the upload is complete. It fails the test when a HEAD
// answers 5xx or 4xx other than 423 (either would make tus-js-client give up
// on the upload), or when maxResumeAttempts rounds do not finish the upload.
// It returns every exchange, in order.
func uploadWithRetries(t *testing.T, e *env, loc string, data []byte) []exchange {
	t.Helper()
	var seen []exchange
	size := int64(len(data))
	for range maxResumeAttempts {
		status, header := resumeRequest(t, http.MethodHead, loc, nil, nil)
		seen = append(seen, exchange{http.MethodHead, status})
		switch {
		case status >= 500:
			t.Errorf("HEAD answered %d during a resume: tus-js-client would start a new upload (so far: %v)", status, seen)
			continue
		case status == http.StatusLocked || status == 0:
			time.Sleep(50 * time.Millisecond) // tus-js-client's retry delay
			continue
		case status != http.StatusOK:
			t.Fatalf("HEAD answered %d during a resume: the upload is lost (so far: %v)", status, seen)
		}
		offset := atoi(t, header.Get("Upload-Offset"))
		if offset < 0 || offset > size {
			t.Fatalf("HEAD answered Upload-Offset %d for an upload of %d bytes", offset, size)
		}
		if offset == size {
			return seen
		}
		status, header = resumeRequest(t, http.MethodPatch, loc, map[string]string{
			"Upload-Offset": itoa(offset),
			"Content-Type":  "application/offset+octet-stream",
		}, data[offset:])
		seen = append(seen, exchange{http.MethodPatch, status})
		if status == http.StatusNoContent && header.Get("Upload-Offset") == itoa(size) {
			return seen
		}
	}
	t.Fatalf("upload not complete after %d rounds: %v", maxResumeAttempts, seen)
	return nil
}

// resumeRequest sends one tus request; a failed connection is status 0,
// which a resuming client survives.
func resumeRequest(t *testing.T, method, url string, headers map[string]string, body []byte) (int, http.Header) {
	t.Helper()
	resp, err := resumeClient.Do(newRequest(t, method, url, headers, body))
	if err != nil {
		t.Logf("%s: %v", method, err)
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// countStatus counts the exchanges of method that got status.
func countStatus(seen []exchange, method string, status int) int {
	n := 0
	for _, x := range seen {
		if x.method == method && x.status == status {
			n++
		}
	}
	return n
}

// checkNoHead5xx fails the test if any HEAD in seen answered a 5xx.
func checkNoHead5xx(t *testing.T, seen []exchange) {
	t.Helper()
	for _, x := range seen {
		if x.method == http.MethodHead && x.status >= 500 {
			t.Errorf("a HEAD answered %d: %v", x.status, seen)
			return
		}
	}
}

func TestFaultSlowUpstreamCompletes(t *testing.T) {
	t.Parallel()
	// Every upstream answer (init, HEAD, PATCH) takes 1.5 s; the upstream
	// timeout is above that, so slowness alone must cost nothing.
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_TIMEOUT": "10s", "TUSPROXY_INIT_TIMEOUT": "10s"})
	e.emu.SetFaults(kinescopetest.Faults{Latency: 1500 * time.Millisecond})
	data := testkit.RandomBytes(200_000)
	loc := e.create(int64(len(data)), meta("filename", "slow.mp4"))
	seen := uploadWithRetries(t, e, loc, data)
	if want := []exchange{{"HEAD", 200}, {"PATCH", 204}}; !equalExchanges(seen, want) {
		t.Errorf("a slow upstream disturbed the upload: %v, want %v", seen, want)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestFaultUpstreamTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_TIMEOUT": "500ms"})
	data := testkit.RandomBytes(600 << 10) // three upstream PATCHes of 256 KiB
	loc := e.create(int64(len(data)), meta("filename", "timeout.mp4"))
	e.emu.SetFaults(kinescopetest.Faults{Latency: 1500 * time.Millisecond})

	resp := e.patch(loc, 0, data)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("PATCH to an upstream slower than the timeout: status %d, want 504", resp.StatusCode)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("504 without Retry-After")
	}
	// The upstream cannot be asked in time: HEAD answers the record, which
	// is never ahead of what the upstream holds.
	resp = e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD while the upstream times out: status %d, want 200 from the record", resp.StatusCode)
	}
	if got, up := atoi(t, resp.Header.Get("Upload-Offset")), e.video(loc).Offset; got > up {
		t.Fatalf("HEAD answered %d, beyond the %d bytes the upstream holds", got, up)
	}

	e.emu.SetFaults(kinescopetest.Faults{})
	seen := uploadWithRetries(t, e, loc, data)
	checkNoHead5xx(t, seen)
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != int64(len(data)) {
		t.Fatalf("HEAD after completion: %d, want %d", got, len(data))
	}
}

func TestFaultUpstreamRefusesConnections(t *testing.T) {
	t.Parallel()
	link := newFlakyLink(t)
	// Init and the issued endpoints both go through the link: the emulator
	// builds endpoints from the Host its init request was sent to.
	e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": link.url() + "/v2/init"})
	link.setTarget(strings.TrimPrefix(e.emu.URL, "http://"))

	data := testkit.RandomBytes(300_000)
	const half = 150_000
	loc := e.create(int64(len(data)), meta("filename", "refused.mp4"))
	if resp := e.patch(loc, 0, data[:half]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: status %d", resp.StatusCode)
	}

	link.down()
	initsBefore := e.emu.Stats().Init
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "1000"}, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("creation while Kinescope refuses connections: status %d, Retry-After %q; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := e.patch(loc, half, data[half:]); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("PATCH while the upstream refuses connections: status %d, want 502", resp.StatusCode)
	}
	resp = e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != itoa(half) {
		t.Fatalf("HEAD while the upstream refuses connections: status %d offset %q; want 200 from the record (%d)",
			resp.StatusCode, resp.Header.Get("Upload-Offset"), half)
	}
	if got := e.emu.Stats().Init; got != initsBefore {
		t.Errorf("the emulator saw %d init calls through a closed link", got-initsBefore)
	}

	link.up()
	seen := uploadWithRetries(t, e, loc, data)
	checkNoHead5xx(t, seen)
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestFaultUpstreamCutsEveryThirdPatch(t *testing.T) {
	t.Parallel()
	// 64 KiB upstream chunks: one client PATCH spans many upstream PATCHes,
	// and every third of those loses its connection after 20 000 bytes.
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "64KiB"})
	data := testkit.RandomBytes(1<<20 + 123)
	loc := e.create(int64(len(data)), meta("filename", "cut.mp4"))
	e.emu.SetFaults(kinescopetest.Faults{CutPatchEvery: 3, CutPatchAfter: 20_000})

	seen := uploadWithRetries(t, e, loc, data)
	checkNoHead5xx(t, seen)
	if countStatus(seen, http.MethodPatch, http.StatusBadGateway) == 0 {
		t.Fatalf("no PATCH failed although the upstream cut connections: %v", seen)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
	t.Logf("exchanges: %v", seen)
}

func TestFaultUpstreamFailsEveryNthRequest(t *testing.T) {
	t.Parallel()
	// Every 2nd is the hard one: a client's HEAD/PATCH rounds then keep the
	// same parity, so one extra upstream request per round (as a re-check of
	// the offset before each PATCH once was) makes every round fail.
	for _, every := range []int{2, 4, 5} {
		t.Run("every "+strconv.Itoa(every), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "64KiB"})
			data := testkit.RandomBytes(512<<10 + 7)
			loc := e.create(int64(len(data)), meta("filename", "flaky.mp4"))
			e.emu.SetFaults(kinescopetest.Faults{FailEvery: every, FailStatus: http.StatusServiceUnavailable})

			seen := uploadWithRetries(t, e, loc, data)
			checkNoHead5xx(t, seen)
			if countStatus(seen, http.MethodPatch, http.StatusBadGateway) == 0 {
				t.Fatalf("no PATCH failed although the upstream failed every %dth request: %v", every, seen)
			}
			testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
		})
	}
}

func TestFaultUpstreamWrongOffset(t *testing.T) {
	t.Parallel()
	// Every upstream PATCH answer claims one byte more than was stored. Each
	// client PATCH then fails after one 64 KiB chunk, yet the record follows
	// what the upstream really holds, so resuming still finishes the file.
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "64KiB"})
	data := testkit.RandomBytes(200_000)
	loc := e.create(int64(len(data)), meta("filename", "liar.mp4"))
	e.emu.SetFaults(kinescopetest.Faults{WrongOffset: true})

	if resp := e.patch(loc, 0, data); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("PATCH answered by a lying upstream: status %d, want 502", resp.StatusCode)
	}
	up := e.video(loc).Offset
	if up <= 0 {
		t.Fatalf("the upstream holds %d bytes after the first chunk", up)
	}
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != up {
		t.Fatalf("HEAD answered %d, the upstream holds %d: the record must follow the upstream's real offset", got, up)
	}

	seen := uploadWithRetries(t, e, loc, data)
	checkNoHead5xx(t, seen)
	if n := countStatus(seen, http.MethodPatch, http.StatusNoContent); n != 0 {
		t.Errorf("%d PATCHes succeeded although every upstream answer lied: %v", n, seen)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func equalExchanges(a, b []exchange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// flakyLink is a TCP forwarder in front of the emulator that can go down
// (connections refused, open ones closed) and come back on the same
// address, so that endpoints issued through it keep working afterwards.
type flakyLink struct {
	t    *testing.T
	addr string // host:port, fixed once the first listener is up

	mu     sync.Mutex
	target string
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newFlakyLink(t *testing.T) *flakyLink {
	t.Helper()
	l := &flakyLink{t: t, addr: "127.0.0.1:0", conns: make(map[net.Conn]struct{})}
	l.up()
	t.Cleanup(func() {
		l.down()
		l.wg.Wait()
	})
	return l
}

func (l *flakyLink) url() string { return "http://" + l.addr }

func (l *flakyLink) setTarget(hostport string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.target = hostport
}

// up listens again, on the address of the first listener.
func (l *flakyLink) up() {
	l.t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		l.t.Fatalf("flaky link: listen again on %s: %v", l.addr, err)
	}
	l.addr = ln.Addr().String()
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			l.forward(conn)
		}
	}()
}

// down closes the listener, so new connections are refused, and every
// connection through the link, so pooled keep-alive connections die too.
func (l *flakyLink) down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	for c := range l.conns {
		c.Close()
		delete(l.conns, c)
	}
}

func (l *flakyLink) forward(client net.Conn) {
	l.mu.Lock()
	target := l.target
	l.mu.Unlock()
	server, err := net.Dial("tcp", target)
	if err != nil {
		client.Close()
		return
	}
	l.mu.Lock()
	if l.ln == nil { // went down meanwhile
		l.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	l.conns[client], l.conns[server] = struct{}{}, struct{}{}
	l.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		defer l.wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		l.mu.Lock()
		delete(l.conns, dst)
		delete(l.conns, src)
		l.mu.Unlock()
	}
	l.wg.Add(2)
	go pipe(server, client)
	go pipe(client, server)
}
