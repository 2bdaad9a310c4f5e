package kinescopetest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec string
		want kinescopetest.Faults
	}{
		{"", kinescopetest.Faults{}},
		{"none", kinescopetest.Faults{}},
		{"cut-patch-every=3,cut-patch-after=256KiB", kinescopetest.Faults{CutPatchEvery: 3, CutPatchAfter: 256 << 10}},
		{" fail-every=4 , fail-status=502 ", kinescopetest.Faults{FailEvery: 4, FailStatus: 502}},
		{"init-status=401,init-delay=2s,init-drop", kinescopetest.Faults{InitStatus: 401, InitDelay: 2 * time.Second, InitDrop: true}},
		{"latency=20ms,wrong-offset=true", kinescopetest.Faults{Latency: 20 * time.Millisecond, WrongOffset: true}},
		{"init-drop=false", kinescopetest.Faults{}},
		{"cut-patch-every=1,cut-patch-after=1000", kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 1000}},
	}
	for _, tt := range tests {
		got, err := kinescopetest.ParseFaults(tt.spec)
		if err != nil {
			t.Errorf("ParseFaults(%q): %v", tt.spec, err)
			continue
		}
		if got.String() != tt.want.String() {
			t.Errorf("ParseFaults(%q) = %s, want %s", tt.spec, got, tt.want)
		}
		// The spec String writes reads back the same.
		again, err := kinescopetest.ParseFaults(got.String())
		if err != nil || again.String() != got.String() {
			t.Errorf("ParseFaults(%q).String() = %q does not read back: %v, %s", tt.spec, got, err, again)
		}
	}
}

func TestParseFaultsErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"cut-patch-every=0":                      "at least 1",
		"cut-patch-every=x":                      "at least 1",
		"cut-patch-after=5":                      "needs cut-patch-every",
		"fail-status=503":                        "needs fail-every",
		"fail-every=2,fail-status=99":            "HTTP status",
		"latency=fast":                           "duration",
		"latency=-1s":                            "duration",
		"init-drop=maybe":                        "true or false",
		"explode=1":                              "unknown fault",
		"fail-every=2,fail-every=3":              "given twice",
		"fail-every=2,,":                         "empty fault",
		"cut-patch-every=1,cut-patch-after=3TiB": "size",
	} {
		_, err := kinescopetest.ParseFaults(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFaults(%q) error = %v, want it to mention %q", spec, err, want)
		}
	}
}

// TestFaultsRoute switches faults over HTTP, as tests in other processes do,
// and sees them take effect.
func TestFaultsRoute(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	do := func(method, token, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+"/v2/emulator/faults", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Faults string `json:"faults"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out.Faults
	}

	if resp, _ := do(http.MethodPut, "", "fail-every=1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUT without token: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(http.MethodPut, "wrong", "fail-every=1"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUT with a wrong token: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(http.MethodPut, testToken, "fail-every=zero"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT of a bad spec: status %d, want 400", resp.StatusCode)
	}
	if resp, got := do(http.MethodGet, testToken, ""); resp.StatusCode != http.StatusOK || got != "none" {
		t.Fatalf("GET after refused PUTs: %d %q, want 200 none", resp.StatusCode, got)
	}
	if resp, _ := do(http.MethodPost, testToken, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d, want 405", resp.StatusCode)
	}

	resp, got := do(http.MethodPut, testToken, "init-status=402")
	if resp.StatusCode != http.StatusOK || got != "init-status=402" {
		t.Fatalf("PUT init-status=402: %d %q", resp.StatusCode, got)
	}
	if resp, _ := postInit(t, client, s.InitURL, testToken, `{"parent_id":"p","filename":"a.mp4","filesize":10}`); resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("init with init-status=402 in effect: status %d, want 402", resp.StatusCode)
	}
	if resp, got := do(http.MethodPut, testToken, ""); resp.StatusCode != http.StatusOK || got != "none" {
		t.Fatalf("PUT of an empty spec: %d %q, want 200 none", resp.StatusCode, got)
	}
	if resp, _ := postInit(t, client, s.InitURL, testToken, `{"parent_id":"p","filename":"a.mp4","filesize":10}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("init after the faults were cleared: status %d, want 201", resp.StatusCode)
	}
}
