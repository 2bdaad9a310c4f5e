// Package dashboards_test keeps the Grafana dashboard and the Prometheus
// alert rules in this directory honest: every metric they name must be one
// tusproxy registers, with the labels it has, so renaming a metric or a
// label in proxy/ breaks this test instead of silently emptying a panel or
// muting an alert. With promtool on PATH it also checks every expression's
// syntax, runs the rules' unit tests, and evaluates the dashboard's
// multi-replica aggregation on synthetic series.
package dashboards_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

const (
	dashboardFile  = "tusproxy.json"
	alertsFile     = "alerts.yml"
	alertsTestFile = "alerts_test.yml"
)

// ---------------------------------------------------------------- dashboard

type dashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Tags          []string `json:"tags"`
	SchemaVersion int      `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// queryText is the variable's query, which Grafana stores either as a
// string or as an object with a query field.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &obj) == nil {
		return obj.Query
	}
	return ""
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: trailing data after the dashboard object", dashboardFile)
	}
	return d
}

// allPanels flattens rows: a collapsed row keeps its panels inside it.
func allPanels(panels []panel) []panel {
	var out []panel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs maps a place in the dashboard ("panel 7 \"Title\" A",
// "variable instance") to its PromQL.
func dashboardExprs(d dashboard) map[string]string {
	exprs := make(map[string]string)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			exprs["variable "+v.Name] = v.queryText()
		}
	}
	return exprs
}

func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "tusproxy" {
		t.Errorf("uid = %q, want the fixed uid %q (links and provisioning rely on it)", d.UID, "tusproxy")
	}
	if d.Title == "" {
		t.Error("the dashboard has no title")
	}
	for _, tag := range []string{"tusproxy", "tus", "kinescope"} {
		if !slices.Contains(d.Tags, tag) {
			t.Errorf("tags %q lack %q", d.Tags, tag)
		}
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion = %d, want a Grafana 10+ schema (>= 36)", d.SchemaVersion)
	}

	vars := make(map[string]variable)
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || strings.Trim(string(ds.Query), `"`) != "prometheus" {
		t.Errorf("want a variable datasource of type datasource querying prometheus, have %+v", ds)
	}
	if inst, ok := vars["instance"]; !ok || !inst.Multi || !inst.IncludeAll {
		t.Errorf("want a multi-value instance variable with All, have %+v", inst)
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query ${datasource}", v.Name)
		}
	}

	panels := allPanels(d.Panels)
	if len(panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	ids := make(map[int]string)
	targets := 0
	for _, p := range panels {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: no id", name)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id already used by %q", name, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("%s: no title", name)
		}
		if strings.TrimSpace(p.Description) == "" {
			t.Errorf("%s: no description", name)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v does not fit the 24-column grid", name, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource is %+v, want uid ${datasource}", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", name)
		}
		refIDs := make(map[string]bool)
		for _, tg := range p.Targets {
			targets++
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s target %s: datasource is %+v, want uid ${datasource}", name, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: empty expr", name, tg.RefID)
			}
			if tg.RefID == "" || refIDs[tg.RefID] {
				t.Errorf("%s: missing or repeated refId %q", name, tg.RefID)
			}
			refIDs[tg.RefID] = true
		}
	}
	if targets == 0 {
		t.Fatal("no panel has a query")
	}
	checkNoOverlap(t, d.Panels)
}

// checkNoOverlap fails on panels laid over one another; Grafana would
// shuffle them on import, and the layout in the file would lie.
func checkNoOverlap(t *testing.T, panels []panel) {
	t.Helper()
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %d %q and %d %q overlap", a.ID, a.Title, b.ID, b.Title)
			}
		}
	}
}

// ---------------------------------------------------------------- alert rules

// rule is one alerting rule of alerts.yml; fields holds expr and for, and
// labels and annotations as "labels.severity", "annotations.summary".
type rule struct {
	name   string
	line   int
	fields map[string]string
}

var blockScalar = regexp.MustCompile(`^[|>][+-]?$`)

