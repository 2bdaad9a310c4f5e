package proxy_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// A Kinescope reached over https, whose certificate is trusted only through
// TUSPROXY_UPSTREAM_CA_FILE.
func TestUpstreamOverTLSWithCustomCA(t *testing.T) {
	emu, err := kinescopetest.New(kinescopetest.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	srv := httptest.NewTLSServer(emu) // issues https:// endpoints
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	// Without the CA, the certificate is not trusted: Kinescope is unreachable.
	e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": srv.URL + "/v2/init"})
	if resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("untrusted upstream certificate: %d, want 503", resp.StatusCode)
	}

	e = newEnv(t, map[string]string{"KINESCOPE_INIT_URL": srv.URL + "/v2/init", "TUSPROXY_UPSTREAM_CA_FILE": caFile})
	data := testkit.RandomBytes(300_000)
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": itoa(int64(len(data)))}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", resp.StatusCode)
	}
	v := emu.Videos()[0]
	if !strings.HasPrefix(v.Endpoint, "https://127.0.0.1") {
		t.Fatalf("the emulator issued %q, want an https endpoint", v.Endpoint)
	}
	if r := e.patch(resp.Header.Get("Location"), 0, data); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH over https: %d", r.StatusCode)
	}
	testkit.CheckBytes(t, emu, v.ID, data)
}
