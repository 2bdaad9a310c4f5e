package dashboards_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// The byte counters the end-to-end check compares with the emulator, as
// proxy/metrics.go registers them: a rename is a change here only. lost
// may not exist yet; the check then uses received >= accepted.
const (
	metricReceived = "tusproxy_client_received_bytes_total"
	metricAccepted = "tusproxy_upstream_accepted_bytes_total"
	metricLost     = "tusproxy_upstream_lost_bytes_total"
)

// mayBeEmpty lists the panel queries that can legitimately return nothing
// in this short, healthy run, with the reason. Everything else must show
// data at some point of the run. Keep it short: an entry here is a panel an
// operator could see empty.
var mayBeEmpty = map[string]string{}

// prometheusBinary returns the path of prometheus, skipping the test when
// it is missing unless TUSPROXY_PROMETHEUS_REQUIRED is set (as CI sets it
// after installing Debian's prometheus package).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("TUSPROXY_PROMETHEUS_REQUIRED") != "" {
			t.Fatalf("prometheus is required (TUSPROXY_PROMETHEUS_REQUIRED) but not on PATH: %v", err)
		}
		t.Skip("prometheus is not on PATH (apt-get install prometheus); set TUSPROXY_PROMETHEUS_REQUIRED=1 to fail instead")
	}
	return path
}

// TestPrometheusScrapesDev runs a real Prometheus scraping a real
// `tusproxy dev` every second, with alerts.yml loaded, while uploads run
// against emulator faults (cut PATCHes, failed requests). It then checks,
// through Prometheus's HTTP API, that every panel query of the dashboard
// returns data, that every rule of alerts.yml evaluates without error, and
// that the byte counters Prometheus holds match what the emulator stored.
// It reads tusproxy.json and alerts.yml at run time, so it checks whatever
// they say now.
func TestPrometheusScrapesDev(t *testing.T) {
	promBin := prometheusBinary(t)
	if testing.Short() {
		t.Skip("runs a real Prometheus for about a minute")
	}
	dir := t.TempDir()

	// The real program, built as CI would build it. Building is not part
	// of the scenario's time bound: from a cold cache, on a loaded CI
	// machine, it alone can take a minute.
	bin := filepath.Join(dir, "tusproxy")
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 5*time.Minute)
	build := exec.CommandContext(buildCtx, goTool(), "build", "-o", bin, "github.com/kinescope-tools/tusproxy/cmd/tusproxy")
	out, err := build.CombinedOutput()
	cancelBuild()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The scenario itself: about 15 s here, bounded at 90 s.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{})
	const emuToken = "prometheus-test-emulator-token-0123456789"
	listen, admin, emuAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	dev := startProcess(t, "tusproxy", exec.Command(bin, "dev",
		"-listen", listen, "-metrics-listen", admin, "-emulator-listen", emuAddr,
		"-emulator-token", emuToken, "-emulator-faults", "cut-patch-every=3,fail-every=5",
		"-create-rate", "0", "-log-level", "warn",
		"-webhook-url", rcv.URL+"/hooks", "-webhook-secret", testkit.WebhookSecret))
	waitHTTP(t, ctx, "http://"+listen+"/healthz", dev)

	// Prometheus: 1 s scrapes and rule evaluations, alerts.yml loaded.
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	promAddr := testkit.FreeAddr(t)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: tusproxy
    static_configs:
      - targets: [%q]
