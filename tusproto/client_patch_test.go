package tusproto_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// onlyReader hides every method but Read, so neither the transport nor
// NewRequest recognises the body and takes a shortcut.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// protocols are the ways the upstream is reached in body tests: through an
// HTTP transport on HTTP/1.1 and HTTP/2, and through Conns (how tusproxy
// sends PATCHes).
var protocols = []struct {
	name  string
	http2 bool
	conns bool
}{
	{"http1", false, false},
	{"http2", true, false},
	{"conns", false, true},
}

func TestPatchWholeUpload(t *testing.T) {
	tests := []struct {
		name string
		size func(data []byte) int64
	}{
		{"content length", func(data []byte) int64 { return int64(len(data)) }},
		{"chunked", func([]byte) int64 { return -1 }},
	}
	for _, protocol := range protocols {
		for _, test := range tests {
			t.Run(protocol.name+"/"+test.name, func(t *testing.T) {
				up := newUpstreamOver(t, protocol.http2)
				client := up.client(t, protocol.conns)
				data := testkit.RandomBytes(3<<20 + 17)
				endpoint := up.create(t, int64(len(data)))

				newOffset, err := client.Patch(context.Background(), endpoint, 0, onlyReader{bytes.NewReader(data)}, test.size(data))
				if err != nil {
					t.Fatalf("Patch: %v", err)
				}
				if newOffset != int64(len(data)) {
					t.Errorf("new offset %d, want %d", newOffset, len(data))
				}
				if stored := up.stored(t, endpoint); !bytes.Equal(stored, data) {
					t.Errorf("upstream holds %d bytes that differ from the %d sent", len(stored), len(data))
				}
				if want := map[bool]int32{false: 1, true: 2}[protocol.http2]; up.patchProto.Load() != want {
					t.Errorf("upstream saw HTTP/%d, want HTTP/%d", up.patchProto.Load(), want)
				}
			})
		}
	}
}

func TestPatchInPiecesFromOneReader(t *testing.T) {
	for _, protocol := range protocols {
		t.Run(protocol.name, func(t *testing.T) {
			up := newUpstreamOver(t, protocol.http2)
			client := up.client(t, protocol.conns)
			data := testkit.RandomBytes(1<<20 + 5)
			endpoint := up.create(t, int64(len(data)))

			// One reader feeds every piece, as one client PATCH feeds several
			// upstream ones: Patch must not read past the size it was given.
			body := onlyReader{bytes.NewReader(data)}
			pieces := []int64{0, 1, 64 << 10, 300 << 10, 1<<20 + 5 - 1 - 64<<10 - 300<<10}
			var offset int64
			for _, piece := range pieces {
				newOffset, err := client.Patch(context.Background(), endpoint, offset, body, piece)
				if err != nil {
					t.Fatalf("Patch %d bytes at %d: %v", piece, offset, err)
				}
				up.awaitPatch(t)
				if newOffset != offset+piece {
					t.Fatalf("Patch %d bytes at %d: new offset %d, want %d", piece, offset, newOffset, offset+piece)
				}
				offset = newOffset
			}
			if offset != int64(len(data)) {
				t.Fatalf("pieces add up to %d, want %d", offset, len(data))
			}
			if stored := up.stored(t, endpoint); !bytes.Equal(stored, data) {
				t.Errorf("upstream holds %d bytes that differ from the %d sent", len(stored), len(data))
			}
		})
	}
}

func TestPatchStatusFromTusd(t *testing.T) {
	up := newUpstream(t)
	client := newClient(t)
	ctx := context.Background()
	endpoint := up.create(t, 100)
	if _, err := client.Patch(ctx, endpoint, 0, strings.NewReader("0123456789"), 10); err != nil {
		t.Fatalf("first Patch: %v", err)
	}
	up.awaitPatch(t)

	t.Run("wrong offset", func(t *testing.T) {
		_, err := client.Patch(ctx, endpoint, 5, strings.NewReader("abcde"), 5)
		up.awaitPatch(t)
		upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint)
		if upstreamErr.Status != http.StatusConflict || upstreamErr.Gone() || upstreamErr.Temporary() {
			t.Errorf("got status %d, Gone %v, Temporary %v; want 409, false, false",
				upstreamErr.Status, upstreamErr.Gone(), upstreamErr.Temporary())
		}
		if stored := up.stored(t, endpoint); string(stored) != "0123456789" {
			t.Errorf("upstream holds %q after a rejected Patch", stored)
		}
	})
	t.Run("unknown upload", func(t *testing.T) {
		unknown := up.server.URL + "/files/ffffffffffffffff"
		_, err := client.Patch(ctx, unknown, 0, strings.NewReader("abc"), 3)
		if upstreamErr := upstreamError(t, err, tusproto.KindStatus, unknown); !upstreamErr.Gone() {
			t.Errorf("got status %d, want Gone", upstreamErr.Status)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		newOffset, err := client.Patch(ctx, endpoint, 10, nil, 0)
		if err != nil || newOffset != 10 {
			t.Errorf("Patch of nothing = %d, %v; want 10, nil", newOffset, err)
		}
	})
}

