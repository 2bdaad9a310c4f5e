package proxy

import (
	"sync/atomic"

	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Deps are the parts of a Service that outlive it or that tests replace.
type Deps struct {
	Store  state.Store      // required
	Logger *slog.Logger     // nil: discard
	Locker handler.Locker   // nil: in-process memorylocker (one replica)
	HTTP   *http.Client     // nil: a client built from the config's upstream timeouts
	Now    func() time.Time // nil: time.Now
	// Metrics is where the service registers its Prometheus metrics (never
	// the global registry). nil: a registry of its own that nobody scrapes.
	Metrics prometheus.Registerer
	// Site, when set, is served at / for GET: index.html at / and every
	// other top-level file by name. `tusproxy dev` serves the browser
	// example with it; serve leaves it nil.
	Site fs.FS
}

// Service is tusproxy's HTTP handler. Build it with New.
type Service struct {
	cfg       *config.Config
	store     state.Store
	locker    handler.Locker
	log       *slog.Logger
	now       func() time.Time
	kinescope *kinescope.Client
	endpoints kinescope.EndpointPolicy
	upstream  *tusproto.Client
	fwd       forwarding
	cors      corsPolicy
	jwt       *jwtVerifier // nil: no tokens checked
	hook      *authHook    // nil: no auth hook
	limits    *limits
	site      fs.FS // nil: no pages
	metrics   *metrics
	handler   http.Handler

	// streams holds the body readers of PATCHes in flight, so Abort can stop
	// them at the end of a graceful shutdown.
	mu       sync.Mutex
	streams  map[*bodyReader]struct{}
	aborting bool

	draining  atomic.Bool // a shutdown began: /readyz answers 503
	storeDown atomic.Bool // the last store operation failed; see storeUsable
}

// lockWait is how long a request waits for the upload's lock after asking
// the holder to let go (tusd's release request). The holder stops reading
// its body at once, but must still ask the upstream how many bytes it kept.
const lockWait = 5 * time.Second

// New builds the service. cfg must have passed Validate.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("proxy: a state store is required")
	}
	s := &Service{
		cfg:     cfg,
		store:   deps.Store,
		locker:  deps.Locker,
		log:     deps.Logger,
		now:     deps.Now,
		fwd:     newForwarding(cfg),
		site:    deps.Site,
		streams: make(map[*bodyReader]struct{}),
	}
	if s.locker == nil {
		s.locker = memorylocker.New()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg, newUploadSeries(cfg.MetricsMaxUploads, cfg.MetricsUploadGrace, cfg.MetricsUploadIdle, s.now))
	s.endpoints = kinescope.EndpointPolicy{Hosts: cfg.UpstreamHosts}
	// Two clients: one for the URLs the operator configured (init, auth
	// hook), one for the upload endpoints Kinescope hands out, whose every
	// connection is checked against the allowlist again when it is dialled.
	// Neither follows redirects.
	client, uploadClient := deps.HTTP, deps.HTTP
	if client == nil {
		transport, err := newUpstreamTransport(cfg, nil)
		if err != nil {
			return nil, err
		}
		uploadTransport, err := newUpstreamTransport(cfg, &s.endpoints)
		if err != nil {
			return nil, err
		}
		client = &http.Client{Transport: transport, CheckRedirect: noRedirects}
		uploadClient = &http.Client{Transport: uploadTransport, CheckRedirect: noRedirects}
	}
	jwtVerifier, err := newJWTVerifier(cfg)
	if err != nil {
		return nil, err
	}
	s.jwt = jwtVerifier
	if cfg.AuthHookURL != "" {
		s.hook = newAuthHook(cfg.AuthHookURL, cfg.AuthHookTimeout, cfg.AuthCacheTTL, client.Transport)
	}
	s.limits = newLimits(cfg.CreateRate, cfg.MaxPatchesPerIP, cfg.MaxInFlight)
	s.kinescope = &kinescope.Client{InitURL: cfg.InitURL, Token: cfg.APIToken, HTTP: client, Timeout: cfg.InitTimeout}
	s.upstream = &tusproto.Client{HTTP: uploadClient, UserAgent: "tusproxy"}
	s.cors = newCORSPolicy(cfg.CORSOrigins, s.fwd)
	s.handler = s.routes()
	return s, nil
}

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
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	// The transport's default 4 KiB connection buffers stay: bodies bypass
	// the write buffer (ReadFrom) and answers are a few hundred bytes, while
	// 64 KiB buffers cost ~45 KiB of RSS per upload for no throughput
	// (BENCHMARKS.md, "Memory").
	return t, nil
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