`, rules, admin)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProcess(t, "prometheus", exec.Command(promBin,
		"--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn"))
	api := &promAPI{t: t, ctx: ctx, base: "http://" + promAddr}
	waitHTTP(t, ctx, api.base+"/-/ready", prom)
	began := time.Now()
	api.waitFor("the first scrape of tusproxy", func() bool {
		return len(api.query(`up{job="tusproxy"} == 1`, time.Time{})) > 0
	})

	// Uploads through the faults: each client resumes from HEAD until done.
	sizes := []int{3 << 20, 2<<20 + 12345, 5 << 20, 1<<20 + 1, 4 << 20}
	var wg sync.WaitGroup
	for i, size := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uploadWithResumes(t, ctx, "http://"+listen+"/files/", fmt.Sprintf("video-%d.bin", i), testkit.RandomBytes(size))
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	rcv.WaitFor(20*time.Second, "the webhooks of every upload", func(d []testkit.WebhookAttempt) bool {
		return len(d) >= 2*len(sizes) // created and completed of each
	})

	// A scrape after the last upload ended: the counters are final there.
	uploaded := time.Now()
	api.waitFor("a scrape after the uploads", func() bool {
		s := api.query(`timestamp(up{job="tusproxy"})`, time.Time{})
		return len(s) > 0 && s[0].value > float64(uploaded.UnixMilli())/1000+1
	})
	end := time.Now()

	t.Run("byte counters match the emulator", func(t *testing.T) {
		var stored int64
		for _, v := range emulatorVideos(t, ctx, "http://"+emuAddr, emuToken) {
			stored += v.Offset
		}
		var want int64
		for _, s := range sizes {
			want += int64(s)
		}
		if stored != want {
			t.Errorf("the emulator holds %d bytes, the uploads were %d", stored, want)
		}
		api := &promAPI{t: t, ctx: ctx, base: api.base}
		received := api.scalar("sum(" + metricReceived + ")")
		accepted := api.scalar("sum(" + metricAccepted + ")")
		t.Logf("Prometheus: %s %.0f, %s %.0f; emulator %d", metricReceived, received, metricAccepted, accepted, stored)
		if accepted != float64(stored) {
			t.Errorf("%s = %.0f, the emulator holds %d", metricAccepted, accepted, stored)
		}
		if received < float64(stored) {
			t.Errorf("%s = %.0f is less than the %d bytes the emulator holds", metricReceived, received, stored)
		}
		if received == float64(stored) {
			t.Errorf("%s = %.0f equals what the emulator holds: the cut PATCHes should have cost resent bytes", metricReceived, received)
		}
		if api.noSeries(metricLost) {
			t.Logf("%s is not exported: received - lost = stored not checked", metricLost)
		} else if lost := api.scalar("sum(" + metricLost + ")"); received-lost != float64(stored) {
			t.Errorf("%s %.0f - %s %.0f = %.0f, the emulator holds %d", metricReceived, received, metricLost, lost, received-lost, stored)
		}
	})

	t.Run("every rule evaluates", func(t *testing.T) {
		api := &promAPI{t: t, ctx: ctx, base: api.base}
		checkRules(t, api)
		// Each alert's expression, queried on its own: it parses and
		// evaluates (firing is not required).
		for _, r := range loadRules(t) {
			api.query(r.fields["expr"], end)
		}
	})

	t.Run("every panel query returns data", func(t *testing.T) {
		api := &promAPI{t: t, ctx: ctx, base: api.base}
		exprs := dashboardExprs(loadDashboard(t))
		keys := make([]string, 0, len(exprs))
		for k := range exprs {
			if !strings.HasPrefix(k, "variable ") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		earlier := 0
		defer func() { t.Logf("%d panel queries checked, %d with data only before the end", len(keys), earlier) }()
		for _, k := range keys {
			expr := livePromQL(exprs[k])
			// The last value, as a stat panel shows it, and else any value
			// over the run, as a time series panel draws it.
			if hasData(api.query(expr, end)) {
				continue
			}
			if hasData(api.queryRange(expr, began, end)) {
				earlier++
				t.Logf("%s: no data at the end of the run, only earlier (a series that ends with its upload)", k)
				continue
			}
			if why, ok := mayBeEmpty[k]; ok {
				t.Logf("%s: no data, allowed: %s", k, why)
				continue
			}
			t.Errorf("%s: no data during the run\n  expr: %s", k, expr)
		}
		for _, v := range []string{"job", "instance"} {
			if vals := api.labelValues(v); len(vals) == 0 {
				t.Errorf("variable %s: no values", v)
			}
		}
	})
	t.Logf("scenario took %s", time.Since(began).Round(time.Second))
}

// livePromQL is a panel query as Grafana sends it over a short run: the
// rate interval covers several 1 s scrapes, $__range the run, and the
// template variables become regexes matching this run's job and instance.
func livePromQL(expr string) string {
	expr = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "5s", "$__range", "5m").Replace(expr)
	return grafanaVariable.ReplaceAllString(expr, ".+")
}

// hasData reports a sample that is a number: histogram_quantile over no
// observations answers NaN, which Grafana shows as no data.
func hasData(samples []sample) bool {
	for _, s := range samples {
		if !math.IsNaN(s.value) {
			return true
		}
	}
	return false
}

// checkRules waits until every group of alerts.yml has been evaluated and
// fails on any rule whose evaluation failed; a recording rule must also
// produce a series.
func checkRules(t *testing.T, api *promAPI) {
	t.Helper()
	var groups []ruleGroup
	api.waitFor("every rule group evaluated", func() bool {
		groups = api.rules()
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.LastEvaluation.IsZero() || r.LastEvaluation.Year() < 2000 {
					return false
				}
			}
		}
		return len(groups) > 0
	})
	n := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("group %s, %s rule %s: health %q, error %q\n  expr: %s", g.Name, r.Type, r.Name, r.Health, r.LastError, r.Query)
			}
			if r.Type == "recording" && !hasData(api.query(r.Name, time.Time{})) {
				t.Errorf("group %s: recording rule %s has no series\n  expr: %s", g.Name, r.Name, r.Query)
			}
		}
	}
	if want := len(loadRules(t)); n < want {
		t.Errorf("Prometheus loaded %d rules, alerts.yml has %d alerts", n, want)
	}
}

// ---------------------------------------------------------------- processes

// goTool is the go command that runs this test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

type process struct {
	name   string
	cmd    *exec.Cmd
	output *testkit.SyncBuffer
	exited chan struct{}
}

// startProcess starts cmd and stops it (then waits) when the test ends;
// its output is shown if the test fails.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, output: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output.String())
		}
	})
	return p
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func waitHTTP(t *testing.T, ctx context.Context, url string, p *process) {
	t.Helper()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before %s answered:\n%s", p.name, url, p.output.String())
		case <-ctx.Done():
			t.Fatalf("%s never answered 200 (last error %v)", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- uploads

// throttled hands out its bytes in 64 KiB steps a few milliseconds apart,
// so an upload spans several scrapes.
type throttled struct{ r io.Reader }

func (s throttled) Read(p []byte) (int, error) {
	time.Sleep(15 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

// uploadWithResumes creates an upload and sends data, resuming from the
// offset HEAD answers after every failed or cut PATCH, as tus clients do.
func uploadWithResumes(t *testing.T, ctx context.Context, endpoint, filename string, data []byte) {
	client := &http.Client{Timeout: 30 * time.Second}
	tus := func(method, u string, body io.Reader, hdr ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Tus-Resumable", "1.0.0")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	var loc string
	for attempt := 0; loc == ""; attempt++ {
		resp, err := tus(http.MethodPost, endpoint, nil, "Upload-Length", strconv.Itoa(len(data)),
			"Upload-Metadata", "filename "+b64(filename))
		switch {
		case err == nil && resp.StatusCode == http.StatusCreated:
			u, err := url.Parse(endpoint)
			if err != nil {
				t.Error(err)
				return
			}
			l, err := u.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Error(err)
				return
			}
			loc = l.String()
		case attempt >= 10:
			t.Errorf("%s: creation keeps failing: %v %v", filename, resp, err)
			return
		default:
			time.Sleep(200 * time.Millisecond)
		}
	}
	offset := int64(0)
	for attempt := 0; offset < int64(len(data)); attempt++ {
		if attempt > 60 {
			t.Errorf("%s: not complete after %d PATCHes (offset %d of %d)", filename, attempt, offset, len(data))
			return
		}
		resp, err := tus(http.MethodPatch, loc, throttled{bytes.NewReader(data[offset:])},
			"Upload-Offset", strconv.FormatInt(offset, 10), "Content-Type", "application/offset+octet-stream")
		if err == nil && resp.StatusCode == http.StatusNoContent {
			if offset, err = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64); err != nil {
				t.Errorf("%s: PATCH answered Upload-Offset %q", filename, resp.Header.Get("Upload-Offset"))
				return
			}
			continue
		}
		// Failed or cut: ask where to resume, as a client would.
		for {
			if ctx.Err() != nil {
				t.Errorf("%s: %v", filename, ctx.Err())
				return
			}
			resp, err := tus(http.MethodHead, loc, nil)
			if err == nil && resp.StatusCode == http.StatusOK {
				offset, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type emulatorVideo struct {
	ID       string `json:"id"`
	Filesize int64  `json:"filesize"`
	Offset   int64  `json:"offset"`
}

// emulatorVideos is GET /v2/emulator/videos: what the emulator stored.
func emulatorVideos(t *testing.T, ctx context.Context, base, token string) []emulatorVideo {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/emulator/videos", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []emulatorVideo `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/emulator/videos: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data
}

