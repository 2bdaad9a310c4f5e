package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tusproxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSListenerAndHeaderCap(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	certFile, keyFile, pool := selfSigned(t)
	addr := testkit.FreeAddr(t)
	env := inProcessServeEnv(emu, addr)
	env["TUSPROXY_TLS_CERT_FILE"], env["TUSPROXY_TLS_KEY_FILE"] = certFile, keyFile
	env["TUSPROXY_MAX_HEADER_BYTES"] = "4KiB"
	stop := runInProcess("serve", env, io.Discard)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("https listener never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/files/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", "10")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Location"), base+"/files/") {
		t.Fatalf("creation over https: %v %v", err, resp)
	}
	// Headers over the cap are refused with 431 before any handler runs.
	req.Header.Set("Upload-Metadata", "filename "+strings.Repeat("QUFB", 8192)) // 32 KiB: net/http allows 4 KiB of slack over the cap
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 KiB header with a 4 KiB cap: %d, want 431", resp.StatusCode)
	}
	// Plain http on the TLS port does not work.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
		t.Errorf("plain http answered 200 on the TLS listener")
	}
}

func TestSlowHeadersAreCut(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	addr := testkit.FreeAddr(t)
	env := inProcessServeEnv(emu, addr)
	env["TUSPROXY_READ_HEADER_TIMEOUT"] = "300ms"
	stop := runInProcess("serve", env, io.Discard)
	defer func() { _ = stop() }()
	waitHealthy(t, "http://"+addr)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a request line, then silence (slowloris).
	conn.Write([]byte("POST /files/ HTTP/1.1\r\nHost: x\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	_, err = conn.Read(buf)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open 5 s after a 300 ms header timeout")
	}
}