// copyPooled copies r to w through a pooled buffer of copyBufferSize bytes.
// Without it the transport's io.Copy allocates 32 KiB per request, and
// copies in 32 KiB pieces: one read from the client and one write upstream
// (a system call each) per 32 KiB. 256 KiB pieces made one upload in one
// PATCH 11% faster on loopback and 200 concurrent ones 24% faster, using
// less CPU, for up to 256 KiB more memory per PATCH streaming
// (BENCHMARKS.md, "What changed", 2).
func copyPooled(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// Only Read and Write, so that io.CopyBuffer neither calls ReadFrom
	// again nor lets r bypass the buffer.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *buf)
}

// copyBufferSize is the size of the pooled buffers that request bodies are
// copied through on their way upstream; one is in use per PATCH streaming.
const copyBufferSize = 256 << 10

var copyBuffers = sync.Pool{New: func() any {
	buf := make([]byte, copyBufferSize)
	return &buf
}}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// clientIP is the client's address for logs, Kinescope's client_ip, the auth
// hook's client.ip and the per-address limits: one answer for all of them.
func (s *Service) clientIP(r *http.Request) netip.Addr { return s.fwd.clientIP(r) }

// Drain marks the start of a shutdown: /readyz answers 503 from now on, so
// load balancers stop sending new requests while PATCHes in flight finish.
func (s *Service) Drain() { s.draining.Store(true) }

// Abort stops every PATCH in flight from reading more of its body. Each one
// then records the offset the upstream confirms and answers 503, so clients
// resume elsewhere. Called when the shutdown timeout runs out; requests that
// arrive later are refused the same way.
func (s *Service) Abort() {
	s.mu.Lock()
	s.aborting = true
	streams := make([]*bodyReader, 0, len(s.streams))
	for b := range s.streams {
		streams = append(streams, b)
	}
	s.mu.Unlock()
	for _, b := range streams {
		b.interrupt(errShuttingDown)
	}
}

// track registers a PATCH body for Abort; the returned func unregisters it.
func (s *Service) track(b *bodyReader) (untrack func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborting {
		return nil, false
	}
	s.streams[b] = struct{}{}
	return func() {
		s.mu.Lock()
		delete(s.streams, b)
		s.mu.Unlock()
	}, true
}

// newUploadID returns 128 random bits as 32 lowercase hex characters:
// unguessable (the upload URL is a capability) and safe in any URL.
func newUploadID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("tusproxy: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// validUploadID rejects anything newUploadID cannot have made before it
// reaches a store.
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// lockUpload takes the upload's lock, asking any holder to release it first
// (tusd's semantics). onRelease is called when a later request wants the lock.
func (s *Service) lockUpload(ctx context.Context, id string, onRelease func()) (handler.Lock, error) {
	lock, err := s.locker.NewLock(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	if err := lock.Lock(ctx, onRelease); err != nil {
		if errors.Is(err, handler.ErrLockTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			e := *errLocked
			e.RetryAfter = time.Second
			return nil, &e
		}
		// A distributed lock lives next to the state (Redis): when it
		// cannot be taken, the store is as unreachable.
		return nil, s.storeFailed("lock", id, err)
	}
	return lock, nil
}

// expiresAt is when an idle upload expires; zero when uploads never expire.
func (s *Service) expiresAt(rec state.Record) time.Time {
	if s.cfg.UploadTTL <= 0 {
		return time.Time{}
	}
	return rec.UpdatedAt.Add(s.cfg.UploadTTL)
}

func (s *Service) expired(rec state.Record) bool {
	exp := s.expiresAt(rec)
	return !exp.IsZero() && s.now().After(exp)
}

// setExpires writes Upload-Expires (tus expiration extension) when uploads expire.
func (s *Service) setExpires(h http.Header, rec state.Record) {
	if exp := s.expiresAt(rec); !exp.IsZero() {
		h.Set(tusproto.HeaderUploadExpires, exp.UTC().Format(http.TimeFormat))
	}
}
