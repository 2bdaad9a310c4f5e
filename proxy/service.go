package proxy

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Deps are the parts of a Service that outlive it or that tests replace.
type Deps struct {
	Store  state.Store      // required
	Logger *slog.Logger     // nil: discard
	Locker handler.Locker   // nil: in-process memorylocker (one replica)
	HTTP   *http.Client     // nil: clients built from the config's upstream timeouts
	Now    func() time.Time // nil: time.Now
	// Metrics is where the service registers its Prometheus metrics (never
	// the global registry). nil: a registry of its own that nobody scrapes.
	Metrics prometheus.Registerer
	// Observers receive the upload lifecycle's events besides the metrics
	// and the lifecycle log lines, which are always wired.
	Observers []upload.Observer
	// Limiter, when set, keeps the per-address creation rate and PATCH cap
	// shared by every replica (redislimit on the Redis of the state store).
	// nil: each replica counts alone, right for one replica.
	Limiter Limiter
	// Site, when set, is served at / for GET: index.html at / and every
	// other top-level file by name. `tusproxy dev` serves the browser
	// example with it; serve leaves it nil.
	Site fs.FS
}

// Service is tusproxy's HTTP adapter: it speaks tus to clients and leaves
// the upload lifecycle to package upload. Build it with New.
type Service struct {
	cfg       *config.Config
	life      *upload.Lifecycle
	patches   *tusproto.Conns // nil with a test client
	store     state.Store     // for readiness only
	log       *slog.Logger
	now       func() time.Time
	proxies   proxyHeaders
	cors      corsPolicy
	access    *access
	creations *creationRate
	streams   *streams
	site      fs.FS // nil: no pages
	metrics   *metrics
	ready     *readiness
	webhooks  *webhookMetrics
	delivery  *webhooks // nil: TUSPROXY_WEBHOOK_URL is empty
	handler   http.Handler
}

// New builds the service. cfg must have passed Validate.
func New(cfg *config.Config, deps Deps) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("proxy: a state store is required")
	}
	s := &Service{
		cfg:     cfg,
		store:   deps.Store,
		log:     deps.Logger,
		now:     deps.Now,
		proxies: newProxyHeaders(cfg),
		site:    deps.Site,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	locker := deps.Locker
	if locker == nil {
		locker = memorylocker.New()
	}
	reg := deps.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	shared := newSharedLimits(deps.Limiter, reg, s.log)
	s.creations = newCreationRate(cfg.CreateRate, shared)
	s.streams = newStreams(cfg.MaxPatchesPerIP, cfg.MaxInFlight, shared)
	s.metrics = newMetrics(reg, newUploadSeries(cfg.MetricsMaxUploads, cfg.MetricsUploadGrace, cfg.MetricsUploadIdle, s.now), s.streams)
	s.webhooks = newWebhookMetrics(reg, s.now)
	s.ready = newReadiness(reg)
	clients, err := newClients(cfg, deps.HTTP)
	if err != nil {
		return nil, err
	}
	s.patches = clients.patches
	s.access = &access{parentID: cfg.ParentID, proxies: s.proxies, now: s.now, log: s.log}
	s.access.jwt, err = newJWTVerifier(cfg, keySetDeps{client: clients.jwks, log: s.log, refreshed: s.metrics.jwksRefreshed})
	if err != nil {
		return nil, err
	}
	if cfg.AuthHookURL != "" {
		s.access.hook = newAuthHook(cfg.AuthHookURL, cfg.AuthHookTimeout, cfg.AuthCacheTTL, clients.hook.Transport)
	}
	s.delivery, err = newWebhooks(cfg, deps.Store, webhook.Deps{Log: s.log, Metrics: s.webhooks, Now: deps.Now})
	if err != nil {
		s.access.jwt.close()
		return nil, err
	}
	observers := append(upload.Observers{s.metrics, s.ready, lifecycleLog{s.log}}, deps.Observers...)
	var events upload.EventEncoder // nil: no durable events
	if s.delivery != nil {
		observers = append(observers, s.delivery)
		events = s.delivery
	}
	s.life = upload.New(upload.Config{
		UploadTTL:       cfg.UploadTTL,
		UpstreamTimeout: cfg.UpstreamTimeout,
		ChunkSize:       cfg.UpstreamChunkSize,
		InitTimeout:     cfg.InitTimeout,
	}, upload.Deps{
		Store:     deps.Store,
		Locker:    locker,
		Init:      &kinescope.Client{InitURL: cfg.InitURL, Token: cfg.APIToken, HTTP: clients.init, Timeout: cfg.InitTimeout},
		Upstream:  &tusproto.Client{HTTP: clients.upload, Conns: clients.patches, UserAgent: "tusproxy"},
		Endpoints: clients.endpoints,
		Observer:  observers,
		Events:    events,
		Log:       s.log,
		Now:       s.now,
	})
	s.cors = newCORSPolicy(cfg.CORSOrigins, s.proxies)
	s.handler = s.routes()
	return s, nil
}

