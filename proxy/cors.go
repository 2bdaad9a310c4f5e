package proxy

import (
	"net/http"
	"strings"
)

// corsPolicy answers browsers from other origins. Only configured origins are
// allowed: the seed example reflects any Origin with credentials, which lets
// every web page on the internet spend the operator's Kinescope account.
//
// It is ours, not chi's github.com/go-chi/cors (v1.2.2), because that one
// only decorates answers, and what this policy must do it cannot:
//   - refuse: a disallowed Origin gets 403 origin_not_allowed before any
//     handler runs, preflight or not, so nothing a foreign page sends reaches
//     the auth hook or Kinescope, and its developer sees why. go-chi/cors only
//     leaves its headers out and runs the handler (a preflight gets 200);
//   - let same-origin requests through unconfigured, judged on the origin the
//     trusted proxy says the browser used (proxies): dev's page and an
//     application served beside tusproxy need no TUSPROXY_CORS_ORIGINS;
//   - answer a preflight 204 (tus-js-client accepts any 2xx; go-chi/cors
//     writes 200, or passes OPTIONS on to the handlers);
//   - list every tus request header in Access-Control-Allow-Headers, which
//     TestCORS checks; go-chi/cors echoes only the ones asked for.
//
// Both give "*" without credentials and exact origins with them, and
// compare origins without case.
type corsPolicy struct {
	anyOrigin bool            // "*" configured: any origin, never with credentials
	origins   map[string]bool // exact origins, answered with credentials allowed
	proxies   proxyHeaders
}

func newCORSPolicy(origins []string, proxies proxyHeaders) corsPolicy {
	p := corsPolicy{origins: make(map[string]bool), proxies: proxies}
	for _, o := range origins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		p.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return p
}

var (
	// corsExposed are the response headers a browser client must read:
	// tus-js-client reads Location, Upload-Offset and Upload-Length; the
	// application reads Kinescope-Video-Id to learn which video it made,
	// and X-Request-ID to quote when it reports a failure.
	corsExposed = "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, " +
		"Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Retry-After, " + headerVideoID + ", " + headerRequestID
	corsAllowedHeaders = "Authorization, Content-Type, Origin, X-Requested-With, X-Request-ID, " +
		"X-HTTP-Method-Override, Tus-Resumable, Upload-Length, Upload-Offset, Upload-Metadata, " +
		"Upload-Defer-Length, Upload-Concat, Upload-Checksum"
	corsAllowedMethods = "POST, HEAD, PATCH, DELETE, OPTIONS"
)

// sameOrigin reports whether origin names the host the request was sent to:
// browsers send Origin on same-origin POSTs too, and those need no CORS.
func (p corsPolicy) sameOrigin(r *http.Request, origin string) bool {
	_, host := p.proxies.origin(r)
	_, originHost, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(originHost, host)
}

// handle runs CORS for a request and reports whether the caller should go on:
// false when it already answered (a preflight, or a refused origin). A
// refused origin gets 403 before anything else happens, so no Kinescope call
// is made on its behalf.
func (p corsPolicy) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	key := strings.ToLower(origin)
	switch {
	case p.origins[key]:
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case p.anyOrigin:
		h.Set("Access-Control-Allow-Origin", "*")
	case p.sameOrigin(r, origin):
		return true
	default:
		answer(w, r, errOriginForbidden)
		return false
	}
	h.Set("Access-Control-Expose-Headers", corsExposed)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", corsAllowedMethods)
		h.Set("Access-Control-Allow-Headers", corsAllowedHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}