// parseRules reads the alerting rules of a Prometheus rules file, as far as
// this test needs: the module has no YAML library (and takes none for a
// test), so this handles what alerts.yml uses: block mappings, `- alert:`
// list items, plain, single- and double-quoted scalars and block scalars
// (`expr: |`). Anything else it cannot read is an error, not a skip.
func parseRules(text string) ([]rule, error) {
	lines := strings.Split(text, "\n")
	var rules []rule
	var cur *rule
	ruleIndent := -1 // indentation of the current rule's keys
	section := ""    // "labels" or "annotations" while inside one
	sectionIndent := -1
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if strings.HasPrefix(trimmed, "- ") {
			// A list item: a new rule, or whatever else ends the current one.
			key, value, _ := strings.Cut(strings.TrimPrefix(trimmed, "- "), ":")
			if cur != nil {
				rules = append(rules, *cur)
				cur = nil
			}
			if strings.TrimSpace(key) == "alert" {
				name, err := yamlScalar(strings.TrimSpace(value))
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", i+1, err)
				}
				cur = &rule{name: name, line: i + 1, fields: make(map[string]string)}
				ruleIndent = indent + 2
				section = ""
			}
			continue
		}
		if cur == nil {
			continue
		}
		if indent < ruleIndent {
			rules = append(rules, *cur)
			cur = nil
			continue
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value inside rule %s, have %q", i+1, cur.name, trimmed)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case indent == ruleIndent:
			section = ""
			if value == "" && (key == "labels" || key == "annotations") {
				section, sectionIndent = key, -1
				continue
			}
		case section != "" && (sectionIndent == -1 || indent == sectionIndent):
			sectionIndent = indent
			key = section + "." + key
		default:
			return nil, fmt.Errorf("line %d: unexpected indentation in rule %s", i+1, cur.name)
		}
		if blockScalar.MatchString(value) {
			var block []string
			blockIndent := -1
			for i+1 < len(lines) {
				next := lines[i+1]
				nextIndent := len(next) - len(strings.TrimLeft(next, " "))
				if strings.TrimSpace(next) != "" && nextIndent <= indent {
					break
				}
				i++
				if strings.TrimSpace(next) == "" {
					block = append(block, "")
					continue
				}
				if blockIndent == -1 {
					blockIndent = nextIndent
				}
				if nextIndent < blockIndent {
					return nil, fmt.Errorf("line %d: block scalar less indented than its first line", i+1)
				}
				block = append(block, next[blockIndent:])
			}
			sep := "\n"
			if value[0] == '>' {
				sep = " "
			}
			cur.fields[key] = strings.TrimSpace(strings.Join(block, sep))
			continue
		}
		v, err := yamlScalar(value)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		cur.fields[key] = v
	}
	if cur != nil {
		rules = append(rules, *cur)
	}
	return rules, nil
}

