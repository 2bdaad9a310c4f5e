package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// The emulator and the plain reverse proxy run as children of the bench
// program (the same executable, started with roleEnv set), not inside it:
// each component of the measurement is then a process of its own, as
// tusproxy is, and the CPU each one spends can be read from /proc.
const (
	roleEnv          = "TUSBENCH_ROLE"
	roleEmulator     = "emulator"
	roleReverseProxy = "reverse-proxy"
	// tokenEnv is the emulator's API token; upstreamEnv is the reverse
	// proxy's upstream base URL.
	tokenEnv    = "TUSBENCH_TOKEN"
	upstreamEnv = "TUSBENCH_UPSTREAM"
	// With a TLS upstream, the emulator serves HTTPS with certEnv and
	// keyEnv (PEM files), and the reverse proxy trusts the CAs in caEnv.
	certEnv = "TUSBENCH_TLS_CERT"
	keyEnv  = "TUSBENCH_TLS_KEY"
	caEnv   = "TUSBENCH_CA_FILE"
	// readyPrefix starts the one line a role prints once it listens.
	readyPrefix = "tusbench-ready "
	// videoPath is the emulator role's own route: the SHA-256 and offset of
	// the video created with a given filename. tusproxy does not tell its
	// clients Kinescope's video id, so uploads are found by filename.
	videoPath = "/bench/video"
)

// runRole runs a child role until it gets SIGTERM or SIGINT, and returns
// the process's exit code.
func runRole(role string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var handler http.Handler
	var tlsConfig *tls.Config
	switch role {
	case roleEmulator:
		emu, err := kinescopetest.New(kinescopetest.Options{Token: getenv(tokenEnv), Discard: true})
		if err != nil {
			fmt.Fprintln(stderr, "bench emulator:", err)
			return 1
		}
		defer emu.Close()
		handler = &emulatorFront{emu: emu, byFilename: make(map[string]string)}
		if certFile := getenv(certEnv); certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, getenv(keyEnv))
			if err != nil {
				fmt.Fprintln(stderr, "bench emulator:", err)
				return 1
			}
			// HTTP/1.1 only, as every hop speaks upstream (nginx's
			// proxy_http_version 1.1, tusproxy's transport): an
			// httputil.ReverseProxy would otherwise multiplex every upload
			// on one HTTP/2 connection, another protocol than the others'.
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
		}
	case roleReverseProxy:
		upstream, err := url.Parse(getenv(upstreamEnv))
		if err != nil || upstream.Host == "" {
			fmt.Fprintln(stderr, "bench reverse proxy: bad upstream URL")
			return 1
		}
		var roots *x509.CertPool
		if caFile := getenv(caEnv); caFile != "" {
			if roots, err = loadRoots(caFile); err != nil {
				fmt.Fprintln(stderr, "bench reverse proxy:", err)
				return 1
			}
		}
		handler = newReverseProxy(upstream, roots, stderr)
	default:
		fmt.Fprintf(stderr, "bench: unknown role %q\n", role)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "bench", role+":", err)
		return 1
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(stderr, role+": ", 0)}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsConfig)
	}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stdout, "%s%s://%s\n", readyPrefix, scheme, ln.Addr())
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// newReverseProxy is the peer tusproxy is compared with: the standard
// library's reverse proxy with no tus logic at all. Its transport keeps up to
// 256 idle connections to the upstream instead of DefaultTransport's 2, so
// that 200 concurrent uploads do not reconnect on every request: the least
// tuning anyone deploying it for uploads would do. With a TLS upstream it
// trusts roots, the run's own CA.
func newReverseProxy(upstream *url.URL, roots *x509.CertPool, stderr io.Writer) http.Handler {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 256
	transport.MaxIdleConnsPerHost = 256
	if roots != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport: transport,
		ErrorLog:  log.New(stderr, "reverse proxy: ", 0),
	}
}

// emulatorFront is the Kinescope emulator (discard mode) plus the bench's
// own lookup route.
type emulatorFront struct {
	emu *kinescopetest.Emulator

	mu         sync.Mutex
	byFilename map[string]string // video id by the filename sent to /v2/init
}

// videoState is the answer of videoPath.
type videoState struct {
	ID     string `json:"id"`
	Offset int64  `json:"offset"`
	SHA256 string `json:"sha256"`
}

func (f *emulatorFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v2/init":
		rec := &initRecorder{ResponseWriter: w}
		f.emu.ServeHTTP(rec, r)
		if rec.status != http.StatusCreated {
			return
		}
		var answer struct {
			Data struct {
				ID       string `json:"id"`
				Filename string `json:"filename"`
			} `json:"data"`
		}
		if json.Unmarshal(rec.body.Bytes(), &answer) == nil && answer.Data.Filename != "" {
			f.mu.Lock()
			f.byFilename[answer.Data.Filename] = answer.Data.ID
			f.mu.Unlock()
		}
	case videoPath:
		f.mu.Lock()
		id, ok := f.byFilename[r.URL.Query().Get("filename")]
		f.mu.Unlock()
		video, known := f.emu.Video(id)
		if !ok || !known {
			http.Error(w, "no video with this filename", http.StatusNotFound)
			return
		}
		sum, err := f.emu.SHA256(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(videoState{ID: id, Offset: video.Offset, SHA256: sum})
	default:
		f.emu.ServeHTTP(w, r)
	}
}

// initRecorder passes an init answer through and keeps a copy of it.
type initRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *initRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *initRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len() < 64<<10 {
		r.body.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

func (r *initRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
