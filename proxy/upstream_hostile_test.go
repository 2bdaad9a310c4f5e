package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// hostileUpstream stands in for a Kinescope that misbehaves on purpose: its
// /v2/init issues endpoints on itself, and the test decides what the
// endpoints answer.
type hostileUpstream struct {
	*httptest.Server
	upload http.HandlerFunc // HEAD, PATCH and DELETE on /upload/...
}

func newHostileUpstream(t *testing.T, upload http.HandlerFunc) *hostileUpstream {
	t.Helper()
	h := &hostileUpstream{upload: upload}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v2/init" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-ID", "init-1")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{
				"id": "video-1", "endpoint": h.URL + "/upload/capability-0123456789",
			}})
			return
		}
		h.upload(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

// bystander is a second loopback server that must never hear from
// tusproxy: it records whether it was contacted, and with which headers.
type bystander struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func newBystander(t *testing.T) *bystander {
	t.Helper()
	b := &bystander{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests = append(b.requests, r.Method+" "+r.URL.Path+" Referer="+r.Header.Get("Referer"))
		b.mu.Unlock()
		// What would make tusproxy forget the upload, if it listened.
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *bystander) check(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) > 0 {
		t.Errorf("the other server was contacted: %q", b.requests)
	}
}

// recordOf returns the upload's record, failing the test if it was dropped.
func (e *env) recordOf(uploadURL string) state.Record {
	e.t.Helper()
	rec, err := e.store.Get(context.Background(), testkit.UploadID(uploadURL))
	if err != nil {
		e.t.Fatalf("the upload's record: %v", err)
	}
	return rec
}

// TestUpstreamRedirectsAreNotFollowed: an allowed endpoint that answers with
// a redirect to another host gets no request sent there (no HEAD to a
// metadata service, no DELETE elsewhere, no Referer carrying the endpoint),
// the record is kept, PATCH and DELETE answer 502, HEAD answers from the
// record as on any upstream failure, and the calls count as bad responses.
func TestUpstreamRedirectsAreNotFollowed(t *testing.T) {
	other := newBystander(t)
	hostile := newHostileUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", other.URL+"/latest/meta-data/iam")
		w.Header().Set("Upload-Offset", "0")
		switch r.Method {
		case http.MethodHead:
			w.WriteHeader(http.StatusFound)
		case http.MethodPatch:
			w.WriteHeader(http.StatusFound) // followed, it becomes a GET
		default:
			w.WriteHeader(http.StatusTemporaryRedirect) // followed, it stays a DELETE
		}
	})
	e := newMetricsEnv(t, map[string]string{"KINESCOPE_INIT_URL": hostile.URL + "/v2/init"})
	upload := e.create(10, "")

	resp := e.do(http.MethodHead, upload, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != "0" || resp.Header.Get("Location") != "" {
		t.Errorf("HEAD: status %d, Upload-Offset %q, Location %q; want 200 from the record, offset 0, no Location",
			resp.StatusCode, resp.Header.Get("Upload-Offset"), resp.Header.Get("Location"))
	}
	if resp := e.patch(upload, 0, []byte("0123456789")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("PATCH: status %d, want 502", resp.StatusCode)
	}
	if resp := e.do(http.MethodDelete, upload, nil, nil); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("DELETE: status %d, want 502", resp.StatusCode)
	}
	if rec := e.recordOf(upload); rec.Offset != 0 {
		t.Errorf("record offset %d, want 0", rec.Offset)
	}
	other.check(t)
	if strings.Contains(e.logs.String(), "capability-0123456789") {
		t.Errorf("the endpoint reached the logs")
	}
	for _, op := range []string{"head", "patch", "delete"} {
		if n := e.value("tusproxy_upstream_requests_total", map[string]string{"operation": op, "outcome": "bad_response"}); n < 1 {
			t.Errorf("upstream %s bad_response = %v, want at least 1", op, n)
		}
	}
}

// TestUpstreamOffsetOutsideUpload: an upstream offset past the upload's
// length (or negative) is an upstream failure, never stored nor answered.
func TestUpstreamOffsetOutsideUpload(t *testing.T) {
	tests := []struct{ name, headOffset, headLength, patchOffset string }{
		{"far past the length, with a matching Upload-Length", "999999", "1000000", "999999"},
		{"far past the length, no Upload-Length", "999999", "", "999999"},
		{"one past the length", "11", "", "11"},
		{"negative", "-5", "", "-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hostile := newHostileUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.Method {
				case http.MethodHead:
					w.Header().Set("Upload-Offset", tt.headOffset)
					if tt.headLength != "" {
						w.Header().Set("Upload-Length", tt.headLength)
					}
					w.WriteHeader(http.StatusOK)
				case http.MethodPatch:
					w.Header().Set("Upload-Offset", tt.patchOffset)
					w.WriteHeader(http.StatusNoContent)
				default:
					w.WriteHeader(http.StatusNoContent)
				}
			})
			e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": hostile.URL + "/v2/init"})
			upload := e.create(10, "")
			if got := testkit.HeadOffset(t, http.DefaultClient, upload); got != 0 {
				t.Errorf("HEAD answered offset %d, want 0 (the record's)", got)
			}
			if rec := e.recordOf(upload); rec.Offset != 0 {
				t.Errorf("after HEAD the record's offset is %d, want 0", rec.Offset)
			}
			if resp := e.patch(upload, 0, []byte("0123456789")); resp.StatusCode != http.StatusBadGateway {
				t.Errorf("PATCH: status %d, want 502", resp.StatusCode)
			} else if off := resp.Header.Get("Upload-Offset"); off != "" {
				t.Errorf("PATCH 502 carries Upload-Offset %q", off)
			}
			if rec := e.recordOf(upload); rec.Offset != 0 {
				t.Errorf("after PATCH the record's offset is %d, want 0", rec.Offset)
			}
			if got := testkit.HeadOffset(t, http.DefaultClient, upload); got != 0 {
				t.Errorf("HEAD after PATCH answered offset %d, want 0", got)
			}
		})
	}
}

