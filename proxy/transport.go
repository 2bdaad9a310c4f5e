package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// noRedirects makes an http.Client return a 3xx as it is. Following one
// would resend the token, the hook's credentials or an upload to wherever
// the answer points, with the URL asked as Referer.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Idle connections kept per host, by the transports and by the PATCH
// connections: a group commit of the store releases hundreds of creations
// at once, whose /v2/init calls reach Kinescope's one host together; with
// 64 kept, every burst opened (and, over TLS, handshook) hundreds of
// connections and closed them again. 512 kept took creations over a TLS
// upstream from 1274-1462/s achieved to 1980-1999/s of the 2000/s asked
// (BENCHMARKS.md, issue 15). An idle connection costs a file descriptor and
// its buffers.
const (
	maxIdlePerHost  = 512
	upstreamIdleFor = 90 * time.Second
)

// upstreamDialer opens the connections of one kind of upstream call: dial
// within the upstream timeout, TLS with TUSPROXY_UPSTREAM_CA_FILE's roots
// (the system's without it) within the upstream timeout too, and a write
// that makes no progress for the upstream idle timeout fails.
//
// With a policy (upload endpoints), every dial is checked against it: the
// host and port dialled are the ones the allowlist names, whatever happened
// between Check and the dial.
type upstreamDialer struct {
	policy  *kinescope.EndpointPolicy
	dialer  net.Dialer
	idle    time.Duration
	tls     *tls.Config
	timeout time.Duration
}

func newUpstreamDialer(cfg *config.Config, policy *kinescope.EndpointPolicy) (*upstreamDialer, error) {
	d := &upstreamDialer{
		policy:  policy,
		dialer:  net.Dialer{Timeout: cfg.UpstreamTimeout, KeepAlive: 30 * time.Second},
		idle:    cfg.UpstreamIdleTimeout,
		tls:     &tls.Config{MinVersion: tls.VersionTLS12},
		timeout: cfg.UpstreamTimeout,
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
		d.tls.RootCAs = pool
	}
	return d, nil
}

// dial connects to addr ("host:port") for scheme "http" or "https"; an
// https connection is returned after its handshake.
func (d *upstreamDialer) dial(ctx context.Context, scheme, addr string) (net.Conn, error) {
	if err := checkDial(d.policy, scheme, addr); err != nil {
		return nil, err
	}
	conn, err := d.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if d.idle > 0 {
		conn = &idleWriteConn{Conn: conn, idle: d.idle}
	}
	if scheme != "https" {
		return conn, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cfg := d.tls.Clone()
	cfg.ServerName = host // an IP address is checked against the certificate's IP SANs
	// HTTP/1.1 only (see newUpstreamTransport): no ALPN.
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	tlsConn := tls.Client(conn, cfg)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

// newUpstreamTransport is a clone of the default transport that dials
// through d, with a response-header timeout of the upstream timeout. HTTP/2
// is off: each upload streams on its own HTTP/1.1 connection, so one slow
// upload never shares flow-control windows with another. With a policy, it
// ignores HTTP(S)_PROXY, since through a proxy the address dialled is the
// proxy's.
func newUpstreamTransport(cfg *config.Config, d *upstreamDialer) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if d.policy != nil {
		t.Proxy = nil
	}
	t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.dial(ctx, "http", addr)
	}
	t.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return d.dial(ctx, "https", addr)
	}
	t.ResponseHeaderTimeout = cfg.UpstreamTimeout
	t.ExpectContinueTimeout = time.Second
	t.MaxIdleConns = 2 * maxIdlePerHost
	t.MaxIdleConnsPerHost = maxIdlePerHost
	t.IdleConnTimeout = upstreamIdleFor
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	// Answers are a few hundred bytes, and so are requests but PATCHes
	// (which go through tusproto.Conns): 1 KiB buffers instead of 4 KiB
	// for each idle connection.
	t.ReadBufferSize = 1 << 10
	t.WriteBufferSize = 1 << 10
	return t
}

// newPatchConns are the connections PATCHes stream on (tusproto.Conns):
// on the handler's goroutine, with no goroutine or buffer of a transport
// held for as long as a slow client takes to send its body.
func newPatchConns(cfg *config.Config, d *upstreamDialer) *tusproto.Conns {
	return &tusproto.Conns{
		Dial:           d.dial,
		AnswerTimeout:  cfg.UpstreamTimeout,
		MaxIdlePerHost: maxIdlePerHost,
		IdleTimeout:    upstreamIdleFor,
	}
}

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

// idleWriteConn fails a write that makes no progress for idle: an upstream
// that stops reading a body must not hold a PATCH (and its lock) forever.
// Like bodyReader, it moves the write deadline only when less than idle
// remains (idleSlack): a failing write is cut after idle to idle +
// idle/idleSlack without progress.
type idleWriteConn struct {
	net.Conn
	idle time.Duration
	// deadline is the write deadline last set, in Unix nanoseconds. A TLS
	// alert may be written from another goroutine than the body: hence
	// atomic.
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

// NetConn is the connection under the deadlines (tusproto.Conns looks
// through it to see whether an idle connection was closed by its peer).
func (c *idleWriteConn) NetConn() net.Conn { return c.Conn }