func TestPatchRejectsBadUploadOffset(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(offset, received int64) string // Upload-Offset answered; "" for none
		status     int
		wantOffset func(offset, received int64) int64
	}{
		{"offset one too far", func(o, n int64) string { return tusproto.FormatSize(o + n + 1) }, http.StatusNoContent,
			func(o, n int64) int64 { return o + n + 1 }},
		{"offset not advanced", func(o, n int64) string { return tusproto.FormatSize(o) }, http.StatusOK,
			func(o, n int64) int64 { return o }},
		{"offset missing", func(int64, int64) string { return "" }, http.StatusNoContent,
			func(int64, int64) int64 { return -1 }},
		{"offset not a number", func(int64, int64) string { return "0x10" }, http.StatusNoContent,
			func(int64, int64) int64 { return -1 }},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				offset, _ := tusproto.ParseSize(r.Header.Get("Upload-Offset"))
				received, _ := io.Copy(io.Discard, r.Body)
				if answer := test.answer(offset, received); answer != "" {
					w.Header().Set("Upload-Offset", answer)
				}
				w.WriteHeader(test.status)
			}))
			t.Cleanup(server.Close)
			endpoint := server.URL + "/upload/secret-id"

			const offset, size = 7, 20
			_, err := newClient(t).Patch(context.Background(), endpoint, offset, strings.NewReader(strings.Repeat("z", size)), size)
			upstreamErr := upstreamError(t, err, tusproto.KindBadResponse, endpoint)
			if want := test.wantOffset(offset, size); upstreamErr.Offset != want || upstreamErr.Status != test.status {
				t.Errorf("got Offset %d, Status %d; want %d, %d", upstreamErr.Offset, upstreamErr.Status, want, test.status)
			}
		})
	}
}

// failingReader yields data, then fails with err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

var errClientGone = errors.New("tus client went away")

func TestPatchBodyFailure(t *testing.T) {
	const total, delivered = 1 << 20, 300<<10 + 3
	payload := testkit.RandomBytes(delivered)
	tests := []struct {
		name      string
		body      io.Reader
		size      int64
		wantCause error
	}{
		{"reader fails, content length", &failingReader{payload, errClientGone}, total, errClientGone},
		{"reader fails, chunked", &failingReader{payload, errClientGone}, -1, errClientGone},
		{"reader ends early", onlyReader{bytes.NewReader(payload)}, total, io.ErrUnexpectedEOF},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			up := newUpstream(t)
			client := newClient(t)
			endpoint := up.create(t, total)

			_, err := client.Patch(context.Background(), endpoint, 0, test.body, test.size)
			up.awaitPatch(t)
			upstreamErr := upstreamError(t, err, tusproto.KindBody, endpoint)
			if !errors.Is(err, test.wantCause) {
				t.Errorf("error %q does not wrap %q", err, test.wantCause)
			}
			if upstreamErr.Temporary() || upstreamErr.Gone() {
				t.Errorf("a body failure must be neither temporary nor gone")
			}

			// The upstream keeps what reached it, never more than was read.
			state, err := client.Head(context.Background(), endpoint)
			if err != nil {
				t.Fatalf("Head after failed Patch: %v", err)
			}
			if state.Offset > delivered {
				t.Errorf("upstream offset %d is beyond the %d bytes the body delivered", state.Offset, delivered)
			}
			stored := up.stored(t, endpoint)
			if int64(len(stored)) != state.Offset || !bytes.Equal(stored, payload[:len(stored)]) {
				t.Errorf("upstream holds %d bytes at offset %d that are not a prefix of the body", len(stored), state.Offset)
			}
		})
	}
}

// blockingReader blocks in its first Read until release is closed.
type blockingReader struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int32
	inRead  atomic.Bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	b.inRead.Store(true)
	defer b.inRead.Store(false)
	if b.calls.Add(1) == 1 {
		close(b.entered)
		<-b.release
	}
	return copy(p, "some bytes"), nil
}

