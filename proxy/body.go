package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
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

	stop atomic.Pointer[Error] // why the service stopped reading, if it did

	mu  sync.Mutex
	err error // first read failure of the client's body
}

func (s *Service) newBodyReader(w http.ResponseWriter, r *http.Request) *bodyReader {
	info := infoFrom(r)
	if info == nil {
		info = &requestInfo{} // outside the logging middleware: count all the same
	}
	return &bodyReader{src: r.Body, rc: http.NewResponseController(w), info: info,
		idle: s.cfg.BodyIdleTimeout, total: &s.metrics.received}
}

// bytesRead counts the bytes read from this body so far. It is the request's
// own counter (its log line's bytes_in): one request has one body, so the
// per-upload metrics read it rather than keep another.
func (b *bodyReader) bytesRead() *atomic.Int64 { return &b.info.bytesIn }

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
	if b.idle > 0 {
		if now := time.Now(); b.deadline.Sub(now) < b.idle {
			b.deadline = now.Add(b.idle + b.idle/idleSlack)
			_ = b.rc.SetReadDeadline(b.deadline)
		}
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

// interrupt stops the body: the next Read fails with reason, and a Read
// blocked on a silent client returns at once (tusd does the same with a read
// deadline in the past).
func (b *bodyReader) interrupt(reason *Error) {
	if b.stop.CompareAndSwap(nil, reason) {
		_ = b.rc.SetReadDeadline(time.Now())
	}
}

// failure is the reason reading the body failed, as an answer for the
// client: nil while the body is fine.
func (b *bodyReader) failure() *Error {
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
