package proxy_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestCORS(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": "https://app.example.com,http://localhost:3000"})

	// Preflight from an allowed origin.
	resp := e.do(http.MethodOptions, e.base, map[string]string{
		"Tus-Resumable":                  "",
		"Origin":                         "https://app.example.com",
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "tus-resumable, upload-length, upload-metadata",
	}, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Errorf("Allow-Origin %q", got)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"tus-resumable", "upload-length", "upload-metadata", "upload-offset", "x-http-method-override", "authorization", "content-type"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Allow-Headers lacks %s", h)
		}
	}
	// The actual request: Location and the tus headers are readable.
	resp = e.do(http.MethodPost, e.base, map[string]string{"Origin": "https://app.example.com", "Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	exposed := resp.Header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size"} {
		if !strings.Contains(exposed, h) {
			t.Errorf("Expose-Headers lacks %s", h)
		}
	}

	// A disallowed origin: 403, and no Kinescope call.
	before := e.emu.Stats().Init
	for _, method := range []string{http.MethodOptions, http.MethodPost} {
		resp, body := e.doBody(method, e.base, map[string]string{
			"Origin": "https://evil.example.net", "Upload-Length": "10", "Access-Control-Request-Method": "POST",
		}, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Origin") {
			t.Errorf("%s from a disallowed origin: %d %s", method, resp.StatusCode, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("disallowed origin got Allow-Origin")
		}
	}
	resp = e.do(http.MethodPost, e.srv.URL+"/upload", map[string]string{"Origin": "https://evil.example.net", "Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("seed endpoint from a disallowed origin: %d", resp.StatusCode)
	}
	if e.emu.Stats().Init != before {
		t.Errorf("a disallowed origin caused a Kinescope call")
	}

	// Same-origin requests carry Origin too and need no configuration.
	resp = e.do(http.MethodPost, e.base, map[string]string{"Origin": e.srv.URL, "Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("same-origin POST: %d", resp.StatusCode)
	}
}

func TestCORSWildcardNeverAllowsCredentials(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": "*"})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Origin": "https://anything.example", "Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("wildcard CORS: Allow-Origin %q, Allow-Credentials %q", resp.Header.Get("Access-Control-Allow-Origin"),
			resp.Header.Get("Access-Control-Allow-Credentials"))
	}
}

// The policy's edge cases: origins compare without case and are echoed as
// sent; every answer to an Origin says Vary: Origin (a shared cache must not
// hand one origin's answer to another); a request without Origin gets no
// CORS headers; preflights of an upload URL and of the seed path are 204.
func TestCORSEdgeCases(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": "https://app.example.com"})
	preflight := map[string]string{"Tus-Resumable": "", "Access-Control-Request-Method": "PATCH", "Origin": "https://app.example.com"}
	tests := []struct {
		name       string
		method     string
		url        string
		headers    map[string]string
		status     int
		allowed    string // Access-Control-Allow-Origin wanted; "" none
		credential bool
	}{
		{"origin in another case", http.MethodPost, e.base, map[string]string{"Origin": "https://APP.Example.com", "Upload-Length": "10"},
			http.StatusCreated, "https://APP.Example.com", true},
		{"no Origin", http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, http.StatusCreated, "", false},
		{"refused origin", http.MethodPost, e.base, map[string]string{"Origin": "https://app.example.com.evil.net", "Upload-Length": "10"},
			http.StatusForbidden, "", false},
		{"origin with a trailing slash", http.MethodPost, e.base, map[string]string{"Origin": "https://app.example.com/", "Upload-Length": "10"},
			http.StatusForbidden, "", false},
		{"preflight of an upload URL", http.MethodOptions, e.base + "0123456789abcdef0123456789abcdef", preflight,
			http.StatusNoContent, "https://app.example.com", true},
		{"preflight of the seed path", http.MethodOptions, e.srv.URL + e.cfg.SeedPath, preflight,
			http.StatusNoContent, "https://app.example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(tt.method, tt.url, tt.headers, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			h := resp.Header
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.allowed {
				t.Errorf("Allow-Origin %q, want %q", got, tt.allowed)
			}
			if got := h.Get("Access-Control-Allow-Credentials") == "true"; got != tt.credential {
				t.Errorf("Allow-Credentials %v, want %v", got, tt.credential)
			}
			varies := strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin")
			if _, sent := tt.headers["Origin"]; varies != sent {
				t.Errorf("Vary %q with Origin sent %v", h.Values("Vary"), sent)
			}
			if tt.method == http.MethodOptions && !strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") {
				t.Errorf("preflight Allow-Methods %q lacks PATCH", h.Get("Access-Control-Allow-Methods"))
			}
			if tt.allowed == "" && h.Get("Access-Control-Expose-Headers") != "" {
				t.Errorf("Expose-Headers without an allowed origin")
			}
		})
	}
}

// Same-origin requests need no configuration, and behind a trusted reverse
// proxy the origin is the one the browser used (X-Forwarded-Proto/-Host),
// which is why the policy holds the forwarding policy. A client talking to
// tusproxy directly cannot claim same-origin with a forged X-Forwarded-Host.
func TestCORSSameOriginBehindATrustedProxy(t *testing.T) {
	headers := map[string]string{
		"Origin": "https://uploads.example.com", "Upload-Length": "10",
		"X-Forwarded-Host": "uploads.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
	}
	behindProxy := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": "https://app.example.com", "TUSPROXY_TRUSTED_PROXIES": "127.0.0.1"})
	resp := behindProxy.do(http.MethodPost, behindProxy.base, headers, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("same-origin POST through a trusted proxy: %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://uploads.example.com/files/") {
		t.Errorf("Location %q is not on the browser's origin", loc)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a same-origin answer carries Allow-Origin")
	}

	direct := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": "https://app.example.com"})
	if resp := direct.do(http.MethodPost, direct.base, headers, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged X-Forwarded-Host from an untrusted peer: %d, want 403", resp.StatusCode)
	}
}
