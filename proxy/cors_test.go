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
