package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

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
	handler   http.Handler

	// streams holds the body readers of PATCHes in flight, so Abort can stop
	// them at the end of a graceful shutdown.
	mu       sync.Mutex
	streams  map[*bodyReader]struct{}
	aborting bool
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
		fwd:     forwarding{trusted: cfg.TrustedProxies},
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
	client := deps.HTTP
	if client == nil {
		client = &http.Client{Transport: newUpstreamTransport(cfg.UpstreamTimeout)}
	}
	s.kinescope = &kinescope.Client{InitURL: cfg.InitURL, Token: cfg.APIToken, HTTP: client, Timeout: cfg.InitTimeout}
	s.endpoints = kinescope.EndpointPolicy{Hosts: cfg.UpstreamHosts}
	s.upstream = &tusproto.Client{HTTP: client, UserAgent: "tusproxy"}
	s.cors = newCORSPolicy(cfg.CORSOrigins, s.fwd)
	s.handler = s.routes()
	return s, nil
}

// newUpstreamTransport is a clone of the default transport with explicit
// timeouts on every phase that does not depend on the body's size. HTTP/2 is
// off: each upload streams on its own HTTP/1.1 connection, so one slow
// upload never shares flow-control windows with another.
func newUpstreamTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	t.ExpectContinueTimeout = time.Second
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 64 << 10
	return t
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// clientIP is the client's address for logs and Kinescope's client_ip.
func (s *Service) clientIP(r *http.Request) netip.Addr { return s.fwd.clientIP(r) }

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
		return nil, err
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
