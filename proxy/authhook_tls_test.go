package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The auth hook trusts the system's roots, never TUSPROXY_UPSTREAM_CA_FILE,
// which is Kinescope's private CA: an https hook with a public certificate
// keeps working when that CA is set, and a hook certificate signed only by
// it is refused. The system roots are read once per process, so each case
// runs in a child process whose SSL_CERT_FILE holds the "system" CA.
func TestAuthHookTrustsSystemRootsNotUpstreamCA(t *testing.T) {
	if hookURL := os.Getenv("TUSPROXY_TEST_HOOK_URL"); hookURL != "" {
		e := newEnv(t, map[string]string{
			"TUSPROXY_AUTH_HOOK_URL":    hookURL,
			"TUSPROXY_UPSTREAM_CA_FILE": os.Getenv("TUSPROXY_TEST_UPSTREAM_CA"),
		})
		want, _ := strconv.Atoi(os.Getenv("TUSPROXY_TEST_WANT"))
		if resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil); resp.StatusCode != want {
			t.Fatalf("creation through the https hook: %d, want %d", resp.StatusCode, want)
		}
		return
	}
	hook := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"owner": "alice"}`)
	}))
	hook.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake of the second case
	hook.StartTLS()
	defer hook.Close()
	dir := t.TempDir()
	hookCA := writePEM(t, filepath.Join(dir, "hook-ca.pem"), hook.Certificate().Raw)
	otherCA := writePEM(t, filepath.Join(dir, "kinescope-ca.pem"), selfSignedCA(t))
	for _, tt := range []struct {
		name               string
		system, upstreamCA string
		want               int
	}{
		{"hook CA in the system roots, another upstream CA", hookCA, otherCA, http.StatusCreated},
		{"hook CA only as the upstream CA", otherCA, hookCA, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAuthHookTrustsSystemRootsNotUpstreamCA$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+tt.system, "SSL_CERT_DIR="+t.TempDir(),
				"TUSPROXY_TEST_HOOK_URL="+hook.URL, "TUSPROXY_TEST_UPSTREAM_CA="+tt.upstreamCA,
				"TUSPROXY_TEST_WANT="+strconv.Itoa(tt.want))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func writePEM(t *testing.T, path string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// selfSignedCA is a CA certificate that signed nothing the test serves.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "private Kinescope CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