// TestUpstreamDialOutsideAllowlistRefused: the upstream transport checks
// the address it dials against TUSPROXY_UPSTREAM_HOSTS again, so a record
// whose endpoint is not allowed (written by an older, wider allowlist, or
// into a shared store by someone else) is never contacted.
func TestUpstreamDialOutsideAllowlistRefused(t *testing.T) {
	other := newBystander(t)
	e := newEnv(t, nil) // allows the emulator's host:port only
	now := time.Now()
	rec := state.Record{ID: "0123456789abcdef0123456789abcdef", VideoID: "v", Endpoint: other.URL + "/upload/x",
		Length: 10, CreatedAt: now, UpdatedAt: now}
	if err := e.store.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	upload := e.base + rec.ID
	if got := testkit.HeadOffset(t, http.DefaultClient, upload); got != 0 {
		t.Errorf("HEAD answered offset %d, want 0 (the record's)", got)
	}
	if resp := e.patch(upload, 0, []byte("0123456789")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("PATCH: status %d, want 502", resp.StatusCode)
	}
	if resp := e.do(http.MethodDelete, upload, nil, nil); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("DELETE: status %d, want 502", resp.StatusCode)
	}
	e.recordOf(upload)
	other.check(t)
}

// TestInitErrorTextNotPassedOn: whatever Kinescope's error says goes to the
// log; the client gets tusproxy's own message and Kinescope's request id.
func TestInitErrorTextNotPassedOn(t *testing.T) {
	const phish = `{"error":{"code":400101,"message":"re-enter your password at https://phish.example","detail":"see https://phish.example/help"}}`
	tests := []struct {
		name      string
		status    int
		requestID string
		wantID    string // in the client's answer
	}{
		{"bad request", http.StatusBadRequest, "kr-7f3a9c01", "kr-7f3a9c01"},
		{"limit", http.StatusPaymentRequired, "kr-7f3a9c02", "kr-7f3a9c02"},
		{"auth", http.StatusUnauthorized, "kr-7f3a9c03", "kr-7f3a9c03"},
		{"unavailable", http.StatusServiceUnavailable, "kr-7f3a9c04", "kr-7f3a9c04"},
		{"unexpected status", http.StatusTeapot, "kr-7f3a9c05", "kr-7f3a9c05"},
		{"request id that is text", http.StatusBadRequest, "visit https://phish.example now", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			initSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-ID", tt.requestID)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(phish))
			}))
			defer initSrv.Close()
			e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": initSrv.URL + "/v2/init"})
			requests := []struct {
				name, url string
				headers   map[string]string
				body      []byte
			}{
				{"tus creation", e.base, map[string]string{"Upload-Length": "10"}, nil},
				{"seed, tus headers", e.srv.URL + "/upload", map[string]string{"Upload-Length": "10"}, nil},
				{"seed, JSON", e.srv.URL + "/upload", map[string]string{"Content-Type": "application/json", "Accept": "application/json"},
					[]byte(`{"filename":"a.mp4","filesize":10}`)},
			}
			for _, req := range requests {
				resp, body := e.doBody(http.MethodPost, req.url, req.headers, req.body)
				if resp.StatusCode < 400 {
					t.Fatalf("%s: status %d, want an error", req.name, resp.StatusCode)
				}
				var headers strings.Builder
				_ = resp.Header.Write(&headers)
				if strings.Contains(body, "phish") || strings.Contains(headers.String(), "phish") ||
					strings.Contains(body, "password") {
					t.Errorf("%s: Kinescope's text reached the client:\n%s\n%s", req.name, headers.String(), body)
				}
				if tt.wantID != "" && !strings.Contains(body, tt.wantID) {
					t.Errorf("%s: the answer %q does not quote Kinescope's request id %q", req.name, body, tt.wantID)
				}
			}
			if !strings.Contains(e.logs.String(), "re-enter your password") {
				t.Errorf("Kinescope's message is not in the log")
			}
		})
	}
}

// TestEndpointOnAnotherPortRefused: an endpoint on an allowed host but on a
// port its allowlist entry does not name (a local Redis, an admin port) is
// refused at creation (502, no Location) and the port is never contacted.
func TestEndpointOnAnotherPortRefused(t *testing.T) {
	other := newBystander(t)
	initSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{
			"id": "video-1", "endpoint": other.URL + "/upload/capability-0123456789",
		}})
	}))
	defer initSrv.Close()
	// The allowlist names 127.0.0.1 with the init server's port only.
	e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": initSrv.URL + "/v2/init"})
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "upstream_endpoint_refused") || resp.Header.Get("Location") != "" {
		t.Errorf("creation: status %d %s, want 502 upstream_endpoint_refused", resp.StatusCode, body)
	}
	other.check(t)
}
