package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func adminGet(t *testing.T, srv *httptest.Server, path, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestAdminListener(t *testing.T) {
	m := newMetricsEnv(t, nil)
	admin := httptest.NewServer(m.svc.AdminHandler(m.reg))
	t.Cleanup(admin.Close)

	resp, body := adminGet(t, admin, "/metrics", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`tusproxy_build_info{goversion="go`, `version="test"} 1`, "go_goroutines ",
		"process_resident_memory_bytes ", `tusproxy_http_requests_total{method="PATCH",status_class="5xx"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	resp, body = adminGet(t, admin, "/metrics", "application/openmetrics-text; version=1.0.0")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("/metrics asked for OpenMetrics: Content-Type %q, ends %q", resp.Header.Get("Content-Type"), body[max(0, len(body)-20):])
	}

	if resp, body := adminGet(t, admin, "/healthz", ""); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	if resp, body := adminGet(t, admin, "/readyz", ""); resp.StatusCode != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := adminGet(t, admin, "/debug/pprof/", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without TUSPROXY_PPROF: %d, want 404", resp.StatusCode)
	}
	// Metrics are never served to uploaders.
	if resp, _ := adminGet(t, m.srv, "/metrics", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", resp.StatusCode)
	}

	m.svc.Drain()
	if resp, body := adminGet(t, admin, "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable || body != "shutting down\n" {
		t.Errorf("/readyz while draining: %d %q, want 503", resp.StatusCode, body)
	}
}

func TestAdminReadyzStoreDown(t *testing.T) {
	m := newMetricsEnv(t, nil)
	admin := httptest.NewServer(m.svc.AdminHandler(m.reg))
	t.Cleanup(admin.Close)
	if err := m.store.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, body := adminGet(t, admin, "/readyz", ""); resp.StatusCode != http.StatusServiceUnavailable || body != "state store unreachable\n" {
		t.Errorf("/readyz with the store closed: %d %q, want 503", resp.StatusCode, body)
	}
	if resp, _ := adminGet(t, admin, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with the store closed: %d, want 200 (alive, just not ready)", resp.StatusCode)
	}
}

func TestAdminPprof(t *testing.T) {
	m := newMetricsEnv(t, map[string]string{"TUSPROXY_PPROF": "true"})
	admin := httptest.NewServer(m.svc.AdminHandler(m.reg))
	t.Cleanup(admin.Close)
	if resp, body := adminGet(t, admin, "/debug/pprof/", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", resp.StatusCode)
	}
	if resp, body := adminGet(t, admin, "/debug/pprof/heap?debug=1", ""); resp.StatusCode != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("/debug/pprof/heap: %d", resp.StatusCode)
	}
}