// yamlScalar reads a one-line YAML scalar: plain, 'single' or "double"
// quoted (whose escapes the rules use are Go's too).
func yamlScalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("double-quoted scalar %s: %w", s, err)
		}
		return v, nil
	case strings.HasPrefix(s, `'`):
		if len(s) < 2 || !strings.HasSuffix(s, `'`) {
			return "", fmt.Errorf("unterminated single-quoted scalar %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], `''`, `'`), nil
	}
	if before, _, found := strings.Cut(s, " #"); found {
		s = before
	}
	return strings.TrimSpace(s), nil
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parseRules(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	// The parser must have seen every rule, or the checks below would pass
	// on a part of the file.
	items := regexp.MustCompile(`(?m)^\s*- alert:`).FindAllStringIndex(string(raw), -1)
	if len(rules) == 0 || len(rules) != len(items) {
		t.Fatalf("%s: parsed %d rules, the file has %d `- alert:` items", alertsFile, len(rules), len(items))
	}
	return rules
}

func TestParseRules(t *testing.T) {
	const text = `groups:
  - name: g
    rules:
      - alert: One
        expr: up == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "say \"hi\" to {{ $labels.instance }}"
          description: 'it''s down'
      - alert: Two
        expr: |
          sum by (job) (
            rate(x_total[5m])
          ) > 0

        for: 0m
        labels:
          severity: critical
  - name: h
    rules:
      - record: job:x:rate5m
        expr: rate(x_total[5m])
      - alert: "Three"
        expr: >-
          a
          and b
        for: 1m
`
	rules, err := parseRules(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []rule{
		{name: "One", line: 4, fields: map[string]string{"expr": "up == 0", "for": "5m", "labels.severity": "warning",
			"annotations.summary": `say "hi" to {{ $labels.instance }}`, "annotations.description": "it's down"}},
		{name: "Two", line: 12, fields: map[string]string{"expr": "sum by (job) (\n  rate(x_total[5m])\n) > 0", "for": "0m",
			"labels.severity": "critical"}},
		{name: "Three", line: 25, fields: map[string]string{"expr": "a and b", "for": "1m"}},
	}
	if fmt.Sprint(rules) != fmt.Sprint(want) {
		t.Errorf("parseRules:\n have %v\n want %v", rules, want)
	}

	for _, bad := range []string{
		"      - alert: X\n        expr: \"unterminated\n",
		"      - alert: X\n        expr up\n",
		"      - alert: X\n        labels:\n          severity: x\n            deeper: y\n",
	} {
		if _, err := parseRules(bad); err == nil {
			t.Errorf("parseRules(%q) = nil error, want one", bad)
		}
	}
}

func TestAlertRules(t *testing.T) {
	rules := loadRules(t)
	testText, err := os.ReadFile(alertsTestFile)
	if err != nil {
		t.Fatal(err)
	}
	fired := alertsTestedFiring(string(testText))
	seen := make(map[string]bool)
	for _, r := range rules {
		name := fmt.Sprintf("%s:%d %s", alertsFile, r.line, r.name)
		if seen[r.name] {
			t.Errorf("%s: alert name used twice", name)
		}
		seen[r.name] = true
		for _, field := range []string{"expr", "for", "labels.severity", "annotations.summary", "annotations.description", "annotations.runbook"} {
			if strings.TrimSpace(r.fields[field]) == "" {
				t.Errorf("%s: no %s", name, field)
			}
		}
		if sev := r.fields["labels.severity"]; sev != "" && !slices.Contains([]string{"critical", "warning", "info"}, sev) {
			t.Errorf("%s: severity %q is not critical, warning or info", name, sev)
		}
		if !fired[r.name] {
			t.Errorf("%s: %s has no test case in which it fires", name, alertsTestFile)
		}
	}
	for name := range fired {
		if !seen[name] {
			t.Errorf("%s tests alert %s, which %s does not define", alertsTestFile, name, alertsFile)
		}
	}
}

// alertsTestedFiring returns the alerts that some case of a promtool test
// file expects to fire: an `alertname:` followed by an `exp_labels:` item
// before the next case.
func alertsTestedFiring(text string) map[string]bool {
	fired := make(map[string]bool)
	current := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "alertname:"):
			current = strings.TrimSpace(strings.TrimPrefix(line, "alertname:"))
		case strings.HasPrefix(line, "- eval_time:"):
			current = ""
		case strings.HasPrefix(line, "- exp_labels:") && current != "":
			fired[current] = true
		}
	}
	return fired
}

// ---------------------------------------------------------------- registered metrics

// metricInfo is what tusproxy registers under one metric name.
type metricInfo struct {
	kind   string // "histogram", "summary" or "" (a single sample per series)
	labels map[string]bool
}

// recordingRegisterer registers on a real registry and remembers the
// descriptors of every collector, so that vectors with no series yet
// (nothing observed, no label values created) are known too.
type recordingRegisterer struct {
	prometheus.Registerer
	metrics map[string]*metricInfo
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]*)"`)
	descConst  = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVar    = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)
	constLabel = regexp.MustCompile(`(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)=`)
)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	kind := ""
	switch c.(type) {
	case *prometheus.HistogramVec:
		kind = "histogram"
	case *prometheus.SummaryVec:
		kind = "summary"
	}
	descs := make(chan *prometheus.Desc)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		s := d.String()
		name := descName.FindStringSubmatch(s)
		if name == nil {
			panic("cannot read the name in descriptor " + s)
		}
		info := r.info(name[1])
		if kind != "" {
			info.kind = kind
		}
		if m := descConst.FindStringSubmatch(s); m != nil {
			for _, l := range constLabel.FindAllStringSubmatch(m[1], -1) {
				info.labels[l[1]] = true
			}
		}
		if m := descVar.FindStringSubmatch(s); m != nil && m[1] != "" {
			for l := range strings.SplitSeq(m[1], ",") {
				info.labels[strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")] = true
			}
		}
	}
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) info(name string) *metricInfo {
	if r.metrics[name] == nil {
		r.metrics[name] = &metricInfo{labels: make(map[string]bool)}
	}
	return r.metrics[name]
}

