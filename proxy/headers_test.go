package proxy_test

import (
	"net/http"
	"testing"
)

// Every answer under the base path but OPTIONS carries Tus-Resumable
// (tus 1.0.0), whichever layer writes it, and every 405 carries Allow
// (RFC 9110, 15.5.6).
func TestEveryTusAnswerCarriesTusResumable(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(10, "")
	for _, tt := range []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		status  int
		allow   string
	}{
		{"method override on GET", http.MethodGet, loc, map[string]string{"X-HTTP-Method-Override": "PATCH"}, http.StatusBadRequest, ""},
		{"method override to PUT", http.MethodPost, loc, map[string]string{"X-HTTP-Method-Override": "PUT"}, http.StatusBadRequest, ""},
		{"PUT to an upload", http.MethodPut, loc, nil, http.StatusMethodNotAllowed, "OPTIONS, HEAD, PATCH, DELETE"},
		{"POST to an upload", http.MethodPost, loc, nil, http.StatusMethodNotAllowed, "OPTIONS, HEAD, PATCH, DELETE"},
		{"GET of an upload", http.MethodGet, loc, nil, http.StatusMethodNotAllowed, "OPTIONS, HEAD, PATCH, DELETE"},
		{"PUT to the base path", http.MethodPut, e.base, nil, http.StatusMethodNotAllowed, "OPTIONS, POST"},
		{"a path below an upload", http.MethodHead, e.base + "a/b", nil, http.StatusNotFound, ""},
		{"PATCH below an upload", http.MethodPatch, loc + "/x", nil, http.StatusNotFound, ""},
		{"an unknown upload", http.MethodHead, e.base + "0123456789abcdef0123456789abcdef", nil, http.StatusNotFound, ""},
		{"no Tus-Resumable", http.MethodHead, loc, map[string]string{"Tus-Resumable": ""}, http.StatusPreconditionFailed, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(tt.method, tt.url, tt.headers, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Tus-Resumable"); got != "1.0.0" {
				t.Errorf("Tus-Resumable %q, want 1.0.0", got)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

// A 405 outside the base path carries Allow too, and no Tus-Resumable.
func TestMethodNotAllowedOutsideTheBasePath(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.do(http.MethodPost, e.srv.URL+"/healthz", map[string]string{"Tus-Resumable": ""}, nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST /healthz: %d, Allow %q; want 405 with Allow: GET", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got := resp.Header.Get("Tus-Resumable"); got != "" {
		t.Errorf("Tus-Resumable %q outside the tus endpoint", got)
	}
}
