package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// TestSIGTERMMetricsLinger: after a SIGTERM drain has ended and the public
// listener is closed, the admin listener still serves /metrics for
// TUSPROXY_METRICS_LINGER, with the drain's final counters: the PATCH the
// drain cut (a 503) and every byte the upstream kept; then it closes and
// the process exits.
func TestSIGTERMMetricsLinger(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	admin := testkit.FreeAddr(t)
	const linger = 3 * time.Second
	p := startProxy(t, emu, t.TempDir()+"/tusproxy.db", "", "TUSPROXY_SHUTDOWN_TIMEOUT=300ms",
		"TUSPROXY_METRICS_LISTEN="+admin, "TUSPROXY_METRICS_LINGER="+linger.String(), "TUSPROXY_LOG_FORMAT=text")
	data := testkit.RandomBytes(4 << 20)
	loc := create(t, "http://"+p.addr, len(data))
	video := emu.Videos()[0]
	startSlowPatch(t, emu, video.ID, loc, data, 0, 32<<10)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, p, "admin listener serving the last scrapes")
	lingerBegan := time.Now()
	if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the public listener still accepts connections after the drain")
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("/metrics after the drain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics after the drain: %d", resp.StatusCode)
	}
	kept, _ := emu.Video(video.ID)
	if kept.Offset == 0 || kept.Offset == int64(len(data)) {
		t.Fatalf("the upload was not cut by the drain (upstream offset %d)", kept.Offset)
	}
	for name, want := range map[string]float64{
		`tusproxy_http_requests_total{method="PATCH",status_class="5xx"}`: 1,
		`tusproxy_upstream_accepted_bytes_total`:                          float64(kept.Offset),
		`tusproxy_ready{state="draining"}`:                                1,
		`tusproxy_ready{state="ready"}`:                                   0,
	} {
		if got, ok := sample(string(body), name); !ok || got != want {
			t.Errorf("/metrics after the drain: %s = %v (found %v), want %v", name, got, ok, want)
		}
	}

	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("tusproxy exited with %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(linger + 10*time.Second):
		t.Fatal("tusproxy did not exit after lingering")
	}
	if waited := time.Since(lingerBegan); waited < linger-time.Second {
		t.Errorf("exited %v after the drain, want about %v of lingering", waited, linger)
	}
	if _, err := http.Get("http://" + admin + "/metrics"); err == nil {
		t.Error("the admin listener still serves after the process exited")
	}
}

// sample is the value of the series named exactly name (with its labels)
// in a text exposition.
func sample(exposition, name string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}
