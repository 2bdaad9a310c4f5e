package proxy

import (
	"log/slog"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"io/fs"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// routes lists every route of the service.
//
//	GET     /healthz                  liveness of the public listener
//	OPTIONS {base}, {base}{id}        tus discovery, CORS preflight
//	POST    {base}                    tus creation (+ creation-with-upload) -> Kinescope /v2/init
//	HEAD    {base}{id}                offset, as the upstream confirms it
//	PATCH   {base}{id}                body streamed to the Kinescope endpoint
//	DELETE  {base}{id}                tus termination
//	POST    {base}{id}                with X-HTTP-Method-Override: PATCH or DELETE
//	POST    {seed}                    the seed's flow: answers with the Kinescope endpoint itself
//	GET     /, /{file}                pages of Deps.Site, when set (tusproxy dev: the browser example)
func (s *Service) routes() http.Handler {
	base := s.cfg.BasePath // starts and ends with "/"
	r := chi.NewRouter()
	r.Use(s.boundBodies, s.logRequests, s.tusResumable, s.recoverPanics, s.crossOrigin, s.methodOverride)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { answer(w, r, errNotFound) })
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", handleHealthz)

	r.Group(func(r chi.Router) {
		r.Use(s.tusHeaders)
		r.Options(base, s.handleOptions)
		r.Options(base+"{id}", s.handleOptions)
		r.Post(base, s.handleCreate)
		r.Post(strings.TrimSuffix(base, "/"), s.handleCreate)
		r.Head(base+"{id}", s.handleHead)
		r.Patch(base+"{id}", s.handlePatch)
		r.Delete(base+"{id}", s.handleDelete)
		// Download is not offered: the bytes live at Kinescope.
		r.Get(base+"{id}", s.methodNotAllowed)
	})
	if s.cfg.SeedPath != "" {
		r.Post(s.cfg.SeedPath, s.handleSeedUpload)
		r.Options(s.cfg.SeedPath, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	}
	if s.site != nil {
		s.sitePages(r)
	}
	return r
}

// sitePages serves the top-level files of Deps.Site: index.html at / and
// each file at its name. Only files that exist get a route, so every other
// path keeps the service's own 404.
func (s *Service) sitePages(r chi.Router) {
	entries, err := fs.ReadDir(s.site, ".")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".go") {
			continue
		}
		serve := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFileFS(w, r, s.site, name)
		}
		if name == "index.html" {
			// ServeFileFS would redirect /index.html to ./; serve / only.
			r.Get("/", serve)
			continue
		}
		r.Get("/"+name, serve)
	}
}

