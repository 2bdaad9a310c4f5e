package proxy_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

const testToken = "0f4c7a1e-5b7d-4f7e-9a51-3c2d8e6b1a90"

// env is tusproxy in front of a real Kinescope emulator (tusd), both on
// loopback.
type env struct {
	t     *testing.T
	emu   *kinescopetest.Server
	store state.Store
	cfg   *config.Config
	svc   *proxy.Service
	srv   *httptest.Server
	base  string // tus creation URL
	logs  *testkit.SyncBuffer
}

// newEnv starts the emulator and tusproxy. vars override the environment
// tusproxy is configured from.
func newEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	return newEnvWith(t, vars, proxy.Deps{})
}

// newEnvWith is newEnv with some of tusproxy's dependencies chosen by the
// test (a clock, a store); the logger is always the env's own.
func newEnvWith(t *testing.T, vars map[string]string, deps proxy.Deps) *env {
	t.Helper()
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	environ := map[string]string{
		"KINESCOPE_API_TOKEN":          testToken,
		"KINESCOPE_PARENT_ID":          "project-1",
		"KINESCOPE_INIT_URL":           emu.InitURL,
		"TUSPROXY_STORE":               "memory",
		"TUSPROXY_UPSTREAM_CHUNK_SIZE": "256KiB",
		"TUSPROXY_UPSTREAM_TIMEOUT":    "5s",
		"TUSPROXY_INIT_TIMEOUT":        "2s",
		// Tests add a hook or JWT key or not, and create as often as they
		// need; config's tests cover serve's auth requirement and the
		// anonymous creation rate.
		"TUSPROXY_AUTH":        "optional",
		"TUSPROXY_CREATE_RATE": "0",
	}
	for k, v := range vars {
		environ[k] = v
	}
	// The emulator issues endpoints on the address it was called at: allow
	// that host:port (a bare host allows only port 80 or 443), unless the
	// test says otherwise; "{init}" in its list stands for that host:port.
	if hosts, ok := vars["TUSPROXY_UPSTREAM_HOSTS"]; ok {
		environ["TUSPROXY_UPSTREAM_HOSTS"] = strings.ReplaceAll(hosts, "{init}", hostPort(t, environ["KINESCOPE_INIT_URL"]))
	} else {
		environ["TUSPROXY_UPSTREAM_HOSTS"] = hostPort(t, environ["KINESCOPE_INIT_URL"])
	}
	cfg, err := config.Load("serve", nil, func(k string) string { return environ[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if deps.Store == nil {
		deps.Store = state.NewMemory()
	}
	e := &env{t: t, emu: emu, cfg: cfg, store: deps.Store, logs: &testkit.SyncBuffer{}}
	deps.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc, err = proxy.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.svc.Close)
	e.srv = httptest.NewUnstartedServer(e.svc)
	e.srv.Config.ConnContext = proxy.ConnContext
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL + cfg.BasePath
	t.Cleanup(func() { e.checkNoSecretsLogged() })
	return e
}

// checkNoSecretsLogged fails the test if the token or any Kinescope
// endpoint reached the logs.
func (e *env) checkNoSecretsLogged() {
	logs := e.logs.String()
	if strings.Contains(logs, testToken) {
		e.t.Errorf("the API token appears in the logs")
	}
	for _, v := range e.emu.Videos() {
		if strings.Contains(logs, v.Endpoint) || strings.Contains(logs, v.UploadID) {
			e.t.Errorf("a Kinescope endpoint appears in the logs")
		}
	}
}

// newRequest is testkit.TusRequest with the headers as a map (see
// setHeaders). body may be nil.
func newRequest(t testing.TB, method, url string, headers map[string]string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := testkit.TusRequest(t, method, url, rd)
	setHeaders(req.Header, headers)
	return req
}

// setHeaders sets headers over h; an empty value removes the header, so a
// test can leave out Tus-Resumable (or a header create always sends).
func setHeaders(h http.Header, headers map[string]string) {
	for k, v := range headers {
		if v == "" {
			h.Del(k)
			continue
		}
		h.Set(k, v)
	}
}

// do sends a tus request (see newRequest) and returns the answer, its body
// read and closed.
func (e *env) do(method, url string, headers map[string]string, body []byte) *http.Response {
	e.t.Helper()
	resp, _ := e.doBody(method, url, headers, body)
	return resp
}

// doBody is do, returning the answer's body too.
func (e *env) doBody(method, url string, headers map[string]string, body []byte) (*http.Response, string) {
	e.t.Helper()
	resp, raw := testkit.Send(e.t, http.DefaultClient, newRequest(e.t, method, url, headers, body))
	return resp, string(raw)
}

// create starts an upload and returns its URL.
func (e *env) create(length int64, metadata string) string {
	e.t.Helper()
	resp := e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length":   itoa(length),
		"Upload-Metadata": metadata,
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create: status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.base) {
		e.t.Fatalf("create: Location %q is not on tusproxy's origin", loc)
	}
	return loc
}

func (e *env) patch(url string, offset int64, chunk []byte) *http.Response {
	e.t.Helper()
	return e.do(http.MethodPatch, url, map[string]string{
		"Upload-Offset": itoa(offset),
		"Content-Type":  "application/offset+octet-stream",
	}, chunk)
}

// video is the emulator's record of the upload behind url.
func (e *env) video(url string) kinescopetest.Video {
	e.t.Helper()
	id := testkit.UploadID(url)
	rec, err := e.store.Get(e.t.Context(), id)
	if err != nil {
		e.t.Fatalf("store: %v", err)
	}
	v, ok := e.emu.Video(rec.VideoID)
	if !ok {
		e.t.Fatalf("emulator has no video %s", rec.VideoID)
	}
	return v
}

// hostPort is the host:port of rawURL, as an upstream hosts entry.
func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		t.Fatalf("%q has no host:port", rawURL)
	}
	return u.Host
}
