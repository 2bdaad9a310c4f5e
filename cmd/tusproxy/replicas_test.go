package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// The tests here run several tusproxy processes on one Redis, behind a
// round-robin balancer of the test's own with no sticky sessions, as an
// operator scales tusproxy out.

// redisServer is a redis-server process of the test's own, so the test may
// stop and restart it. AOF with fsync on every write makes a restart keep
// every record, as a production Redis configured for tusproxy does.
type redisServer struct {
	t      *testing.T
	port   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("TUSPROXY_TEST_REDIS_REQUIRED") == "1" {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed (TUSPROXY_TEST_REDIS_REQUIRED=1 makes this a failure)")
	}
	_, port, _ := net.SplitHostPort(testkit.FreeAddr(t))
	r := &redisServer{t: t, port: port, dir: t.TempDir()}
	r.start(bin)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + r.port + "/0" }

func (r *redisServer) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--port", r.port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "")
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(r.cmd, r.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", "127.0.0.1:"+r.port)
		if err == nil {
			_, _ = conn.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := conn.Read(buf)
			conn.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %s never answered", r.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts Redis down as an operator's restart does (SIGTERM: it finishes
// its AOF and exits).
func (r *redisServer) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// balancer spreads requests round-robin over the replicas that are up, like
// a load balancer without sticky sessions, and more: the requests of one
// upload take the replicas in turn, so no two in a row meet the same one.
// It records which replicas served each upload.
type balancer struct {
	srv  *httptest.Server
	next atomic.Uint64

	mu       sync.Mutex
	backends []string // replica addresses in rotation
	turns    map[string]uint64
	served   map[string]map[string]bool
}

// headerBalancerError marks an answer the balancer made up itself (its
// replica was unreachable), as opposed to one of tusproxy's.
const headerBalancerError = "X-Test-Balancer-Error"

func newBalancer(t *testing.T) *balancer {
	b := &balancer{turns: make(map[string]uint64), served: make(map[string]map[string]bool)}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(transport.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			backend := pr.In.Context().Value(backendKey{}).(string)
			pr.SetURL(&url.URL{Scheme: "http", Host: backend})
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(headerBalancerError, "1")
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backend, ok := b.pick(r.URL.Path)
		if !ok {
			w.Header().Set(headerBalancerError, "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, backend)))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

type backendKey struct{}

func (b *balancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, addr)
}

// remove takes a replica out of rotation, as a health check would.
func (b *balancer) remove(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, a := range b.backends {
		if a == addr {
			b.backends = append(b.backends[:i], b.backends[i+1:]...)
			return
		}
	}
}

func (b *balancer) pick(path string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.backends) == 0 {
		return "", false
	}
	turn := b.next.Add(1)
	id, isUpload := strings.CutPrefix(path, "/files/")
	isUpload = isUpload && id != ""
	if isUpload {
		// Round-robin per upload: each request of an upload goes to
		// another replica than the one before.
		turn = b.turns[id]
		b.turns[id]++
	}
	backend := b.backends[turn%uint64(len(b.backends))]
	if isUpload {
		if b.served[id] == nil {
			b.served[id] = make(map[string]bool)
		}
		b.served[id][backend] = true
	}
	return backend, true
}

func (b *balancer) replicasServing(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.served[id])
}

// cluster is an emulator, a Redis and n tusproxy replicas behind a balancer.
type cluster struct {
	emu      *kinescopetest.Server
	redis    *redisServer
	lb       *balancer
	replicas []*proc
	admins   []string // each replica's admin listener
}

func startCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	c := &cluster{emu: emu, redis: startRedis(t), lb: newBalancer(t)}
	for range n {
		admin := testkit.FreeAddr(t)
		env := append([]string{
			"TUSPROXY_PUBLIC_URL=" + c.lb.srv.URL,
			"TUSPROXY_METRICS_LISTEN=" + admin,
			"TUSPROXY_LOCK_LEASE=2s",
			"TUSPROXY_LOG_LEVEL=warn",
		}, extra...)
		p := startProxy(t, emu, c.redis.url(), "", env...)
		c.replicas = append(c.replicas, p)
		c.admins = append(c.admins, admin)
		c.lb.add(p.addr)
	}
	return c
}

// tusClient uploads like tus-js-client with retries: on a failed PATCH it
// waits, asks HEAD for the offset and goes on from there. It fails the test
// if tusproxy ever answers HEAD with a 5xx, which would make tus-js-client
// start a new upload.
type tusClient struct {
	t      *testing.T
	http   *http.Client
	head5x atomic.Int64
}

func newTusClient(t *testing.T) *tusClient {
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(transport.CloseIdleConnections)
	return &tusClient{t: t, http: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
}

func (c *tusClient) send(method, url string, body []byte, headers ...string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

const maxAttempts = 200

// create makes an upload through base, retrying what a tus client retries.
func (c *tusClient) create(base string, length int) (string, error) {
	for range maxAttempts {
		resp, err := c.send(http.MethodPost, base+"/files/", nil, "Upload-Length", strconv.Itoa(length))
		if err == nil && resp.StatusCode == http.StatusCreated {
			return resp.Header.Get("Location"), nil
		}
		if err == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusLocked {
			return "", fmt.Errorf("create: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", errors.New("create: gave up")
}

// offset asks HEAD until it gets an answer.
func (c *tusClient) offset(url string) (int64, error) {
	for range maxAttempts {
		resp, err := c.send(http.MethodHead, url, nil)
		if err == nil {
			switch {
			case resp.StatusCode == http.StatusOK:
				return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
			case resp.StatusCode >= 500 && resp.Header.Get(headerBalancerError) == "":
				c.head5x.Add(1)
			case resp.StatusCode != http.StatusLocked && resp.StatusCode < 500:
				return 0, fmt.Errorf("HEAD: %d", resp.StatusCode)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, errors.New("HEAD: gave up")
}

// upload sends data from offset in chunks, resuming after any failure.
func (c *tusClient) upload(url string, data []byte, offset int64, chunk int) error {
	for attempts := 0; offset < int64(len(data)); attempts++ {
		if attempts > maxAttempts {
			return fmt.Errorf("PATCH: gave up at offset %d", offset)
		}
		end := min(offset+int64(chunk), int64(len(data)))
		resp, err := c.send(http.MethodPatch, url, data[offset:end], "Upload-Offset", strconv.FormatInt(offset, 10),
			"Content-Type", "application/offset+octet-stream")
		if err == nil && resp.StatusCode == http.StatusNoContent {
			offset, err = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
			if err != nil {
				return err
			}
			continue
		}
		if err == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusLocked {
			return fmt.Errorf("PATCH: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
		if offset, err = c.offset(url); err != nil {
			return err
		}
	}
	return nil
}

// TestReplicasRoundRobin: 50 uploads through three replicas, each request
// to the next replica in turn; every upload arrives byte-exact.
func TestReplicasRoundRobin(t *testing.T) {
	c := startCluster(t, 3)
	client := newTusClient(t)
	const uploads, parallel = 50, 10
	datas := make([][]byte, uploads)
	locs := make([]string, uploads)
	errs := make(chan error, uploads)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range uploads {
		datas[i] = testkit.RandomBytes(200_000 + i*1000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			loc, err := client.create(c.lb.srv.URL, len(datas[i]))
			if err == nil {
				locs[i] = loc
				err = client.upload(loc, datas[i], 0, 64<<10)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if client.head5x.Load() != 0 {
		t.Errorf("tusproxy answered HEAD with a 5xx %d times", client.head5x.Load())
	}
	videos := map[string]string{} // upload id -> video id
	for _, v := range c.emu.Videos() {
		videos[v.ID] = v.ID
	}
	if len(videos) != uploads {
		t.Fatalf("the emulator has %d videos, want %d (one init per upload)", len(videos), uploads)
	}
	for i, loc := range locs {
		if !strings.HasPrefix(loc, c.lb.srv.URL+"/files/") {
			t.Fatalf("Location %q is not on the balancer's origin", loc)
		}
		// At least three PATCHes each, taking the replicas in turn.
		if n := c.lb.replicasServing(testkit.UploadID(loc)); n != 3 {
			t.Errorf("upload %d was served by %d replica(s), want all 3", i, n)
		}
		checkUploadBytes(t, c, client, loc, datas[i])
	}
}

// checkUploadBytes finds the video behind an upload URL (by its HEAD
// length and the emulator's hash) and compares its bytes.
func checkUploadBytes(t *testing.T, c *cluster, client *tusClient, loc string, want []byte) {
	t.Helper()
	if off, err := client.offset(loc); err != nil || off != int64(len(want)) {
		t.Fatalf("HEAD %s: offset %d (%v), want %d", testkit.UploadID(loc), off, err, len(want))
	}
	for _, v := range c.emu.Videos() {
		if v.Filesize != int64(len(want)) {
			continue
		}
		got, err := c.emu.Data(v.ID)
		if err == nil && bytes.Equal(got, want) {
			return
		}
	}
	t.Fatalf("no video at the emulator holds the bytes of upload %s", testkit.UploadID(loc))
}

// TestReplicaKilledMidPatch: the replica streaming a PATCH is SIGKILLed;
// the client resumes through another, which takes the upload's lock once
// the dead replica's lease runs out, and the upload completes byte-exact.
func TestReplicaKilledMidPatch(t *testing.T) {
	c := startCluster(t, 3)
	client := newTusClient(t)
	data := testkit.RandomBytes(2 << 20)
	loc, err := client.create(c.lb.srv.URL, len(data))
	if err != nil {
		t.Fatal(err)
	}
	videoID := c.emu.Videos()[0].ID

	// PATCH straight to replica 0 so the test knows whom to kill.
	victim := c.replicas[0]
	direct := "http://" + victim.addr + "/files/" + testkit.UploadID(loc)
	startSlowPatch(t, c.emu, videoID, direct, data, 0, 200<<10)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	c.lb.remove(victim.addr)
	killed := time.Now()

	offset, err := client.offset(loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resumed through another replica %v after the kill (lock lease 2s)", time.Since(killed).Round(time.Millisecond))
	if v, _ := c.emu.Video(videoID); offset != v.Offset || offset == 0 {
		t.Fatalf("HEAD after the kill answers %d; the upstream holds %d", offset, v.Offset)
	}
	if err := client.upload(loc, data, offset, 512<<10); err != nil {
		t.Fatal(err)
	}
	testkit.CheckBytes(t, c.emu, videoID, data)
	if client.head5x.Load() != 0 {
		t.Errorf("tusproxy answered HEAD with a 5xx %d times", client.head5x.Load())
	}
}

// TestReplicasRacingPatches: two replicas get a PATCH for the same upload
// at the same offset at once, with different bytes. The lock lets one
// write at a time: the upstream holds a prefix of one body, never a mix.
func TestReplicasRacingPatches(t *testing.T) {
	c := startCluster(t, 2)
	client := newTusClient(t)
	const size = 1 << 20
	loc, err := client.create(c.lb.srv.URL, size)
	if err != nil {
		t.Fatal(err)
	}
	videoID := c.emu.Videos()[0].ID
	id := testkit.UploadID(loc)
	bodies := [][]byte{testkit.RandomBytes(size), testkit.RandomBytes(size)}
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i, p := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPatch, "http://"+p.addr+"/files/"+id, &slowReader{data: bodies[i], step: 32 << 10})
			req.ContentLength = size
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}
		}()
	}
	wg.Wait()
	if statuses[0] == http.StatusNoContent && statuses[1] == http.StatusNoContent {
		t.Fatalf("both racing PATCHes succeeded: %v", statuses)
	}
	got, err := c.emu.Data(videoID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bodies[0][:len(got)]) && !bytes.Equal(got, bodies[1][:len(got)]) {
		t.Fatalf("the upstream's %d bytes mix the two bodies (answers %v)", len(got), statuses)
	}
	offset, err := client.offset(loc)
	if err != nil {
		t.Fatal(err)
	}
	if offset != int64(len(got)) {
		t.Fatalf("HEAD answers %d, the upstream holds %d", offset, len(got))
	}
	t.Logf("answers %v; the upstream kept %d bytes of one body", statuses, len(got))
}

// TestReplicasRedisRestart: Redis restarts while uploads run. Meanwhile
// /readyz fails and requests get 503 (423 for HEAD) with Retry-After; once
// it is back every upload completes byte-exact and no record was lost.
func TestReplicasRedisRestart(t *testing.T) {
	c := startCluster(t, 3)
	client := newTusClient(t)
	c.emu.SetFaults(kinescopetest.Faults{Latency: 20 * time.Millisecond})
	const uploads = 8
	datas := make([][]byte, uploads)
	locs := make([]string, uploads)
	for i := range uploads {
		datas[i] = testkit.RandomBytes(1 << 20)
		loc, err := client.create(c.lb.srv.URL, len(datas[i]))
		if err != nil {
			t.Fatal(err)
		}
		locs[i] = loc
	}
	errs := make(chan error, uploads)
	for i := range uploads {
		go func() { errs <- client.upload(locs[i], datas[i], 0, 64<<10) }()
	}
	// Let the uploads get going, then restart Redis under them.
	inProgress := func() int {
		n := 0
		for _, v := range c.emu.Videos() {
			if v.Offset > 0 && v.Offset < v.Filesize {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); inProgress() < uploads/2; {
		if time.Now().After(deadline) {
			t.Fatal("the uploads never got going")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.redis.stop()
	if inProgress() == 0 {
		t.Fatal("no upload was in progress when Redis stopped; the test proves nothing")
	}
	// Replica 1 is not probed: its own check moves the gauge.
	waitSample(t, c.admins[1], `tusproxy_ready{state="store_unreachable"}`, func(v float64) bool { return v == 1 })
	checkReadyz(t, c.admins[0], http.StatusServiceUnavailable)
	resp, err := client.send(http.MethodHead, "http://"+c.replicas[1].addr+"/files/"+testkit.UploadID(locs[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusLocked || resp.Header.Get("Retry-After") == "" {
		t.Errorf("HEAD while Redis is down: %d (Retry-After %q), want 423 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	time.Sleep(500 * time.Millisecond)
	c.redis.start(c.redis.cmd.Path)
	for range uploads {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkReadyz(t, c.admins[0], http.StatusOK)
	for _, admin := range c.admins {
		waitSample(t, admin, `tusproxy_ready{state="ready"}`, func(v float64) bool { return v == 1 })
		waitSample(t, admin, `tusproxy_ready{state="store_unreachable"}`, func(v float64) bool { return v == 0 })
	}
	// Every replica's checks failed while Redis was down.
	for _, admin := range c.admins {
		waitSample(t, admin, `tusproxy_store_errors_total{operation="ping"}`, func(v float64) bool { return v > 0 })
	}
	for i, loc := range locs {
		checkUploadBytes(t, c, client, loc, datas[i])
	}
	if n := len(c.emu.Videos()); n != uploads {
		t.Errorf("the emulator has %d videos, want %d", n, uploads)
	}
	if client.head5x.Load() != 0 {
		t.Errorf("tusproxy answered HEAD with a 5xx %d times", client.head5x.Load())
	}
}

// waitSample waits (a little) for the admin listener's series name to
// satisfy ok.
func waitSample(t *testing.T, admin, name string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := "never found"
	for {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if v, found := sample(string(body), name); found {
				if ok(v) {
					return
				}
				last = strconv.FormatFloat(v, 'g', -1, 64)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: %s", name, admin, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkReadyz waits (a little) for /readyz to answer want.
func checkReadyz(t *testing.T, admin string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicasShareLimits: the per-address limits hold across replicas on
// Redis. With a creation rate of 3 a minute, creations from one address
// taking the three replicas in turn pass 3 times in all (one on each
// replica), and the 4th gets 429 with Retry-After; with a PATCH cap of 1, a
// PATCH on one replica is refused while the same address streams one on
// another.
func TestReplicasShareLimits(t *testing.T) {
	c := startCluster(t, 3, "TUSPROXY_CREATE_RATE=3", "TUSPROXY_MAX_PATCHES_PER_IP=1")
	client := newTusClient(t)
	const size = 2 << 20
	var locs, videos []string
	for i := range 4 {
		resp, err := client.send(http.MethodPost, c.lb.srv.URL+"/files/", nil, "Upload-Length", strconv.Itoa(size))
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("creation %d: %d, want 201", i+1, resp.StatusCode)
			}
			locs = append(locs, resp.Header.Get("Location"))
			videos = append(videos, resp.Header.Get("Kinescope-Video-Id"))
			continue
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("creation 4 (each replica alone would allow 3): %d, want 429", resp.StatusCode)
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs <= 0 {
			t.Fatalf("creation 4: Retry-After %q, want seconds > 0", resp.Header.Get("Retry-After"))
		}
	}
	if n := len(c.emu.Videos()); n != 3 {
		t.Fatalf("the emulator has %d videos, want 3", n)
	}
	for _, admin := range c.admins {
		waitSample(t, admin, "tusproxy_uploads_created_total", func(v float64) bool { return v == 1 })
		waitSample(t, admin, `tusproxy_limiter_fallbacks_total{limit="create_rate"}`, func(v float64) bool { return v == 0 })
	}

	// A PATCH streams on replica 0; the same address on replica 1 is refused.
	streaming := "http://" + c.replicas[0].addr + "/files/" + testkit.UploadID(locs[0])
	startSlowPatch(t, c.emu, videos[0], streaming, testkit.RandomBytes(size), 0, 64<<10)
	resp, err := client.send(http.MethodPatch, "http://"+c.replicas[1].addr+"/files/"+testkit.UploadID(locs[1]), testkit.RandomBytes(1000),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("PATCH on replica 1 while one streams on replica 0: %d (Retry-After %q), want 429",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
