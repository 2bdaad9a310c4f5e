package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
)

// noRedirects makes an http.Client return a 3xx as it is. Following one
// would resend the token, the hook's credentials or an upload to wherever
// the answer points, with the URL asked as Referer.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newUpstreamTransport is a clone of the default transport with explicit
// timeouts on every phase: dial, TLS handshake and response headers take at
// most the upstream timeout, and a body write that makes no progress for
// the upstream idle timeout fails. HTTP/2 is off: each upload streams on its
// own HTTP/1.1 connection, so one slow upload never shares flow-control
// windows with another.
//
// With a policy (the transport of upload endpoints), every dial is checked
// against it: the host and port dialled are the ones the allowlist names,
// whatever happened between Check and the dial. Such a transport ignores
// HTTP(S)_PROXY, since through a proxy the address dialled is the proxy's.
func newUpstreamTransport(cfg *config.Config, policy *kinescope.EndpointPolicy) (*http.Transport, error) {
	timeout := cfg.UpstreamTimeout
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	idle := cfg.UpstreamIdleTimeout
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil || idle <= 0 {
			return conn, err
		}
		return &idleWriteConn{Conn: conn, idle: idle}, nil
	}
	if policy != nil {
		t.Proxy = nil
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// The transport dials through DialContext only for http URLs: https
		// goes through DialTLSContext below.
		if err := checkDial(policy, "http", addr); err != nil {
			return nil, err
		}
		return dial(ctx, network, addr)
	}
	if cfg.UpstreamCAFile != "" {
		pem, err := os.ReadFile(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("TUSPROXY_UPSTREAM_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("TUSPROXY_UPSTREAM_CA_FILE: no PEM certificates in the file")
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.TLSHandshakeTimeout = timeout
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := checkDial(policy, "https", addr); err != nil {
			return nil, err
		}
		return dialTLS(ctx, t, dial, network, addr)
	}
	t.ResponseHeaderTimeout = timeout
	t.ExpectContinueTimeout = time.Second
	// Idle connections kept per host: a group commit of the store releases
	// hundreds of creations at once, whose /v2/init calls reach Kinescope's
	// one host together; with 64 kept, every burst opened (and, over TLS,
	// handshook) hundreds of connections and closed them again. 512 kept
	// took creations over a TLS upstream from 1274-1462/s achieved to
	// 1980-1999/s of the 2000/s asked (BENCHMARKS.md, issue 15). An idle
	// connection costs its two 1 KiB buffers and two small goroutines.
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	// Connection buffers of 1 KiB instead of the default 4 KiB: bodies
	// bypass the write buffer (ReadFrom) once the request's headers (a few
	// hundred bytes) are out, and answers are a few hundred bytes too (a
	// longer header line is read in pieces all the same). Each upload in
	// flight holds its connection's two buffers, so this saves 6 KiB of the
	// ~100 KiB it costs (issue 15), while 64 KiB buffers cost ~45 KiB of RSS
	// per upload for no throughput (BENCHMARKS.md, "Memory").
	t.ReadBufferSize = upstreamConnBuffer
	t.WriteBufferSize = upstreamConnBuffer
	return t, nil
}

// upstreamConnBuffer is the size of each of the read and write buffers of
// an upstream connection.
const upstreamConnBuffer = 1 << 10

// checkDial refuses to dial addr ("host:port", as the transport dials it)
// for scheme when policy does not allow it; a nil policy allows everything.
func checkDial(policy *kinescope.EndpointPolicy, scheme, addr string) error {
	if policy == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: not host:port", kinescope.ErrEndpointRefused)
	}
	return policy.CheckAddress(scheme, host, port)
}

// dialTLS does what the transport does for https by itself (a TLS client
// handshake over a connection from dial, with its TLSClientConfig and
// within its TLSHandshakeTimeout, the server name taken from addr), and
// returns the connection as a bodyCopyConn: request bodies are then copied
// through the pooled buffers too, not through a 32 KiB buffer allocated per
// request. TLS still writes them in records of at most 16 KiB, but the client's
// body is read in copyBufferSize pieces.
func dialTLS(ctx context.Context, t *http.Transport, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	network, addr string) (net.Conn, error) {
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		raw.Close()
		return nil, err
	}
	var cfg *tls.Config
	if t.TLSClientConfig != nil {
		cfg = t.TLSClientConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host // an IP address is checked against the certificate's IP SANs
	}
	// HTTP/1.1 only (see newUpstreamTransport): no ALPN.
	cfg.NextProtos = nil
	if t.TLSHandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.TLSHandshakeTimeout)
		defer cancel()
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return bodyCopyConn{conn}, nil
}

// bodyCopyConn is an upstream connection whose ReadFrom, which the HTTP
// transport uses to send a request body, copies through a pooled buffer.
type bodyCopyConn struct{ net.Conn }

func (c bodyCopyConn) ReadFrom(r io.Reader) (int64, error) { return copyPooled(c.Conn, r) }

