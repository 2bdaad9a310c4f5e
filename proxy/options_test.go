package proxy_test

import (
	"net/http"
	"testing"
)

func TestOptions(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_MAX_SIZE": "10GiB"})
	resp := e.do(http.MethodOptions, e.base, map[string]string{"Tus-Resumable": ""}, nil)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Tus-Version":   "1.0.0",
		"Tus-Extension": "creation,creation-with-upload,termination,expiration",
		"Tus-Max-Size":  "10737418240",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s %q, want %q", header, got, want)
		}
	}
	e = newEnv(t, map[string]string{"TUSPROXY_UPLOAD_TTL": "0"})
	resp = e.do(http.MethodOptions, e.base, nil, nil)
	if got := resp.Header.Get("Tus-Extension"); got != "creation,creation-with-upload,termination" {
		t.Errorf("without expiry Tus-Extension %q", got)
	}
	if resp.Header.Get("Tus-Max-Size") != "" {
		t.Errorf("Tus-Max-Size sent without a maximum")
	}
	loc := e.create(10, "")
	if r := e.do(http.MethodHead, loc, nil, nil); r.Header.Get("Upload-Expires") != "" {
		t.Errorf("Upload-Expires sent although uploads never expire")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.doBody(http.MethodGet, e.srv.URL+"/healthz", nil, nil)
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}
