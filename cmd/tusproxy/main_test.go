package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// TestMain lets tests run the real program in a subprocess: the test binary
// re-executes itself with TUSPROXY_TEST_ARGS set and becomes tusproxy.
func TestMain(m *testing.M) {
	if args := os.Getenv("TUSPROXY_TEST_ARGS"); args != "" {
		os.Args = append([]string{"tusproxy"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const token = "11111111-2222-3333-4444-555555555555"

type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testkit.SyncBuffer
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

// startProxy runs "tusproxy serve" as a real process against emu. store is
// a bolt file path or a redis:// URL; addr "" picks a free port.
func startProxy(t *testing.T, emu *kinescopetest.Server, store, addr string, extra ...string) *proc {
	t.Helper()
	if addr == "" {
		addr = testkit.FreeAddr(t)
	}
	p := &proc{addr: addr, stderr: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(),
		"TUSPROXY_TEST_ARGS=serve",
		"KINESCOPE_API_TOKEN="+token,
		"KINESCOPE_PARENT_ID=p1",
		"KINESCOPE_INIT_URL="+emu.InitURL,
		"TUSPROXY_LISTEN="+p.addr,
		"TUSPROXY_UPSTREAM_HOSTS="+upstreamHost(emu),
		"TUSPROXY_UPSTREAM_CHUNK_SIZE=64KiB",
		"TUSPROXY_STORE="+storeSpec(store),
		"TUSPROXY_METRICS_LISTEN=off",
		// Anonymous, and without anonymous serve's default creation rate:
		// these tests create more uploads from one address than it allows.
		// extra may override both (the last value of a variable wins).
		"TUSPROXY_AUTH=none",
		"TUSPROXY_CREATE_RATE=0",
	)
	p.cmd.Env = append(p.cmd.Env, extra...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	waitHealthy(t, "http://"+p.addr)
	return p
}

// storeSpec turns a test's store argument into TUSPROXY_STORE.
func storeSpec(store string) string {
	if strings.Contains(store, "://") {
		return store
	}
	return "bolt:" + store
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became healthy", base)
}

// slowReader feeds data in small steps so a PATCH stays in flight.
type slowReader struct {
	data []byte
	step int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(20 * time.Millisecond)
	n := copy(p, s.data[:min(s.step, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

// startSlowPatch sends data[offset:] as one slow PATCH in the background and
// returns once the upstream holds more than offset+min bytes.
func startSlowPatch(t *testing.T, emu *kinescopetest.Server, videoID, url string, data []byte, offset int64, atLeast int64) {
	t.Helper()
	go func() {
		req, _ := http.NewRequest(http.MethodPatch, url, &slowReader{data: data[offset:], step: 16 << 10})
		req.ContentLength = int64(len(data)) - offset
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := emu.Video(videoID)
		if v.Offset > offset+atLeast {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream never got past %d bytes", offset+atLeast)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func create(t *testing.T, base string, length int) string {
	t.Helper()
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPost, base+"/files/", nil, "Upload-Length", strconv.Itoa(length))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestRestartAfterSIGKILLMidPatchResumesByteExact(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	db := t.TempDir() + "/tusproxy.db"
	data := testkit.RandomBytes(2 << 20)

	p := startProxy(t, emu, db, "")
	loc := create(t, "http://"+p.addr, len(data))
	videoID := emu.Videos()[0].ID
	startSlowPatch(t, emu, videoID, loc, data, 0, 200<<10)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	// Same address, same bolt file: the upload URL still works.
	startProxy(t, emu, db, p.addr)
	offset := testkit.HeadOffset(t, http.DefaultClient, loc)
	v, _ := emu.Video(videoID)
	if offset != v.Offset || offset == 0 {
		t.Fatalf("after restart HEAD answers %d, the upstream holds %d", offset, v.Offset)
	}
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPatch, loc, bytes.NewReader(data[offset:]),
		"Upload-Offset", strconv.FormatInt(offset, 10), "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resume PATCH: %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, emu, videoID, data)
}

func TestSIGTERMDrainsAndRecordsOffsets(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	db := t.TempDir() + "/tusproxy.db"
	p := startProxy(t, emu, db, "", "TUSPROXY_SHUTDOWN_TIMEOUT=500ms")
	const uploads = 20
	data := testkit.RandomBytes(4 << 20)
	var locs []string
	for i := 0; i < uploads; i++ {
		loc := create(t, "http://"+p.addr, len(data))
		locs = append(locs, loc)
	}
	videos := emu.Videos()
	for i, loc := range locs {
		startSlowPatch(t, emu, videos[i].ID, loc, data, 0, 32<<10)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("tusproxy exited with %v after SIGTERM\n%s", p.err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tusproxy did not exit after SIGTERM")
	}
	// Every record holds exactly what the upstream kept.
	store, err := state.OpenBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, loc := range locs {
		id := testkit.UploadID(loc)
		rec, err := store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := emu.Video(videos[i].ID)
		if rec.Offset != v.Offset || rec.OffsetUncertain {
			t.Errorf("upload %d: recorded offset %d (uncertain %v), upstream holds %d", i, rec.Offset, rec.OffsetUncertain, v.Offset)
		}
		if v.Offset == 0 || v.Offset == int64(len(data)) {
			t.Errorf("upload %d was not in flight at SIGTERM (upstream offset %d)", i, v.Offset)
		}
	}
}

func TestBadConfigurationExitsBeforeListening(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{
		"KINESCOPE_API_TOKEN":   "secret-token-value",
		"TUSPROXY_MAX_SIZE":     "lots",
		"TUSPROXY_UPLOAD_TTL":   "-1h",
		"TUSPROXY_CORS_ORIGINS": "not an origin",
	}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil {
		t.Fatal("run accepted a bad configuration")
	}
	out := stderr.String()
	for _, want := range []string{"KINESCOPE_PARENT_ID", "-max-size", "TUSPROXY_MAX_SIZE", "TUSPROXY_UPLOAD_TTL", "TUSPROXY_CORS_ORIGINS"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not name %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-token-value") {
		t.Errorf("the token was printed")
	}
	if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines < 4 {
		t.Errorf("want one line per problem (4), got %d:\n%s", lines, out)
	}
}

func TestDevCommandServesAnUpload(t *testing.T) {
	addr := testkit.FreeAddr(t)
	stdout := &testkit.SyncBuffer{}
	env := map[string]string{"TUSPROXY_LISTEN": addr, "TUSPROXY_LOG_LEVEL": "error", "TUSPROXY_METRICS_LISTEN": "off"}
	stop := runInProcess("dev", env, stdout)
	waitHealthy(t, "http://"+addr)
	if !strings.Contains(stdout.String(), "http://"+addr+"/files/") {
		t.Errorf("dev does not print the upload URL:\n%s", stdout.String())
	}
	data := testkit.RandomBytes(300_000)
	loc := create(t, "http://"+addr, len(data))
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPatch, loc, bytes.NewReader(data), "Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != "300000" {
		t.Fatalf("PATCH through dev: %d %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	if err := stop(); err != nil {
		t.Fatalf("dev exited with %v", err)
	}
}

// runInProcess runs `tusproxy command flags...` in this process, with env as
// its whole environment and its standard output to stdout (its errors are
// dropped). stop cancels it and returns what run returned.
func runInProcess(command string, env map[string]string, stdout io.Writer, flags ...string) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{command}, flags...), func(k string) string { return env[k] }, stdout, io.Discard)
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// inProcessServeEnv is the environment of an anonymous, quiet serve on addr
// in front of emu, with a memory store and no admin listener.
func inProcessServeEnv(emu *kinescopetest.Server, addr string) map[string]string {
	return map[string]string{
		"KINESCOPE_API_TOKEN": token, "KINESCOPE_PARENT_ID": "p1", "KINESCOPE_INIT_URL": emu.InitURL,
		"TUSPROXY_LISTEN": addr, "TUSPROXY_UPSTREAM_HOSTS": upstreamHost(emu), "TUSPROXY_STORE": "memory", "TUSPROXY_AUTH": "none",
		"TUSPROXY_LOG_LEVEL": "error", "TUSPROXY_METRICS_LISTEN": "off",
	}
}

// upstreamHost is the TUSPROXY_UPSTREAM_HOSTS entry for emu's endpoints:
// its host:port, since a bare host allows only the default port.
func upstreamHost(emu *kinescopetest.Server) string {
	return strings.TrimPrefix(emu.URL, "http://")
}

// serve without an auth hook or JWT key refuses to start, naming the
// setting that allows anonymous uploads.
func TestServeWithoutAuthRefusesToStart(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{
		"KINESCOPE_API_TOKEN": token, "KINESCOPE_PARENT_ID": "p1", "TUSPROXY_LISTEN": "127.0.0.1:0",
		"TUSPROXY_STORE": "memory", "TUSPROXY_METRICS_LISTEN": "off",
	}
	// Already cancelled: a serve that starts returns nil at once instead of
	// serving, so the test ends either way.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, &stderr)
	if err == nil {
		t.Fatal("serve started with neither an auth hook nor JWT")
	}
	for _, want := range []string{"-auth (TUSPROXY_AUTH)", "TUSPROXY_AUTH_HOOK_URL", "TUSPROXY_JWT_SECRET", "TUSPROXY_AUTH=none"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, stderr.String())
		}
	}
}

// serve with a JWKS URL it cannot fetch does not start: every token would
// be refused. The error names the setting.
func TestServeWithoutItsJWKSRefusesToStart(t *testing.T) {
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer provider.Close()
	env := map[string]string{
		"KINESCOPE_API_TOKEN": token, "KINESCOPE_PARENT_ID": "p1", "TUSPROXY_LISTEN": "127.0.0.1:0",
		"TUSPROXY_STORE": "memory", "TUSPROXY_METRICS_LISTEN": "off", "TUSPROXY_JWT_JWKS_URL": provider.URL + "/jwks.json",
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a serve that starts returns nil at once
	err := run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "TUSPROXY_JWT_JWKS_URL") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("serve with an unreachable key set: %v, want an error naming TUSPROXY_JWT_JWKS_URL and the 503", err)
	}
}

// serve with TUSPROXY_AUTH=none starts, says so, and limits creations per
// address by default: the 11th creation within a minute gets 429.
func TestServeAnonymousMode(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	// "TUSPROXY_CREATE_RATE=" unsets startProxy's 0: the default applies.
	p := startProxy(t, emu, filepath.Join(t.TempDir(), "state.db"), "", "TUSPROXY_CREATE_RATE=")
	waitLogged(t, p, `"auth":"anonymous"`)
	base := "http://" + p.addr
	for i := range 10 {
		resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPost, base+"/files/", nil, "Upload-Length", "10")
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("creation %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPost, base+"/files/", nil, "Upload-Length", "10")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("11th creation from one address: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := len(emu.Videos()); n != 10 {
		t.Errorf("%d Kinescope videos, want 10", n)
	}
}

// The start-up line names the auth mode.
func TestServeLogsAuthMode(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	p := startProxy(t, emu, filepath.Join(t.TempDir(), "state.db"), "", "TUSPROXY_AUTH=required",
		"TUSPROXY_JWT_SECRET=a-shared-secret-of-at-least-32-bytes!!", "TUSPROXY_AUTH_HOOK_URL=http://127.0.0.1:1/auth")
	waitLogged(t, p, `"auth":"JWT + hook"`)
}

// waitLogged waits for the process to log want: the start-up line is
// written just after the listener serves, so /healthz may answer first.
func waitLogged(t *testing.T, p *proc, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("tusproxy never logged %s:\n%s", want, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
