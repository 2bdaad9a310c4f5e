package tusproto

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Conns keeps the HTTP/1.1 connections a Client streams PATCHes on, and
// sends each PATCH on the caller's goroutine: it writes the request's head,
// copies the body through a buffer sized to what the reader has waiting
// (bodyCopy), then reads the answer.
//
// Through an http.Transport, each PATCH in flight also holds the two
// goroutines of its connection (read and write loops) and a 32 KiB copy
// buffer for as long as its body streams, which for a slow client is the
// upload's whole life: about half of what a proxy spends per open upload
// (issue 15). The transport also reads the answer while the body is still
// being written, to catch an early refusal; here an answer is looked for
// when a write fails (an upstream that refuses a body answers, then stops
// reading or closes), which is where tus servers send one.
type Conns struct {
	// Dial opens a connection to addr ("host:port") for scheme "http" or
	// "https"; an https connection comes back with its TLS handshake done.
	// It bounds its own time and sets any write timeouts. Required.
	Dial func(ctx context.Context, scheme, addr string) (net.Conn, error)
	// AnswerTimeout bounds the wait for an answer once the body is sent;
	// 0: only the caller's context does.
	AnswerTimeout time.Duration
	// MaxIdlePerHost is how many connections are kept for reuse per scheme
	// and address; 0 keeps none.
	MaxIdlePerHost int
	// IdleTimeout is how long a kept connection may wait for reuse; 0:
	// without limit.
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]idleConn // by scheme://addr, the most recently used last
}

type idleConn struct {
	conn  net.Conn
	since time.Time
}

// earlyAnswerWait is how long an answer is waited for after a body write
// failed: an upstream that refused the body has sent it already.
const earlyAnswerWait = time.Second

// CloseIdle closes the connections kept for reuse.
func (p *Conns) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.conn.Close()
		}
	}
}

// get returns a kept connection for key that its peer has not closed, or
// nil. Expired ones are closed on the way.
func (p *Conns) get(key string) net.Conn {
	now := time.Now()
	for {
		p.mu.Lock()
		conns := p.idle[key]
		if len(conns) == 0 {
			p.mu.Unlock()
			return nil
		}
		c := conns[len(conns)-1]
		p.idle[key] = conns[:len(conns)-1]
		p.mu.Unlock()
		if (p.IdleTimeout <= 0 || now.Sub(c.since) < p.IdleTimeout) && peerOpen(c.conn) {
			return c.conn
		}
		c.conn.Close()
	}
}

// put keeps conn for reuse, or closes it when key has enough kept; the
// oldest kept are closed once past the idle timeout.
func (p *Conns) put(key string, conn net.Conn) {
	now := time.Now()
	var stale []idleConn
	p.mu.Lock()
	if p.idle == nil {
		p.idle = make(map[string][]idleConn)
	}
	conns := p.idle[key]
	if p.IdleTimeout > 0 {
		i := 0
		for i < len(conns) && now.Sub(conns[i].since) >= p.IdleTimeout {
			i++
		}
		stale = append(stale, conns[:i]...)
		conns = append(conns[:0], conns[i:]...)
	}
	keep := len(conns) < p.MaxIdlePerHost
	if keep {
		conns = append(conns, idleConn{conn: conn, since: now})
	}
	p.idle[key] = conns
	p.mu.Unlock()
	if !keep {
		conn.Close()
	}
	for _, c := range stale {
		c.conn.Close()
	}
}

// exchange is one request sent on a connection: its answer, and what
// returns the connection once the answer's body is read.
type exchange struct {
	resp  *http.Response
	conns *Conns
	ctx   context.Context
	key   string // of the kept connections
	// scheme, addr and head are what open needs to take the connection
	// and send the request's head.
	scheme, addr string
	head         []byte
	conn         net.Conn // nil until the head is sent
	br           *bufio.Reader
	stop         func() bool // stops closing conn when the context ends
	// reusable: the whole request went out and the answer is the one
	// expected for it, so the connection may carry another once the
	// answer's body is read.
	reusable bool
}

// patch sends a PATCH to u whose head holds headers, with the body when
// size != 0: size bytes (body stops there by itself), or chunked to its
// end when size < 0. It returns the answer, or the first error: of body's
// Read as it is (the caller tells it by its own record of the reader),
// otherwise of the connection. The caller finishes the exchange (finish).
func (p *Conns) patch(ctx context.Context, u *url.URL, headers http.Header, body io.Reader, size int64) (*exchange, error) {
	key, addr, err := connKey(u)
	if err != nil {
		return nil, err
	}
	x := &exchange{conns: p, ctx: ctx, key: key, scheme: u.Scheme, addr: addr,
		head: requestHead(http.MethodPatch, u, headers, size)}
	if size != 0 {
		var w io.Writer = x
		var chunks io.WriteCloser
		if size < 0 {
			chunks = httputil.NewChunkedWriter(x)
			w = chunks
		}
		_, err = bodyCopy(w, body, bodyBuffers)
		if err == nil && chunks != nil {
			// The last chunk, then the empty trailer's CRLF, which the
			// chunked writer leaves to its caller.
			if err = chunks.Close(); err == nil {
				_, err = io.WriteString(x, "\r\n")
			}
		}
		if err != nil {
			var write *writeError
			if !errors.As(err, &write) {
				x.finish()
				return nil, err // the body's or the dial's: nothing is worth reading
			}
			// The upstream may have refused the body with an answer.
			if x.read(ctx, earlyAnswerWait) == nil {
				return x, nil
			}
			x.finish()
			return nil, contextError(ctx, write.err)
		}
	}
	if x.conn == nil { // no body, or one that ended before its first byte
		if err := x.open(nil); err != nil {
			return nil, err
		}
	}
	if err := x.read(ctx, p.AnswerTimeout); err != nil {
		x.finish()
		return nil, contextError(ctx, err)
	}
	x.reusable = true
	return x, nil
}