func TestPatchNeverReturnsDuringBodyRead(t *testing.T) {
	body := &blockingReader{entered: make(chan struct{}), release: make(chan struct{})}
	released := false
	t.Cleanup(func() {
		if !released {
			close(body.release)
		}
	})
	// The upstream refuses the upload without reading it, but only once the
	// transport is stuck in the body's first Read, so the answer always
	// arrives during that Read. Closing the body of a large Content-Length
	// request makes Go's server answer at once instead of draining it first.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-body.entered
		_ = r.Body.Close()
		w.WriteHeader(http.StatusConflict)
	}))
	t.Cleanup(server.Close)
	endpoint := server.URL + "/upload/secret-id"
	client := newClient(t)
	// The transport reads the body on a goroutine of its own, and the
	// answer on another: the case at stake. Conns read both on Patch's.
	client.Conns = nil

	gotResponse := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotFirstResponseByte: func() { close(gotResponse) },
	})
	type result struct {
		err          error
		readInFlight bool
	}
	done := make(chan result, 1)
	go func() {
		_, err := client.Patch(ctx, endpoint, 0, body, 10<<20)
		done <- result{err, body.inRead.Load()}
	}()

	select {
	case <-gotResponse:
	case res := <-done:
		t.Fatalf("Patch returned before the upstream answered: %v", res.err)
	}
	// The answer is in while the transport is stuck in Read. A Patch that
	// returned now would leave the caller's reader in use; this wait can only
	// miss such a bug, never report a false one.
	select {
	case <-done:
		t.Fatal("Patch returned while a Read on its body was in progress")
	case <-time.After(100 * time.Millisecond):
	}
	close(body.release)
	released = true

	res := <-done
	upstreamError(t, res.err, tusproto.KindStatus, endpoint)
	if res.readInFlight {
		t.Error("a Read on the body was in progress when Patch returned")
	}
	if calls := body.calls.Load(); calls != 1 {
		t.Errorf("body read %d times; the transport must be cut off after the answer", calls)
	}
}

func TestRequestHeaders(t *testing.T) {
	type seen struct {
		method, tusResumable, userAgent, contentType, uploadOffset string
		contentLength                                              int64
		transferEncoding                                           []string
		body                                                       string
	}
	// Buffered so that a handler never waits for a test that has given up.
	requests := make(chan seen, 10)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		requests <- seen{
			method:           r.Method,
			tusResumable:     r.Header.Get("Tus-Resumable"),
			userAgent:        r.Header.Get("User-Agent"),
			contentType:      r.Header.Get("Content-Type"),
			uploadOffset:     r.Header.Get("Upload-Offset"),
			contentLength:    r.ContentLength,
			transferEncoding: r.TransferEncoding,
			body:             string(body),
		}
		offset, _ := tusproto.ParseSize(r.Header.Get("Upload-Offset"))
		w.Header().Set("Upload-Offset", tusproto.FormatSize(offset+int64(len(body))))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(server.Close)
	endpoint := server.URL + "/upload/id"
	client := newClient(t)
	ctx := context.Background()

	tests := []struct {
		name string
		call func() error
		want seen
	}{
		{"head", func() error { _, err := client.Head(ctx, endpoint); return err },
			seen{method: "HEAD"}},
		{"delete", func() error { return client.Delete(ctx, endpoint) },
			seen{method: "DELETE"}},
		{"patch with length", func() error {
			_, err := client.Patch(ctx, endpoint, 42, onlyReader{strings.NewReader("hello, tus")}, 5)
			return err
		}, seen{method: "PATCH", contentType: "application/offset+octet-stream", uploadOffset: "42", contentLength: 5, body: "hello"}},
		{"patch chunked", func() error {
			_, err := client.Patch(ctx, endpoint, 0, onlyReader{strings.NewReader("hello, tus")}, -1)
			return err
		}, seen{method: "PATCH", contentType: "application/offset+octet-stream", uploadOffset: "0", contentLength: -1,
			transferEncoding: []string{"chunked"}, body: "hello, tus"}},
		{"patch empty", func() error { _, err := client.Patch(ctx, endpoint, 3, nil, 0); return err },
			seen{method: "PATCH", contentType: "application/offset+octet-stream", uploadOffset: "3"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			err := test.call()
			var got seen
			select {
			case got = <-requests:
			default:
				t.Fatalf("the upstream saw no request; call error: %v", err)
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			test.want.tusResumable = "1.0.0"
			test.want.userAgent = "tusproxy-test"
			if got.method != test.want.method || got.tusResumable != test.want.tusResumable ||
				got.userAgent != test.want.userAgent || got.contentType != test.want.contentType ||
				got.uploadOffset != test.want.uploadOffset || got.contentLength != test.want.contentLength ||
				strings.Join(got.transferEncoding, ",") != strings.Join(test.want.transferEncoding, ",") ||
				got.body != test.want.body {
				t.Errorf("upstream saw %+v\nwant %+v", got, test.want)
			}
		})
	}
}
