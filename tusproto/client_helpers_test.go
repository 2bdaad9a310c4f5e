package tusproto_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

func TestMain(m *testing.M) {
	// tusd logs every request through x/exp/slog's default handler, which
	// writes to the standard logger.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// upstream is a real tus server: tusd's handler over a filestore in a
// temporary directory, reached over loopback.
type upstream struct {
	server *httptest.Server
	dir    string
	// patchesDone receives once per PATCH whose handling has ended.
	patchesDone chan struct{}
	// patchProto is the protocol major version of the last PATCH received.
	patchProto atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	return newUpstreamOver(t, false)
}

// newUpstreamOver starts the upstream over TLS with HTTP/2 when http2 is
// set, as Kinescope's HTTPS upload endpoints are likely to answer: the
// HTTP/2 transport reads request bodies differently from HTTP/1.1.
func newUpstreamOver(t *testing.T, http2 bool) *upstream {
	t.Helper()
	up := newUnstartedUpstream(t)
	if http2 {
		up.server.EnableHTTP2 = true
		up.server.StartTLS()
	} else {
		up.server.Start()
	}
	return up
}

// newUnstartedUpstream is the upstream with its server not yet started, to
// be configured first.
func newUnstartedUpstream(t *testing.T) *upstream {
	t.Helper()
	dir := t.TempDir()
	composer := handler.NewStoreComposer()
	filestore.New(dir).UseIn(composer)
	memorylocker.New().UseIn(composer)
	tusHandler, err := handler.NewHandler(handler.Config{
		BasePath:      "/files/",
		StoreComposer: composer,
	})
	if err != nil {
		t.Fatalf("handler.NewHandler: %v", err)
	}
	up := &upstream{dir: dir, patchesDone: make(chan struct{}, 100)}
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			up.patchProto.Store(int32(r.ProtoMajor))
			defer func() {
				select {
				case up.patchesDone <- struct{}{}:
				default:
				}
			}()
		}
		tusHandler.ServeHTTP(w, r)
	})))
	up.server = httptest.NewUnstartedServer(mux)
	t.Cleanup(up.server.Close)
	return up
}

// awaitPatch waits until the upstream has finished handling one more PATCH.
//
// tusd v2.9.1 answers a PATCH before it releases the upload's lock, and a
// request that finds the lock taken interrupts the holder through a context
// goroutine that reads a field the PATCH handler wrote without
// synchronisation: a data race inside tusd that -race reports. Tests that
// send another request for the same upload right after a PATCH wait here
// first. The timeout only keeps a broken test from hanging.
func (u *upstream) awaitPatch(t *testing.T) {
	t.Helper()
	select {
	case <-u.patchesDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream did not finish handling a PATCH")
	}
}

// create makes an upload with a tus creation request and returns its
// absolute URL. length < 0 defers the length.
func (u *upstream) create(t *testing.T, length int64) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u.server.URL+"/files/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if length < 0 {
		req.Header.Set("Upload-Defer-Length", "1")
	} else {
		req.Header.Set("Upload-Length", tusproto.FormatSize(length))
	}
	resp, err := u.server.Client().Do(req)
	if err != nil {
		t.Fatalf("create upload: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("create upload: status %d: %s", resp.StatusCode, body)
	}
	location, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("create upload: bad Location: %v", err)
	}
	base, _ := url.Parse(u.server.URL + "/files/")
	return base.ResolveReference(location).String()
}

// stored returns the bytes the filestore holds for the upload at endpoint.
func (u *upstream) stored(t *testing.T, endpoint string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(u.dir, path.Base(endpoint)))
	if err != nil {
		t.Fatalf("read stored upload: %v", err)
	}
	return data
}

// client returns a client that trusts the upstream's certificate, with its
// own transport, and with Conns for its PATCHes when conns is set.
func (u *upstream) client(t *testing.T, conns bool) *tusproto.Client {
	t.Helper()
	transport := u.server.Client().Transport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	client := &tusproto.Client{HTTP: &http.Client{Transport: transport}}
	if conns {
		client.Conns = newConns(t)
	}
	return client
}

// newClient returns a client with its own transport and Conns (as tusproxy
// builds it), so that connection reuse in one test does not depend on
// another.
func newClient(t *testing.T) *tusproto.Client {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	return &tusproto.Client{HTTP: &http.Client{Transport: transport}, Conns: newConns(t), UserAgent: "tusproxy-test"}
}

// newConns returns Conns that dial plain TCP, with the transport's
// response-header timeout.
func newConns(t *testing.T) *tusproto.Conns {
	t.Helper()
	conns := &tusproto.Conns{
		Dial: func(ctx context.Context, scheme, addr string) (net.Conn, error) {
			if scheme != "http" {
				return nil, errors.New("these tests dial plain http only")
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		AnswerTimeout:  10 * time.Second,
		MaxIdlePerHost: 4,
		IdleTimeout:    time.Minute,
	}
	t.Cleanup(conns.CloseIdle)
	return conns
}

// upstreamError asserts that err is a *tusproto.Error of the given kind that
// does not reveal endpoint, anywhere in its chain, and returns it.
func upstreamError(t *testing.T, err error, kind tusproto.ErrorKind, endpoint string) *tusproto.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %v", kind)
	}
	assertNoEndpoint(t, err, endpoint)
	var upstreamErr *tusproto.Error
	if !errors.As(err, &upstreamErr) {
		t.Fatalf("error %q (%T) is not a *tusproto.Error", err, err)
	}
	if upstreamErr.Kind != kind {
		t.Fatalf("error %q has kind %v, want %v", err, upstreamErr.Kind, kind)
	}
	return upstreamErr
}

// assertNoEndpoint checks every error in err's chain: none may quote the
// endpoint, its path or its query, since those are upload capabilities.
func assertNoEndpoint(t *testing.T, err error, endpoint string) {
	t.Helper()
	secrets := []string{endpoint}
	if u, parseErr := url.Parse(endpoint); parseErr == nil {
		secrets = append(secrets, u.Path, path.Base(u.Path), u.RawQuery)
	}
	queue := []error{err}
	for len(queue) > 0 {
		current := queue[0]
		queue = queue[1:]
		if current == nil {
			continue
		}
		for _, secret := range secrets {
			if len(secret) > 1 && strings.Contains(current.Error(), secret) {
				t.Errorf("error %q (%T) reveals %q", current, current, secret)
			}
		}
		switch wrapper := current.(type) {
		case interface{ Unwrap() error }:
			queue = append(queue, wrapper.Unwrap())
		case interface{ Unwrap() []error }:
			queue = append(queue, wrapper.Unwrap()...)
		}
	}
}