// idleWriteConn fails a write that makes no progress for idle: an upstream
// that stops reading a body must not hold a PATCH (and its lock) forever.
// Like bodyReader, it moves the write deadline only when less than idle
// remains (idleSlack): a failing write is cut after idle to idle +
// idle/idleSlack without progress.
type idleWriteConn struct {
	net.Conn
	idle time.Duration
	// deadline is the write deadline last set, in Unix nanoseconds. Writes
	// come from the transport's write loop, but a TLS alert may be written
	// from another goroutine: hence atomic.
	deadline atomic.Int64
}

func (c *idleWriteConn) Write(p []byte) (int, error) {
	if now := time.Now(); c.deadline.Load()-now.UnixNano() < int64(c.idle) {
		deadline := now.Add(c.idle + c.idle/idleSlack)
		if err := c.Conn.SetWriteDeadline(deadline); err != nil {
			return 0, err
		}
		c.deadline.Store(deadline.UnixNano())
	}
	return c.Conn.Write(p)
}

// ReadFrom is how the HTTP transport sends a request body on a plain (not
// TLS) connection: through a pooled buffer (see copyPooled).
func (c *idleWriteConn) ReadFrom(r io.Reader) (int64, error) { return copyPooled(c, r) }

// copyPooled copies r to w through pooled buffers sized to how r delivers
// (see bodyCopy).
func copyPooled(w io.Writer, r io.Reader) (int64, error) {
	return bodyCopy(w, r, copyBuffers)
}

// bodyCopy copies a request body r to the upstream w through a buffer from
// pools, whose sizes double from the first to the last, sized to what each
// read finds waiting. A fast body goes through the largest: without it the
// transport's io.Copy copies in 32 KiB pieces, one read from the client and
// one write upstream (a system call each) per 32 KiB, and 256 KiB pieces
// made one upload in one PATCH 11% faster on loopback and 200 concurrent
// ones 24% faster, using less CPU (BENCHMARKS.md, "What changed", 2). But
// most uploads are slow (a browser on a few Mbit/s or less), and a slow body
// spends its life blocked in a read, holding whatever buffer that read was
// given: a large one for each of thousands of them would be most of the
// process's memory, and would raise the garbage collector's goal with it
// (issue 15). So reads start with the smallest buffer; fillsToGrow reads
// in a row that fill their buffer (at least that much was waiting each
// time) take one twice the size, and a read that would have fit in half of
// it gives it back for one half the size. A backlog (what a slow client
// sent while its PATCH was being opened, or while the process was busy)
// thus costs about what is waiting, not the largest buffer, and only while
// it lasts; needing several full reads keeps a slow body whose reads
// sometimes just fill the buffer from trading buffers on every read (each
// trade can cost an allocation once the garbage collector emptied the
// pools).
//
// Only Read and Write are called, so that io.Copy's shortcuts (ReadFrom,
// WriteTo) can neither recurse nor let r bypass the buffer.
func bodyCopy(w io.Writer, r io.Reader, pools []bufferPool) (written int64, err error) {
	level, fills := 0, 0
	buf := pools[level].get()
	defer func() { pools[level].put(buf) }()
	for {
		n, readErr := r.Read(*buf)
		if n > 0 {
			m, writeErr := w.Write((*buf)[:n])
			written += int64(m)
			if writeErr != nil {
				return written, writeErr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if readErr == io.EOF {
			return written, nil
		}
		if readErr != nil {
			return written, readErr
		}
		next := level
		switch {
		case n < len(*buf):
			fills = 0
			if n <= len(*buf)/2 && level > 0 {
				next--
			}
		case level < len(pools)-1:
			if fills++; fills == fillsToGrow {
				next++
			}
		}
		if next != level {
			pools[level].put(buf)
			level, buf, fills = next, pools[next].get(), 0
		}
	}
}

// The smallest and the largest of the buffers request bodies are copied
// through on their way upstream; one is in use per PATCH streaming. 8 KiB
// holds what a slow client sends between two reads (16 KiB/s arrives in
// pieces of a few KiB) for 8 KiB per upload held open; 256 KiB is the size
// measured best for fast bodies (see bodyCopy).
const (
	smallestCopyBuffer = 8 << 10
	largestCopyBuffer  = 256 << 10
	// fillsToGrow full reads in a row double the buffer: a fast body
	// reaches the largest after 20 reads (1.5 MiB), a slow one's backlog
	// seldom takes more than the smallest.
	fillsToGrow = 4
)

var copyBuffers = newBufferPools(smallestCopyBuffer, largestCopyBuffer)

// newBufferPools makes pools of buffers whose sizes double from smallest to
// largest.
func newBufferPools(smallest, largest int) []bufferPool {
	var pools []bufferPool
	for size := smallest; size <= largest; size *= 2 {
		pools = append(pools, bufferPool{})
		pools[len(pools)-1].pool.New = func() any {
			buf := make([]byte, size)
			return &buf
		}
	}
	return pools
}

// bufferPool is a sync.Pool of byte slices of one size that counts the
// buffers taken and not yet given back.
type bufferPool struct {
	pool sync.Pool
	out  atomic.Int64
}

func (p *bufferPool) get() *[]byte {
	p.out.Add(1)
	return p.pool.Get().(*[]byte)
}

func (p *bufferPool) put(buf *[]byte) {
	p.out.Add(-1)
	p.pool.Put(buf)
}