// registeredMetrics builds tusproxy's registry the way `tusproxy serve`
// does and returns every metric name on it.
func registeredMetrics(t *testing.T) map[string]*metricInfo {
	t.Helper()
	env := map[string]string{"KINESCOPE_API_TOKEN": "dashboards-test-token", "KINESCOPE_PARENT_ID": "dashboards-test", "TUSPROXY_AUTH": "none"}
	cfg, err := config.Load(config.CommandServe, nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	reg := proxy.NewRegistry("test")
	rec := &recordingRegisterer{Registerer: reg, metrics: make(map[string]*metricInfo)}
	if _, err := proxy.New(cfg, proxy.Deps{Metrics: rec, Store: state.NewMemory()}); err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	// The collectors NewRegistry registered itself (Go, process, build
	// info) always have series: their names, types and labels come from a
	// scrape, as do the types of single (non-vector) metrics.
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range families {
		info := rec.info(mf.GetName())
		switch mf.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			info.kind = "histogram"
		case "SUMMARY":
			info.kind = "summary"
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				info.labels[l.GetName()] = true
			}
		}
	}
	if rec.metrics["tusproxy_http_requests_total"] == nil || rec.metrics["go_goroutines"] == nil {
		t.Fatalf("the registry lacks metrics every tusproxy has; recorded %d names", len(rec.metrics))
	}
	return rec.metrics
}

// checkedPrefixes are the metric namespaces of tusproxy's registry; names
// outside them (up, or functions) are not checked by name.
var checkedPrefixes = []string{"tusproxy_", "go_", "process_"}

// scrapeLabels are added to every series by Prometheus, not by tusproxy.
var scrapeLabels = []string{"job", "instance", "__name__"}

