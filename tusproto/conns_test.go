package tusproto_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// countConns counts the connections the upstream's server accepts.
func countConns(up *upstream) *atomic.Int32 {
	var opened atomic.Int32
	up.server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	return &opened
}

func TestConnsReuseTheirConnection(t *testing.T) {
	up := newUnstartedUpstream(t)
	opened := countConns(up)
	up.server.Start()
	client := newClient(t)
	ctx := context.Background()
	data := testkit.RandomBytes(100)
	endpoint := up.create(t, int64(len(data)))
	opened.Store(0) // the creation's, on another client

	for offset := int64(0); offset < 100; offset += 20 {
		if _, err := client.Patch(ctx, endpoint, offset, strings.NewReader(string(data[offset:offset+20])), 20); err != nil {
			t.Fatalf("Patch at %d: %v", offset, err)
		}
		up.awaitPatch(t)
	}
	// An answer refusing a PATCH, with a body, leaves the connection usable.
	if _, err := client.Patch(ctx, endpoint, 0, strings.NewReader("x"), 1); err == nil {
		t.Fatal("a Patch at a wrong offset succeeded")
	}
	up.awaitPatch(t)
	if _, err := client.Patch(ctx, endpoint, 100, nil, 0); err != nil {
		t.Fatalf("empty Patch at the end: %v", err)
	}
	up.awaitPatch(t)
	if n := opened.Load(); n != 1 {
		t.Errorf("7 PATCHes in a row opened %d connections, want 1", n)
	}
	if stored := up.stored(t, endpoint); string(stored) != string(data) {
		t.Errorf("upstream holds %d bytes that differ from the 100 sent", len(stored))
	}
}

func TestConnsReplaceAConnectionItsPeerClosed(t *testing.T) {
	up := newUnstartedUpstream(t)
	opened := countConns(up)
	// The upstream closes a connection idle for 20 ms: the client's kept
	// one is closed when the second PATCH comes.
	up.server.Config.IdleTimeout = 20 * time.Millisecond
	up.server.Start()
	client := newClient(t)
	ctx := context.Background()
	endpoint := up.create(t, 8)
	opened.Store(0) // the creation's, on another client

	if _, err := client.Patch(ctx, endpoint, 0, strings.NewReader("abcd"), 4); err != nil {
		t.Fatalf("first Patch: %v", err)
	}
	up.awaitPatch(t)
	time.Sleep(200 * time.Millisecond)
	if _, err := client.Patch(ctx, endpoint, 4, strings.NewReader("efgh"), 4); err != nil {
		t.Fatalf("Patch after the upstream closed the idle connection: %v", err)
	}
	up.awaitPatch(t)
	if n := opened.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2 (the first closed by the upstream)", n)
	}
	if stored := up.stored(t, endpoint); string(stored) != "abcdefgh" {
		t.Errorf("upstream holds %q, want abcdefgh", stored)
	}
}

// endless is a body that never ends, counting what was read of it.
type endless struct{ read atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.read.Add(int64(len(p)))
	return len(p), nil
}

func TestConnsReadAnAnswerThatRefusesTheBody(t *testing.T) {
	// The upstream refuses the upload without reading its body and closes
	// the connection, as Go's server does past 256 KiB unread: the client's
	// writes fail, and the answer is what it reports.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "too large")
	}))
	t.Cleanup(server.Close)
	endpoint := server.URL + "/upload/secret-id"
	body := &endless{}
	const size = 1 << 40
	_, err := newClient(t).Patch(context.Background(), endpoint, 0, body, size)
	upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint)
	if upstreamErr.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", upstreamErr.Status)
	}
	if read := body.read.Load(); read >= size {
		t.Errorf("the whole body (%d bytes) was read", read)
	}
}

func TestConnsAnswerTimeout(t *testing.T) {
	endpoint, _ := blockingServer(t)
	client := newClient(t)
	client.Conns.AnswerTimeout = 50 * time.Millisecond

	began := time.Now()
	_, err := client.Patch(context.Background(), endpoint, 0, strings.NewReader("data"), 4)
	if upstreamErr := upstreamError(t, err, tusproto.KindTimeout, endpoint); !upstreamErr.Temporary() {
		t.Error("a timeout must be temporary")
	}
	// Generous: only a wait for the blocking server's release (the test's
	// end) would take this long.
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("Patch took %v with an answer timeout of 50ms", waited)
	}
}

func TestConnsRefuseOtherSchemes(t *testing.T) {
	endpoint := "ftp://example.com/upload/secret-id"
	_, err := newClient(t).Patch(context.Background(), endpoint, 0, strings.NewReader("x"), 1)
	upstreamError(t, err, tusproto.KindNetwork, endpoint)
}

// gatedReader blocks its first Read until open is closed.
type gatedReader struct {
	open chan struct{}
	r    io.Reader
	once atomic.Bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.once.CompareAndSwap(false, true) {
		<-g.open
	}
	return g.r.Read(p)
}

func TestConnsSendNothingBeforeTheBody(t *testing.T) {
	up := newUnstartedUpstream(t)
	opened := countConns(up)
	up.server.Start()
	client := newClient(t)
	endpoint := up.create(t, 4)
	opened.Store(0) // the creation's, on another client

	body := &gatedReader{open: make(chan struct{}), r: strings.NewReader("abcd")}
	done := make(chan error, 1)
	go func() {
		_, err := client.Patch(context.Background(), endpoint, 0, body, 4)
		done <- err
	}()
	// A client slow to start costs no upstream connection: an upstream
	// bounding its wait for a body would otherwise give up on it. (Waiting
	// longer could only miss an early connection, never invent one.)
	time.Sleep(100 * time.Millisecond)
	if n := opened.Load(); n != 0 {
		t.Errorf("%d upstream connections opened before the body's first byte", n)
	}
	close(body.open)
	if err := <-done; err != nil {
		t.Fatalf("Patch: %v", err)
	}
	up.awaitPatch(t)
	if stored := up.stored(t, endpoint); string(stored) != "abcd" {
		t.Errorf("upstream holds %q, want abcd", stored)
	}
}