// ---------------------------------------------------------------- Prometheus's HTTP API

type promAPI struct {
	t    *testing.T
	ctx  context.Context
	base string
}

type sample struct {
	labels map[string]string
	value  float64
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Name           string    `json:"name"`
		Query          string    `json:"query"`
		Type           string    `json:"type"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	} `json:"rules"`
}

// get calls an API path and decodes its data, failing the test on an
// error answer (a query that does not parse, for one).
func (a *promAPI) get(path string, params url.Values, data any) {
	a.t.Helper()
	req, err := http.NewRequestWithContext(a.ctx, http.MethodGet, a.base+path+"?"+params.Encode(), nil)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		a.t.Fatalf("GET %s: %s: %v", path, resp.Status, err)
	}
	if out.Status != "success" {
		a.t.Errorf("GET %s %v: %s: %s", path, params, resp.Status, out.Error)
		return
	}
	if err := json.Unmarshal(out.Data, data); err != nil {
		a.t.Fatalf("GET %s: data: %v", path, err)
	}
}

// query is /api/v1/query at at (zero: now); a scalar result is one sample.
func (a *promAPI) query(expr string, at time.Time) []sample {
	a.t.Helper()
	params := url.Values{"query": {expr}}
	if !at.IsZero() {
		params.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	a.get("/api/v1/query", params, &data)
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			a.t.Fatal(err)
		}
		out := make([]sample, 0, len(vec))
		for _, v := range vec {
			out = append(out, sample{labels: v.Metric, value: promValue(v.Value[1])})
		}
		return out
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			a.t.Fatal(err)
		}
		return []sample{{value: promValue(v[1])}}
	}
	return nil
}

// queryRange is /api/v1/query_range from..to by 1 s, flattened.
func (a *promAPI) queryRange(expr string, from, to time.Time) []sample {
	a.t.Helper()
	params := url.Values{"query": {expr}, "step": {"1"},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)}}
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	a.get("/api/v1/query_range", params, &data)
	var out []sample
	for _, r := range data.Result {
		for _, v := range r.Values {
			out = append(out, sample{labels: r.Metric, value: promValue(v[1])})
		}
	}
	return out
}

// scalar is the single value of expr now, failing the test without one.
func (a *promAPI) scalar(expr string) float64 {
	a.t.Helper()
	s := a.query(expr, time.Time{})
	if len(s) != 1 {
		a.t.Fatalf("%s: %d samples, want 1", expr, len(s))
	}
	return s[0].value
}

// noSeries reports that Prometheus has never seen the metric name.
func (a *promAPI) noSeries(name string) bool {
	a.t.Helper()
	return len(a.query("count("+name+")", time.Time{})) == 0
}

func (a *promAPI) labelValues(label string) []string {
	a.t.Helper()
	var vals []string
	a.get("/api/v1/label/"+label+"/values", url.Values{"match[]": {"tusproxy_build_info"}}, &vals)
	return vals
}

func (a *promAPI) rules() []ruleGroup {
	a.t.Helper()
	var data struct {
		Groups []ruleGroup `json:"groups"`
	}
	a.get("/api/v1/rules", url.Values{}, &data)
	return data.Groups
}

// waitFor polls cond every 200 ms until it holds, failing the test when
// the scenario's deadline passes first.
func (a *promAPI) waitFor(what string, cond func() bool) {
	a.t.Helper()
	for !cond() {
		select {
		case <-a.ctx.Done():
			a.t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// promValue reads a sample value, which the API sends as a string.
func promValue(v any) float64 {
	s, _ := v.(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}