var (
	stringLit     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	selector      = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}`)
	matcher       = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""\s*$`)
	grouping      = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	identifier    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	rangeOrSelect = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\[{]`)
)

// unregisteredMetrics returns the problems of one PromQL expression against
// the registered metrics: metric names tusproxy does not register, a
// histogram suffix on a metric that is no histogram, label names a metric
// does not have, and grouping labels no metric has. up, the scrape's own
// metric, is allowed with the scrape labels.
func unregisteredMetrics(expr string, registered map[string]*metricInfo) []string {
	var problems []string
	// Label values and other strings could look like anything: blank them
	// before reading names.
	expr = stringLit.ReplaceAllString(expr, `""`)

	anyLabel := map[string]bool{"le": true, "quantile": true}
	for _, l := range scrapeLabels {
		anyLabel[l] = true
	}
	for _, info := range registered {
		for l := range info.labels {
			anyLabel[l] = true
		}
	}

	// Selectors with matchers: each label must belong to the metric.
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		name, body := m[1], m[2]
		if strings.TrimSpace(body) == "" {
			continue
		}
		for part := range strings.SplitSeq(body, ",") {
			if strings.TrimSpace(part) == "" {
				continue // a trailing comma
			}
			lm := matcher.FindStringSubmatch(part)
			if lm == nil {
				problems = append(problems, fmt.Sprintf("cannot read label matcher %q", strings.TrimSpace(part)))
				continue
			}
			if label := lm[1]; name != "" && !metricHasLabel(name, label, registered) {
				problems = append(problems, fmt.Sprintf("%s has no label %s", name, label))
			}
		}
	}
	// Grouping and matching clauses: the labels must exist somewhere.
	for _, m := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" && !anyLabel[l] {
				problems = append(problems, fmt.Sprintf("%s (%s): no metric has label %s", m[1], m[2], l))
			}
		}
	}
	// Any name selected with {...} or [range] is a metric, whatever its
	// prefix: a misspelt prefix must not slip through.
	for _, m := range rangeOrSelect.FindAllStringSubmatch(expr, -1) {
		if _, ok := resolveMetric(m[1], registered); !ok && m[1] != "up" {
			problems = append(problems, fmt.Sprintf("metric %s is not registered by tusproxy", m[1]))
		}
	}
	// Bare names in tusproxy's namespaces.
	bare := selector.ReplaceAllString(expr, "$1")
	bare = grouping.ReplaceAllString(bare, "")
	for _, name := range identifier.FindAllString(bare, -1) {
		if !hasCheckedPrefix(name) {
			continue
		}
		if _, ok := resolveMetric(name, registered); !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not registered by tusproxy", name))
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

func hasCheckedPrefix(name string) bool {
	for _, p := range checkedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// resolveMetric finds the registered metric a series name belongs to: the
// name itself, or a histogram's _bucket, _sum, _count, or a summary's _sum,
// _count. It returns the extra label that suffix brings ("le" for buckets).
func resolveMetric(name string, registered map[string]*metricInfo) (extra string, ok bool) {
	if _, found := registered[name]; found {
		if info := registered[name]; info.kind == "summary" {
			return "quantile", true
		}
		return "", true
	}
	for _, s := range []struct{ suffix, kind, extra string }{
		{"_bucket", "histogram", "le"},
		{"_sum", "histogram", ""}, {"_count", "histogram", ""},
		{"_sum", "summary", ""}, {"_count", "summary", ""},
	} {
		base, cut := strings.CutSuffix(name, s.suffix)
		if info := registered[base]; cut && info != nil && info.kind == s.kind {
			return s.extra, true
		}
	}
	return "", false
}

func metricHasLabel(name, label string, registered map[string]*metricInfo) bool {
	if slices.Contains(scrapeLabels, label) {
		return true
	}
	if name == "up" {
		return false
	}
	extra, ok := resolveMetric(name, registered)
	if !ok {
		return true // reported as an unknown metric already
	}
	if label == extra {
		return true
	}
	base := name
	if registered[name] == nil {
		base = name[:strings.LastIndex(name, "_")]
	}
	return registered[base].labels[label]
}

func TestMetricsAreRegistered(t *testing.T) {
	registered := registeredMetrics(t)
	exprs := dashboardExprs(loadDashboard(t))
	for _, r := range loadRules(t) {
		exprs[fmt.Sprintf("%s:%d %s", alertsFile, r.line, r.name)] = r.fields["expr"]
	}
	records := loadRecords(t)
	for name, expr := range records {
		exprs[fmt.Sprintf("%s record %s", alertsFile, name)] = expr
		// Recording rules are series Prometheus makes, by job: panels and
		// alerts may select them like tusproxy's own.
		registered[name] = &metricInfo{labels: map[string]bool{}}
	}
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	used := make(map[string]bool)
	for _, where := range keys {
		for _, p := range unregisteredMetrics(exprs[where], registered) {
			t.Errorf("%s: %s\n  expr: %s", where, p, exprs[where])
		}
		for _, name := range identifier.FindAllString(stringLit.ReplaceAllString(exprs[where], `""`), -1) {
			used[name] = true
			// A recording rule's name (level:metric:operations) must be
			// one alerts.yml defines.
			if strings.Contains(name, ":tusproxy_") && records[name] == "" {
				t.Errorf("%s: recording rule %s is not defined in %s", where, name, alertsFile)
			}
		}
	}
	// The dashboard is meant to show every tusproxy metric: one left out is
	// most likely a metric added to proxy/ and forgotten here.
	for name, info := range registered {
		if !strings.HasPrefix(name, "tusproxy_") {
			continue
		}
		if !used[name] && !used[name+"_bucket"] && (info.kind == "" || !used[name+"_count"]) {
			t.Errorf("metric %s is registered but no panel or alert uses it", name)
		}
	}
}

// TestRegistryCheckCatchesMistakes proves the check above can fail: each
// of these expressions names something tusproxy does not have.
func TestRegistryCheckCatchesMistakes(t *testing.T) {
	registered := registeredMetrics(t)
	tests := []struct {
		expr string
		want string // a substring of the one expected problem; "" for none
	}{
		{`rate(tusproxy_nonexistent_total[5m])`, "tusproxy_nonexistent_total is not registered"},
		{`sum(tusproxy_nonexistent_total)`, "tusproxy_nonexistent_total is not registered"},
		{`tusprxy_uploads_in_flight{job="x"}`, "tusprxy_uploads_in_flight is not registered"},
		{`rate(tusproxy_http_requests_total_bucket[5m])`, "tusproxy_http_requests_total_bucket is not registered"},
		{`tusproxy_upstream_requests_total{operaton="init"}`, "has no label operaton"},
		{`tusproxy_http_request_duration_seconds_count{status_class="5xx"}`, "has no label status_class"},
		{`sum by (status_code) (rate(tusproxy_http_requests_total[5m]))`, "no metric has label status_code"},
		{`tusproxy_init_failures_total{reason=~"auth|limit" outcome="x"}`, "cannot read label matcher"},
		// Correct ones, including names that only look like metrics.
		{`histogram_quantile(0.9, sum by (le, method) (rate(tusproxy_http_request_duration_seconds_bucket{job=~"$job", method!="PATCH"}[5m])))`, ""},
		{`absent(up{job="tusproxy_nonexistent_total"} == 1)`, ""},
		{`go_gc_duration_seconds{quantile="0.5"} + go_gc_duration_seconds_count * 0`, ""},
		{`max by (upload_id, video_id) (tusproxy_upload_offset_bytes) * on (instance) group_left (version) tusproxy_build_info`, ""},
	}
	for _, tt := range tests {
		problems := unregisteredMetrics(tt.expr, registered)
		switch {
		case tt.want == "" && len(problems) > 0:
			t.Errorf("%s: unexpected problems %q", tt.expr, problems)
		case tt.want != "" && (len(problems) != 1 || !strings.Contains(problems[0], tt.want)):
			t.Errorf("%s: problems %q, want one containing %q", tt.expr, problems, tt.want)
		}
	}
}

// ---------------------------------------------------------------- promtool

// promtool returns the path of promtool, skipping the test when it is not
// installed unless TUSPROXY_PROMTOOL_REQUIRED is set (as CI sets it after
// installing it), so a missing tool cannot pass CI unnoticed.
// loadRecords returns the recording rules of alerts.yml, name to expr. They
// are read by the same parser, as rules named by their record.
func loadRecords(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^(\s*)- record:`).ReplaceAllString(string(raw), "$1- alert:")
	rules, err := parseRules(text)
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	records := make(map[string]string)
	for _, r := range rules {
		if strings.Contains(r.name, ":") {
			records[r.name] = r.fields["expr"]
		}
	}
	if items := regexp.MustCompile(`(?m)^\s*- record:`).FindAllStringIndex(string(raw), -1); len(items) != len(records) {
		t.Fatalf("%s: parsed %d recording rules, the file has %d `- record:` items", alertsFile, len(records), len(items))
	}
	return records
}

