package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// bodyReader is a client's request body on its way to the upstream. Unlike
// tusd's body reader it reports every failure (a vanished client, a lock
// take-over, a shutdown) as an error, so the upstream request is cut short
// and the caller knows to ask the upstream what it kept. Read is called from
// the HTTP transport's goroutine; interrupt from any goroutine.
type bodyReader struct {
	src  io.Reader
	rc   *http.ResponseController
	info *requestInfo
	idle time.Duration // a Read waiting longer for the client fails
	// deadline is the read deadline last set. Setting one costs a lock and
	// a timer update, which every Read used to pay; it is moved only when
	// less than idle remains (see Read).
	deadline time.Time

	total *atomic.Int64 // bytes read from every client (a metric)

	// A body that delivers less than minRate bytes a second over a window
	// is interrupted with errClientTooSlow: the caller records what the
	// upstream kept and the client resumes. Off when minRate is 0.
	minRate     int64
	window      time.Duration
	windowStart time.Time // zero until the first Read
	windowFrom  int64     // bytes read when the window began

	stop atomic.Pointer[Error] // why the service stopped reading, if it did

	mu  sync.Mutex
	err error // first read failure of the client's body
}

var _ upload.Body = (*bodyReader)(nil)

func (s *Service) newBodyReader(w http.ResponseWriter, r *http.Request) *bodyReader {
	info := infoFrom(r)
	if info == nil {
		info = &requestInfo{} // outside the logging middleware: count all the same
	}
	return &bodyReader{src: r.Body, rc: http.NewResponseController(w), info: info,
		idle: s.cfg.BodyIdleTimeout, total: &s.metrics.received,
		minRate: s.cfg.MinBodyRate, window: s.cfg.MinBodyRateWindow}
}

// idleSlack divides the body idle timeout into the steps by which the read
// deadline moves: it is set idle + idle/idleSlack ahead, and moved again
// once less than idle remains. A silent client is thus cut after idle at
// the earliest (never sooner than configured) and idle/idleSlack later at
// the most, and a fast one costs one deadline update per idle/idleSlack
// instead of one per Read.
const idleSlack = 16

func (b *bodyReader) Read(p []byte) (int, error) {
	// Extend the deadline before checking stop: interrupt sets stop first and
	// then a deadline in the past, so one of the two always wins over this.
	// Read is never called concurrently (the transport's goroutine, or the
	// caller's once the transport is done with the body).
	now := time.Now()
	if b.idle > 0 && b.deadline.Sub(now) < b.idle {
		b.deadline = now.Add(b.idle + b.idle/idleSlack)
		_ = b.rc.SetReadDeadline(b.deadline)
	}
	// The rate costs one comparison per Read, and a little more once per
	// window.
	if b.minRate > 0 && now.Sub(b.windowStart) >= b.window {
		b.endWindow(now)
	}
	if stop := b.stop.Load(); stop != nil {
		return 0, stop
	}
	n, err := b.src.Read(p)
	if n > 0 {
		b.info.bytesIn.Add(int64(n))
		b.total.Add(int64(n))
	}
	if err != nil && err != io.EOF {
		if stop := b.stop.Load(); stop != nil {
			err = stop // the read failed because interrupt set a deadline
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			err = errClientStalled
			b.stop.CompareAndSwap(nil, errClientStalled)
		}
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// endWindow closes the minimum rate's current window: a body that delivered
// less than minRate a second over it is interrupted (so net/http does not
// wait for the rest of it either); any other begins the next window. It runs
// as a Read begins, so between bytes: a client that sends nothing at all is
// the idle timeout's to cut. The first Read opens the first window, so what
// comes before the body is read (the upload's lock, the upstream's dial)
// never counts against the client. Time the upstream takes to accept bytes
// does count: Kinescope taking less than the minimum rate is an outage, and
// the client resumes all the same.
func (b *bodyReader) endWindow(now time.Time) {
	read := b.info.bytesIn.Load()
	if !b.windowStart.IsZero() {
		if elapsed := now.Sub(b.windowStart); float64(read-b.windowFrom) < float64(b.minRate)*elapsed.Seconds() {
			b.interrupt(errClientTooSlow)
			return
		}
	}
	b.windowStart, b.windowFrom = now, read
}

// release is how a later request for the same upload asks this one to let
// go: stop reading the body, so the lifecycle records what the upstream kept
// and releases the lock.
func (b *bodyReader) release() { b.interrupt(errInterrupted) }

// interrupt stops the body: the next Read fails with reason, and a Read
// blocked on a silent client returns at once (tusd does the same with a read
// deadline in the past).
func (b *bodyReader) interrupt(reason *Error) {
	if b.stop.CompareAndSwap(nil, reason) {
		_ = b.rc.SetReadDeadline(time.Now())
	}
}

// Failure is the reason reading the body failed, as an answer for the
// client: nil while the body is fine (upload.Body).
func (b *bodyReader) Failure() error {
	if stop := b.stop.Load(); stop != nil {
		return stop
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return errClientGone
	}
	return nil
}

// Received counts the bytes read from this body so far (upload.Body). It is
// the request's own counter (its log line's bytes_in): one request has one
// body, so the per-upload metrics read it rather than keep another.
func (b *bodyReader) Received() int64 { return b.info.bytesIn.Load() }

// boundBodies keeps request bodies from holding connections. When a handler
// returns without reading its body to the end, net/http reads up to 256 KiB
// more of it to reuse the connection, under no deadline of its own: a
// client that announces a Content-Length and never sends the body would
// hold a connection and a goroutine forever (issue 11: 2000 of them on GET
// /healthz). So every body is read under the body idle timeout:
//
//   - POST and PATCH get a read deadline of now + the idle timeout before
//     the handler runs. A handler that reads the body moves it as it reads
//     (bodyReader, readSeedRequest); one that answers without reading leaves
//     it, so what net/http drains afterwards is bounded by it. Reaching the
//     body's end clears it (net/http then watches for the client leaving).
//   - Other methods take no body: it is not drained at all. They answer with
//     Connection: close, and once the handler returns the read deadline is
//     now, so net/http waits for nothing.
func (s *Service) boundBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.ProtoMajor != 1 {
			// No body; or HTTP/2, where an unread body is reset with its
			// stream alone (and Connection: close would end every stream).
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if r.Method == http.MethodPost || r.Method == http.MethodPatch {
			_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyIdleTimeout))
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		defer func() { _ = rc.SetReadDeadline(time.Now()) }()
		next.ServeHTTP(w, r)
	})
}