// AdminHandler serves the admin listener, which is never the public one:
//
//	GET /metrics           Prometheus metrics of gatherer (text or OpenMetrics)
//	GET /healthz           liveness: the process answers
//	GET /readyz            readiness: the state store answers and no shutdown began
//	GET /debug/pprof/...   Go profiles, only with TUSPROXY_PPROF
func (s *Service) AdminHandler(gatherer prometheus.Gatherer) http.Handler {
	r := chi.NewRouter()
	r.Use(s.boundBodies)
	r.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	r.Get("/healthz", handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	if s.cfg.Pprof {
		r.HandleFunc("/debug/pprof/*", pprof.Index)
		r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		r.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return r
}

func handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// isTusPath reports whether a path belongs to the tus endpoint (the paths
// method override applies to; CORS covers these and the seed path).
func isTusPath(p, base string) bool {
	return strings.HasPrefix(p, base) || p == strings.TrimSuffix(base, "/")
}

func (s *Service) crossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (isTusPath(r.URL.Path, s.cfg.BasePath) || (s.cfg.SeedPath != "" && r.URL.Path == s.cfg.SeedPath)) && !s.cors.handle(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// methodOverride serves clients that cannot send PATCH or DELETE (old
// proxies, some mobile stacks): tus-js-client's overridePatchMethod sends
// POST with X-HTTP-Method-Override. Honoured on POST only, like tusd.
func (s *Service) methodOverride(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := r.Header.Get(tusproto.HeaderMethodOverride); m != "" && isTusPath(r.URL.Path, s.cfg.BasePath) {
			if r.Method != http.MethodPost {
				answer(w, r, errMethodOverride.withMessage("X-HTTP-Method-Override is only honoured on POST"))
				return
			}
			switch strings.ToUpper(strings.TrimSpace(m)) {
			case http.MethodPatch:
				r.Method = http.MethodPatch
			case http.MethodDelete:
				r.Method = http.MethodDelete
			default:
				answer(w, r, errMethodOverride)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// tusResumable sets Tus-Resumable on every answer under the base path but
// OPTIONS (tus 1.0.0: every request and response but OPTIONS carries it),
// whoever writes it: the router's 404 and 405, the method override's 400,
// CORS refusals and panics included.
func (s *Service) tusResumable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions && isTusPath(r.URL.Path, s.cfg.BasePath) {
			w.Header().Set(tusproto.HeaderTusResumable, tusproto.Version)
		}
		next.ServeHTTP(w, r)
	})
}

// methodNotAllowed answers 405 with the Allow header of the path's routes
// (RFC 9110, 15.5.6: a 405 MUST carry Allow).
func (s *Service) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	base := s.cfg.BasePath
	allow := "GET"
	switch p := r.URL.Path; {
	case p == "/healthz":
	case p == base || p == strings.TrimSuffix(base, "/") || (s.cfg.SeedPath != "" && p == s.cfg.SeedPath):
		allow = "OPTIONS, POST"
	case strings.HasPrefix(p, base):
		allow = "OPTIONS, HEAD, PATCH, DELETE"
	}
	w.Header().Set("Allow", allow)
	answer(w, r, errMethodNotAllowed)
}

// tusHeaders sets Tus-Resumable on every tus answer and refuses requests
// without the protocol version we speak. Per tus 1.0.0 the 412 carries
// Tus-Version (tusd omits it); OPTIONS needs no Tus-Resumable.
func (s *Service) tusHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(tusproto.HeaderTusResumable, tusproto.Version)
		if r.Method != http.MethodOptions && r.Header.Get(tusproto.HeaderTusResumable) != tusproto.Version {
			w.Header().Set(tusproto.HeaderTusVersion, tusproto.Version)
			answer(w, r, errUnsupportedVersion)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleOptions answers tus discovery (tus 1.0.0 "OPTIONS").
func (s *Service) handleOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set(tusproto.HeaderTusVersion, tusproto.Version)
	h.Set(tusproto.HeaderTusExtension, extensions(s.cfg.UploadTTL > 0))
	if s.cfg.MaxSize > 0 {
		h.Set(tusproto.HeaderTusMaxSize, tusproto.FormatSize(s.cfg.MaxSize))
	}
	w.WriteHeader(http.StatusNoContent)
}

// extensions are the tus extensions offered. creation-defer-length and
// concatenation are not: Kinescope needs each file's size up front and makes
// one video per init.
func extensions(expiration bool) string {
	ext := "creation,creation-with-upload,termination"
	if expiration {
		ext += ",expiration"
	}
	return ext
}

// uploadURL is the Location of an upload on our own origin; the Kinescope
// endpoint is never shown to tus clients. TUSPROXY_PUBLIC_URL may carry a
// path prefix, so it is used whole; otherwise the origin is what the
// forwarding policy believes (never a header from an untrusted hop).
func (s *Service) uploadURL(r *http.Request, id string) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL + s.cfg.BasePath + id
	}
	scheme, host := s.proxies.origin(r)
	return scheme + "://" + host + s.cfg.BasePath + id
}

// handleReadyz answers 200 while the state store answers and no shutdown
// has begun, 503 otherwise: a load balancer then sends uploads elsewhere.
func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch state, err := s.checkReady(r.Context()); state {
	case readyDraining:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
	case readyStoreUnreachable:
		// The error may name the store's address; the body does not.
		s.log.Warn("readiness: state store does not answer", slog.String("error", err.Error()))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("state store unreachable\n"))
	default:
		_, _ = w.Write([]byte("ready\n"))
	}
}