func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("TUSPROXY_PROMTOOL_REQUIRED") != "" {
			t.Fatalf("promtool is required (TUSPROXY_PROMTOOL_REQUIRED) but not on PATH: %v", err)
		}
		t.Skip("promtool is not on PATH (apt-get install prometheus); set TUSPROXY_PROMTOOL_REQUIRED=1 to fail instead")
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPromtoolAlertRules(t *testing.T) {
	runPromtool(t, "check", "rules", alertsFile)
	runPromtool(t, "test", "rules", alertsTestFile)
}

var grafanaVariable = regexp.MustCompile(`\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?`)

// prometheusExpr turns a panel query into the PromQL Grafana sends:
// interval variables become durations, and template variables, used only
// in regex matchers, match anything (the All value).
func prometheusExpr(expr string) string {
	expr = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h").Replace(expr)
	return grafanaVariable.ReplaceAllString(expr, ".*")
}

// indent indents every line of s by n spaces, for a YAML block scalar.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// TestPromtoolDashboardQueries checks the syntax of every dashboard query,
// by handing them to promtool as recording rules.
func TestPromtoolDashboardQueries(t *testing.T) {
	tool := promtool(t)
	exprs := dashboardExprs(loadDashboard(t))
	keys := make([]string, 0, len(exprs))
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, k := range keys {
		expr := exprs[k]
		if strings.HasPrefix(k, "variable ") {
			// label_values(selector, label) is Grafana's, not PromQL: check
			// its selector.
			m := regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_]+\)$`).FindStringSubmatch(expr)
			if m == nil {
				t.Errorf("%s: cannot read %q", k, expr)
				continue
			}
			expr = m[1]
		}
		fmt.Fprintf(&b, "      # %s\n      - record: dashboard:query_%d\n        expr: |\n%s\n", k, i, indent(prometheusExpr(expr), 10))
	}
	file := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s\n%s", err, out, b.String())
	}
}

// TestPromtoolCurrentUploadsAcrossReplicas evaluates the Current uploads
// table's queries on two replicas that both hold series of upload u1: it
// moved from replica a to replica b, and a's series linger until its idle
// period ends. The table must show b's progress and speed, not a's stale
// (here higher) speed, and one row per upload.
func TestPromtoolCurrentUploadsAcrossReplicas(t *testing.T) {
	tool := promtool(t)
	var table *panel
	for _, p := range allPanels(loadDashboard(t).Panels) {
		if p.Title == "Current uploads" {
			table = &p
		}
	}
	if table == nil {
		t.Fatal(`no panel "Current uploads" (update this test if it was renamed)`)
	}
	queries := make(map[string]string)
	for _, tg := range table.Targets {
		queries[tg.RefID] = prometheusExpr(tg.Expr)
	}
	const (
		a = `job="tusproxy", instance="a:9090"` // the replica u1 came from
		b = `job="tusproxy", instance="b:9090"` // the replica u1 is on now
	)
	series := []struct{ series, values string }{
		{`tusproxy_upload_offset_bytes{` + a + `, upload_id="u1", video_id="v1"}`, "100x5"},
		{`tusproxy_upload_length_bytes{` + a + `, upload_id="u1", video_id="v1"}`, "1000x5"},
		{`tusproxy_upload_speed_bytes_per_second{` + a + `, upload_id="u1", video_id="v1"}`, "50x5"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + a + `, upload_id="u1", video_id="v1"}`, "1000x5"},
		{`tusproxy_upload_offset_bytes{` + b + `, upload_id="u1", video_id="v1"}`, "300x5"},
		{`tusproxy_upload_length_bytes{` + b + `, upload_id="u1", video_id="v1"}`, "1000x5"},
		{`tusproxy_upload_speed_bytes_per_second{` + b + `, upload_id="u1", video_id="v1"}`, "10x5"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + b + `, upload_id="u1", video_id="v1"}`, "2000x5"},
		{`tusproxy_upload_offset_bytes{` + a + `, upload_id="u2", video_id="v2"}`, "0x5"},
		{`tusproxy_upload_length_bytes{` + a + `, upload_id="u2", video_id="v2"}`, "4000x5"},
		{`tusproxy_upload_speed_bytes_per_second{` + a + `, upload_id="u2", video_id="v2"}`, "7x5"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + a + `, upload_id="u2", video_id="v2"}`, "1500x5"},
	}
	want := map[string][2]float64{ // refId: u1's value, u2's value
		"A": {300, 0},     // offset
		"B": {1000, 4000}, // length
		"C": {30, 0},      // progress, percent
		"D": {10, 7},      // speed of the replica with the latest activity
		"E": {2e6, 1.5e6}, // last activity, milliseconds for Grafana
	}
	var spec strings.Builder
	spec.WriteString("rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n")
	for _, s := range series {
		fmt.Fprintf(&spec, "      - series: '%s'\n        values: '%s'\n", s.series, s.values)
	}
	spec.WriteString("    promql_expr_test:\n")
	for _, ref := range []string{"A", "B", "C", "D", "E"} {
		q, ok := queries[ref]
		if !ok {
			t.Fatalf("Current uploads has no query %s", ref)
		}
		fmt.Fprintf(&spec, "      - expr: |\n%s\n        eval_time: 2m\n        exp_samples:\n", indent(q, 10))
		for i, id := range []string{"u1", "u2"} {
			fmt.Fprintf(&spec, "          - labels: '{upload_id=\"%s\", video_id=\"v%s\"}'\n            value: %s\n",
				id, id[1:], strconv.FormatFloat(want[ref][i], 'f', -1, 64))
		}
	}
	file := filepath.Join(t.TempDir(), "current_uploads_test.yml")
	if err := os.WriteFile(file, []byte(spec.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, spec.String())
	}
}

// TestPromtoolCurrentUploadsState evaluates the Current uploads table's
// state, instance and age columns at 10 minutes (time() = 600): u1 moved
// from replica a (idle there for minutes) to b, where it moves; u2 is
// unfinished and idle for 5 minutes on a (stalled); u3 is complete and idle
// (not a problem).
func TestPromtoolCurrentUploadsState(t *testing.T) {
	tool := promtool(t)
	queries := make(map[string]string)
	for _, p := range allPanels(loadDashboard(t).Panels) {
		if p.Title == "Current uploads" {
			for _, tg := range p.Targets {
				queries[tg.RefID] = prometheusExpr(tg.Expr)
			}
		}
	}
	for _, ref := range []string{"F", "G", "H"} {
		if queries[ref] == "" {
			t.Fatalf("Current uploads has no query %s (update this test if it moved)", ref)
		}
	}
	const (
		a = `job="tusproxy", instance="a:9090"`
		b = `job="tusproxy", instance="b:9090"`
	)
	series := []struct{ series, values string }{
		{`tusproxy_upload_offset_bytes{` + a + `, upload_id="u1", video_id="v1"}`, "10x10"},
		{`tusproxy_upload_length_bytes{` + a + `, upload_id="u1", video_id="v1"}`, "100x10"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + a + `, upload_id="u1", video_id="v1"}`, "100x10"},
		{`tusproxy_upload_created_timestamp_seconds{` + a + `, upload_id="u1", video_id="v1"}`, "50x10"},
		{`tusproxy_upload_offset_bytes{` + b + `, upload_id="u1", video_id="v1"}`, "50x10"},
		{`tusproxy_upload_length_bytes{` + b + `, upload_id="u1", video_id="v1"}`, "100x10"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + b + `, upload_id="u1", video_id="v1"}`, "590x10"},
		{`tusproxy_upload_created_timestamp_seconds{` + b + `, upload_id="u1", video_id="v1"}`, "50x10"},
		{`tusproxy_upload_offset_bytes{` + a + `, upload_id="u2", video_id="v2"}`, "10x10"},
		{`tusproxy_upload_length_bytes{` + a + `, upload_id="u2", video_id="v2"}`, "100x10"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + a + `, upload_id="u2", video_id="v2"}`, "300x10"},
		{`tusproxy_upload_created_timestamp_seconds{` + a + `, upload_id="u2", video_id="v2"}`, "200x10"},
		{`tusproxy_upload_offset_bytes{` + a + `, upload_id="u3", video_id="v3"}`, "100x10"},
		{`tusproxy_upload_length_bytes{` + a + `, upload_id="u3", video_id="v3"}`, "100x10"},
		{`tusproxy_upload_last_activity_timestamp_seconds{` + a + `, upload_id="u3", video_id="v3"}`, "100x10"},
		{`tusproxy_upload_created_timestamp_seconds{` + a + `, upload_id="u3", video_id="v3"}`, "0x10"},
	}
	const activity = "tusproxy_upload_last_activity_timestamp_seconds"
	want := map[string][]struct {
		labels string
		value  float64
	}{
		"F": { // the replica with the latest activity
			{activity + `{` + b + `, upload_id="u1", video_id="v1"}`, 590},
			{activity + `{` + a + `, upload_id="u2", video_id="v2"}`, 300},
			{activity + `{` + a + `, upload_id="u3", video_id="v3"}`, 100},
		},
		"G": { // age, seconds
			{`{upload_id="u1", video_id="v1"}`, 550},
			{`{upload_id="u2", video_id="v2"}`, 400},
			{`{upload_id="u3", video_id="v3"}`, 600},
		},
		"H": { // stalled: unfinished and idle for 30 s on its latest replica
			{`{upload_id="u1", video_id="v1"}`, 0},
			{`{upload_id="u2", video_id="v2"}`, 1},
			{`{upload_id="u3", video_id="v3"}`, 0},
		},
	}
	var spec strings.Builder
	spec.WriteString("rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n")
	for _, s := range series {
		fmt.Fprintf(&spec, "      - series: '%s'\n        values: '%s'\n", s.series, s.values)
	}
	spec.WriteString("    promql_expr_test:\n")
	for _, ref := range []string{"F", "G", "H"} {
		fmt.Fprintf(&spec, "      - expr: |\n%s\n        eval_time: 10m\n        exp_samples:\n", indent(queries[ref], 10))
		for _, w := range want[ref] {
			fmt.Fprintf(&spec, "          - labels: '%s'\n            value: %s\n", w.labels, strconv.FormatFloat(w.value, 'f', -1, 64))
		}
	}
	file := filepath.Join(t.TempDir(), "current_uploads_state_test.yml")
	if err := os.WriteFile(file, []byte(spec.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, spec.String())
	}
}
