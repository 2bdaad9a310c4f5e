package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the certificate authority of a TLS run and the emulator's
// certificate, as files every hop can be pointed to.
type pki struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
}

// tlsServerName is the name the emulator's certificate holds besides
// 127.0.0.1 and ::1. nginx is told to check it (proxy_ssl_name), since it
// does not send an IP address as SNI.
const tlsServerName = "localhost"

// writePKI generates a CA and a certificate for the emulator signed by it
// (ECDSA P-256, valid for a day) and writes them to dir as PEM files. The
// upstream in production is HTTPS; a CA of the run's own, trusted only by
// the hops of this run, lets every hop check the certificate as it would
// in production instead of skipping verification.
func writePKI(dir string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tusproxy bench CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: tlsServerName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{tlsServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &pki{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "emulator-cert.pem"),
		keyFile:  filepath.Join(dir, "emulator-key.pem"),
		roots:    x509.NewCertPool(),
	}
	p.roots.AddCert(ca)
	return p, errors.Join(
		writePEM(p.caFile, "CERTIFICATE", caDER),
		writePEM(p.certFile, "CERTIFICATE", certDER),
		writePEM(p.keyFile, "PRIVATE KEY", keyDER),
	)
}

func writePEM(path, blockType string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600)
}

// loadRoots reads a PEM bundle of CAs.
func loadRoots(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, errors.New(path + ": no PEM certificates")
	}
	return pool, nil
}