// Write sends p on the exchange's connection. The first Write takes the
// connection (a kept one or a new one) and sends the request's head with
// p: nothing reaches the upstream before the client's first bytes, so an
// upstream that bounds how long it waits for a body does not give up on a
// client slow to start (the transport did the same: its buffer held the
// head until the body's first read), and a client that sends nothing
// costs no upstream connection.
func (x *exchange) Write(p []byte) (int, error) {
	if x.conn == nil {
		if err := x.open(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return connWriter{x.conn}.Write(p)
}

// open takes a connection for the exchange and sends the head and first on
// it. Its errors are the dial's, not writeErrors: no answer is worth
// waiting for on a connection that never got the request.
func (x *exchange) open(first []byte) error {
	conn, err := x.conns.connect(x.ctx, x.key, x.scheme, x.addr, append(x.head, first...))
	if err != nil {
		return err
	}
	x.conn = conn
	// A context that ends closes the connection: whatever it is blocked
	// in (a write, the answer) returns at once.
	x.stop = context.AfterFunc(x.ctx, func() { conn.Close() })
	return nil
}

// connect returns a connection on which head is written: a kept one, or,
// when none is kept or the write fails on the one found (closed by its
// peer since), a new one.
func (p *Conns) connect(ctx context.Context, key, scheme, addr string, head []byte) (net.Conn, error) {
	if conn := p.get(key); conn != nil {
		if _, err := conn.Write(head); err == nil {
			return conn, nil
		}
		conn.Close()
	}
	conn, err := p.dial(ctx, scheme, addr)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(head); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// dial runs Dial on a goroutine of its own. A TLS handshake's
// cryptography takes its goroutine's stack to 32 KiB or more, and a stack
// only shrinks once a quarter of it is in use: on the caller's goroutine,
// which then waits for a slow client about 10 KiB deep, that was 17 KiB
// more per upload in flight over TLS (issue 15). The dialing goroutine
// ends with the handshake, and its stack with it.
func (p *Conns) dial(ctx context.Context, scheme, addr string) (net.Conn, error) {
	type dialed struct {
		conn net.Conn
		err  error
	}
	done := make(chan dialed, 1)
	go func() {
		conn, err := p.Dial(ctx, scheme, addr)
		done <- dialed{conn, err}
	}()
	d := <-done
	return d.conn, d.err
}

// read reads the answer's head, within timeout when it is not 0.
func (x *exchange) read(ctx context.Context, timeout time.Duration) error {
	if timeout > 0 {
		if err := x.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
	}
	x.br = answerReaders.Get().(*bufio.Reader)
	x.br.Reset(x.conn)
	req := &http.Request{Method: http.MethodPatch}
	for {
		resp, err := http.ReadResponse(x.br, req)
		if err != nil {
			return err
		}
		// 1xx answers (103 Early Hints) come before the final one.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			x.resp = resp
			return nil
		}
	}
}

// finish drains at most maxDrain of the answer's body, and keeps the
// connection for another request when the exchange ended cleanly, or
// closes it.
func (x *exchange) finish() {
	if x.conn == nil {
		return // nothing was sent
	}
	reuse := x.reusable && x.resp != nil && !x.resp.Close
	if x.resp != nil {
		n, err := io.Copy(io.Discard, io.LimitReader(x.resp.Body, maxDrain+1))
		reuse = reuse && err == nil && n <= maxDrain
		x.resp.Body.Close()
	}
	if x.br != nil {
		reuse = reuse && x.br.Buffered() == 0
		x.br.Reset(nil)
		answerReaders.Put(x.br)
		x.br = nil
	}
	// stop reports false when the context ended and closed the connection.
	if x.stop() && reuse && x.conn.SetReadDeadline(time.Time{}) == nil {
		x.conns.put(x.key, x.conn)
		return
	}
	x.conn.Close()
}

// answerReaders buffer the answers' heads: a few hundred bytes, and a
// longer line is read in pieces all the same. A reader is held only while
// an answer is read, never while a body streams.
var answerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1<<10) }}

// contextError is the context's error when it ended (the connection was
// closed for that), err otherwise.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	return err
}

// connKey returns the key of u's kept connections and the address to dial.
func connKey(u *url.URL) (key, addr string, err error) {
	port := u.Port()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", errors.New("tusproto: the upstream endpoint is not an http or https URL")
	case u.Hostname() == "":
		return "", "", errors.New("tusproto: the upstream endpoint has no host")
	case port == "" && u.Scheme == "http":
		port = "80"
	case port == "":
		port = "443"
	}
	addr = net.JoinHostPort(u.Hostname(), port)
	return u.Scheme + "://" + addr, addr, nil
}

// requestHead is the head of an HTTP/1.1 request with headers, and with
// Content-Length: size, or Transfer-Encoding: chunked when size < 0. The
// endpoint was parsed by net/url, which refuses control characters, and
// header values come from this package.
func requestHead(method string, u *url.URL, headers http.Header, size int64) []byte {
	b := make([]byte, 0, 256)
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, u.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.Host...)
	b = append(b, "\r\n"...)
	for name, values := range headers {
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if size < 0 {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	} else {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, size, 10)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// connWriter marks the failures of writes to the connection, to tell them
// from the body's.
type connWriter struct{ conn net.Conn }

func (w connWriter) Write(p []byte) (int, error) {
	n, err := w.conn.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }
