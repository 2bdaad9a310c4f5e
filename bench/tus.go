package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// targetKind is what the load generator talks to.
type targetKind int

const (
	// direct: the emulator's tus endpoint itself, the physical limit.
	direct targetKind = iota
	// reverseProxy: httputil.ReverseProxy in front of the emulator, the
	// peer with no tus logic.
	reverseProxy
	// nginx16k and nginx256k: nginx in front of the emulator, streaming
	// request bodies (no request buffering), with client_body_buffer_size
	// at its default (16k) and at 256k: the hop operators already run in
	// front of tus servers.
	nginx16k
	nginx256k
	// viaTusproxy: tusproxy, a tus server that forwards to the emulator.
	viaTusproxy
	numKinds
)

// kinds are every target, in the order of the report's columns.
var kinds = []targetKind{direct, reverseProxy, nginx16k, nginx256k, viaTusproxy}

func (k targetKind) String() string {
	return [...]string{"direct", "reverse proxy", "nginx 16k", "nginx 256k", "tusproxy"}[k]
}

// key names the kind in upload filenames and in -targets.
func (k targetKind) key() string {
	return [...]string{"direct", "rproxy", "nginx16k", "nginx256k", "tusproxy"}[k]
}

// target is one of the ways of uploading (direct or through a hop), with a connection pool of
// its own.
type target struct {
	kind   targetKind
	client *http.Client
	// hop is the process between the client and the emulator (nil for
	// direct), whose CPU and memory are measured; startHop starts a new one
	// and returns it with its base URL.
	hop      *child
	startHop func() (*child, string, error)
	// base is where requests go: the emulator, the reverse proxy or tusproxy.
	base string
	// emulatorBase is the emulator's base URL, which the endpoints it issues
	// start with.
	emulatorBase string
	token        string
}

// newTarget is a target with the client of the fast workloads. roots are
// the CAs the client trusts when it speaks TLS to the emulator itself
// (direct with a TLS upstream); nil otherwise.
func newTarget(kind targetKind, emulatorBase, token string, roots *x509.CertPool) *target {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		// What a browser or tus-js-client in Node sends in one go is at least
		// this; the default 4 KiB would make the client the bottleneck.
		WriteBufferSize: 64 << 10,
		ReadBufferSize:  64 << 10,
	}
	if roots != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &target{kind: kind, client: &http.Client{Transport: transport}, base: emulatorBase,
		emulatorBase: emulatorBase, token: token}
}

// withSlowClient is a copy of t whose client suits n uploads held open at
// once, each on a connection of its own (its creation's, kept idle until
// its PATCH), with the transport's default 4 KiB buffers: 10,000
// connections with the fast client's 64 KiB buffers would cost the load
// generator over a gigabyte.
//
// It waits up to 30 s for a connection, as a browser does, not the fast
// client's 5 s: a hop slow to accept ten thousand connections (its accept
// queue full, SYNs retried by the kernel after 1, 3 and 7 s) is slow, and
// only one that does not accept them at all fails them.
func (t *target) withSlowClient(n int) *target {
	fast := t.client.Transport.(*http.Transport)
	slow := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     fast.TLSClientConfig,
		MaxIdleConnsPerHost: n,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	copied := *t
	copied.client = &http.Client{Transport: slow}
	return &copied
}

// restartHop replaces the hop by a fresh process and returns the peak RSS
// (VmHWM) of the one it stopped.
func (t *target) restartHop() (oldPeak int64, err error) {
	if t.hop != nil {
		if st, err := t.hop.usage(); err == nil {
			oldPeak = st.hwm
		}
		t.hop.stop()
		t.client.CloseIdleConnections()
	}
	t.hop, t.base, err = t.startHop()
	return oldPeak, err
}

// create starts an upload of size bytes and returns its URL. direct and the
// peers get it from the emulator's /v2/init (through the peer), as a backend
// following Kinescope's guide would; tusproxy gets a tus creation POST.
func (t *target) create(ctx context.Context, size int64, filename string) (string, error) {
	if t.kind == viaTusproxy {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/files/", nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
		req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(filename)))
		resp, body, err := t.do(req)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") == "" {
			return "", fmt.Errorf("tus creation: status %d: %s", resp.StatusCode, body)
		}
		location, err := req.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			return "", fmt.Errorf("tus creation: bad Location: %w", err)
		}
		return location.String(), nil
	}

	initBody, _ := json.Marshal(map[string]any{
		"parent_id": "bench", "type": "video", "title": filename, "filename": filename, "filesize": size,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/v2/init", strings.NewReader(string(initBody)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.token)
	resp, body, err := t.do(req)
	if err != nil {
		return "", err
	}
	var answer struct {
		Data struct {
			Endpoint string `json:"endpoint"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &answer) != nil || answer.Data.Endpoint == "" {
		return "", fmt.Errorf("init: status %d: %s", resp.StatusCode, body)
	}
	endpoint := answer.Data.Endpoint
	if t.kind != direct {
		// The emulator names itself in the endpoint; the client is to go
		// through the peer, which speaks plain HTTP to it.
		rest, ok := strings.CutPrefix(endpoint, t.emulatorBase)
		if !ok {
			return "", fmt.Errorf("init: endpoint %s is not on the emulator", endpoint)
		}
		endpoint = t.base + rest
	}
	return endpoint, nil
}

// patch sends the payload's bytes at offset and returns the new offset.
func (t *target) patch(ctx context.Context, uploadURL string, offset int64, body *payload) (int64, error) {
	return t.patchBody(ctx, uploadURL, offset, body, body.end-body.pos)
}

// patchBody sends length bytes read from body at offset and returns the new
// offset.
func (t *target) patchBody(ctx context.Context, uploadURL string, offset int64, body io.Reader, length int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, uploadURL, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = length
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, text, err := t.do(req)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("PATCH at %d: status %d: %s", offset, resp.StatusCode, text)
	}
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// head returns the upload's offset.
func (t *target) head(ctx context.Context, uploadURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, uploadURL, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, _, err := t.do(req)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HEAD: status %d", resp.StatusCode)
	}
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// do sends req and reads the (short) answer to its end, so that the
// connection goes back to the pool.
func (t *target) do(req *http.Request) (*http.Response, string, error) {
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, "", err
	}
	return resp, strings.TrimSpace(string(body)), nil
}

// emulatorClient asks the emulator what an upload received.
type emulatorClient struct {
	base   string
	client *http.Client
}

// video returns the offset and SHA-256 of the video created with filename.
func (e *emulatorClient) video(ctx context.Context, filename string) (videoState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+videoPath+"?filename="+url.QueryEscape(filename), nil)
	if err != nil {
		return videoState{}, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return videoState{}, err
	}
	defer resp.Body.Close()
	var state videoState
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return state, fmt.Errorf("emulator: %s: status %d: %s", filename, resp.StatusCode, strings.TrimSpace(string(text)))
	}
	return state, json.NewDecoder(resp.Body).Decode(&state)
}