// clients are the HTTP clients of the service. None follows redirects.
type clients struct {
	// init calls the URL the operator configured for Kinescope's /v2/init.
	init *http.Client
	// upload calls the endpoints Kinescope hands out; each connection is
	// checked against the allowlist again when it is dialled.
	upload *http.Client
	// patches carry the PATCHes to upload endpoints, over connections
	// dialled as upload's are (nil with a test client: upload carries them).
	patches   *tusproto.Conns
	endpoints *kinescope.EndpointPolicy
	// hook calls the auth hook, with the system's trust roots:
	// TUSPROXY_UPSTREAM_CA_FILE is Kinescope's CA, and must neither let the
	// hook's certificate be signed by it nor stop a public one working.
	hook *http.Client
	// jwks fetches TUSPROXY_JWT_JWKS_URL over the hook's transport, for the
	// same reason (see jwksClient).
	jwks *http.Client
}

func newClients(cfg *config.Config, test *http.Client) (clients, error) {
	c := clients{endpoints: &kinescope.EndpointPolicy{Hosts: cfg.UpstreamHosts}}
	if test != nil {
		c.init, c.upload, c.hook = test, test, test
		c.jwks = jwksClient(test.Transport)
		return c, nil
	}
	initDialer, err := newUpstreamDialer(cfg, nil)
	if err != nil {
		return c, err
	}
	uploadDialer, err := newUpstreamDialer(cfg, c.endpoints)
	if err != nil {
		return c, err
	}
	hookCfg := *cfg
	hookCfg.UpstreamCAFile = ""
	hookDialer, err := newUpstreamDialer(&hookCfg, nil)
	if err != nil {
		return c, err
	}
	hookTransport := newUpstreamTransport(&hookCfg, hookDialer)
	c.init = &http.Client{Transport: newUpstreamTransport(cfg, initDialer), CheckRedirect: noRedirects}
	c.upload = &http.Client{Transport: newUpstreamTransport(cfg, uploadDialer), CheckRedirect: noRedirects}
	c.patches = newPatchConns(cfg, uploadDialer)
	c.hook = &http.Client{Transport: hookTransport, CheckRedirect: noRedirects}
	c.jwks = jwksClient(hookTransport)
	return c, nil
}

// WebhookMetrics is where a webhook.Dispatcher reports, so its metrics are
// on the service's registry beside the others.
func (s *Service) WebhookMetrics() webhook.Metrics { return s.webhooks }

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, withArrival(r))
}

// Drain marks the start of a shutdown: /readyz answers 503 from now on, so
// load balancers stop sending new requests while PATCHes in flight finish.
func (s *Service) Drain() {
	s.ready.set(readyDraining)
}

// Abort stops every PATCH in flight from reading more of its body. Each one
// then records the offset the upstream confirms and answers 503, so clients
// resume elsewhere. Called when the shutdown timeout runs out; requests that
// arrive later are refused the same way.
func (s *Service) Abort() { s.streams.abort() }

// Run does the service's background work until ctx is done: it samples the
// per-upload metrics, renews the leases of shared PATCH counts, and the
// lifecycle forgets expired uploads and reports creations cut short.
func (s *Service) Run(ctx context.Context) {
	go s.metrics.runSampler(ctx)
	go s.streams.renewShared(ctx, s.now)
	go s.watchReadiness(ctx)
	go s.delivery.run(ctx)
	s.life.Run(ctx)
}

// Close stops what New started in the background (the refreshes of
// TUSPROXY_JWT_JWKS_URL) and closes the upstream connections kept for
// PATCHes. Call it once the service answers no more requests.
func (s *Service) Close() {
	s.access.jwt.close()
	if s.patches != nil {
		s.patches.CloseIdle()
	}
}

// FinishWebhooks lets webhook deliveries in flight finish until ctx ends;
// those cut then stay in the outbox, delivered after the next start (or by
// another replica once their lease ends). Nothing to do with webhooks off.
func (s *Service) FinishWebhooks(ctx context.Context) error { return s.delivery.shutdown(ctx) }
