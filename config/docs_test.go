package config

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// envName matches the variables tusproxy reads. TUSPROXY_TEST_* and
// TUSPROXY_E2E_* belong to the tests, not to the program.
var envName = regexp.MustCompile(`\b(?:TUSPROXY|KINESCOPE)_[A-Z0-9_]*[A-Z0-9]\b`)

func isTestVariable(name string) bool {
	return strings.HasPrefix(name, "TUSPROXY_TEST_") || strings.HasPrefix(name, "TUSPROXY_E2E_") ||
		name == "TUSPROXY_PROMTOOL_REQUIRED" || name == "TUSPROXY_NGINX_REQUIRED"
}

// TestDocsNameRealSettings keeps the README, the Dockerfile and the example
// deployments true: every setting is documented in the README's table, and
// every variable they name is one tusproxy reads.
func TestDocsNameRealSettings(t *testing.T) {
	known := map[string]bool{}
	for _, s := range allSettings {
		known[s.env] = true
	}
	files := []string{"../README.md", "../Dockerfile", "../dashboards/README.md"}
	deploy, err := filepath.Glob("../deploy/*")
	if err != nil {
		t.Fatal(err)
	}
	k8s, _ := filepath.Glob("../deploy/kubernetes/*")
	files = append(append(files, deploy...), k8s...)
	if len(deploy) == 0 {
		t.Fatal("no files in deploy/")
	}
	for _, f := range files {
		if info, err := os.Stat(f); err == nil && info.IsDir() {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envName.FindAllString(string(raw), -1) {
			if !known[name] && !isTestVariable(name) {
				t.Errorf("%s names %s, which is not a tusproxy setting", f, name)
			}
		}
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range allSettings {
		row := "| `" + s.env + "`"
		inRow := strings.Contains(string(readme), row) || strings.Contains(string(readme), "`, `"+s.env+"` |")
		if !inRow || !strings.Contains(string(readme), "`-"+s.flag+"`") {
			t.Errorf("README's configuration table lacks %s / -%s", s.env, s.flag)
		}
	}
}

// trustedProxiesValue finds the value an example deployment gives
// TUSPROXY_TRUSTED_PROXIES, in compose (KEY: value) or Kubernetes
// ({name: KEY, value: "value"}) form.
var trustedProxiesValue = regexp.MustCompile(`TUSPROXY_TRUSTED_PROXIES(?::|,\s*value:)\s*"?([^"\s}#]+)`)

// TestDeployTrustedProxiesAccepted keeps the example deployments startable
// and safe: the proxies they trust pass Validate, which refuses trusting
// every address (deploy/compose.yaml once trusted 0.0.0.0/0, so a client's
// own left-most X-Forwarded-For entry reached Kinescope).
func TestDeployTrustedProxiesAccepted(t *testing.T) {
	files, _ := filepath.Glob("../deploy/*")
	k8s, _ := filepath.Glob("../deploy/kubernetes/*")
	found := 0
	for _, f := range append(files, k8s...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // a directory
		}
		for _, m := range trustedProxiesValue.FindAllStringSubmatch(string(raw), -1) {
			found++
			env := map[string]string{"KINESCOPE_API_TOKEN": "0f4c7a1e-5b7d-4f7e-9a51-3c2d8e6b1a90", "KINESCOPE_PARENT_ID": "p",
				"TUSPROXY_AUTH": "none", "TUSPROXY_TRUSTED_PROXIES": m[1]}
			if _, err := Load(CommandServe, nil, func(k string) string { return env[k] }, io.Discard); err != nil {
				t.Errorf("%s: TUSPROXY_TRUSTED_PROXIES=%s: %v", f, m[1], err)
			}
		}
	}
	if found < 2 {
		t.Errorf("found TUSPROXY_TRUSTED_PROXIES in %d deploy files, want compose and Kubernetes", found)
	}
}

// TestContainersSetTheAdminAddress: serve binds the admin listener to
// loopback by default, which inside a container no probe or scraper can
// reach, so every container definition must choose an address itself, and
// say why next to it.
func TestContainersSetTheAdminAddress(t *testing.T) {
	setting := regexp.MustCompile(`TUSPROXY_METRICS_LISTEN[=:,]\s*(?:value:\s*)?"?:9090"?`)
	for _, f := range []string{"../Dockerfile", "../deploy/kubernetes/tusproxy.yaml"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		loc := setting.FindStringIndex(text)
		if loc == nil {
			t.Errorf("%s does not set TUSPROXY_METRICS_LISTEN to :9090 explicitly", f)
			continue
		}
		// The reason is in a comment shortly before the setting.
		before := text[max(0, loc[0]-800):loc[0]]
		if !strings.Contains(before, "#") || !strings.Contains(before, "127.0.0.1") {
			t.Errorf("%s sets TUSPROXY_METRICS_LISTEN without a comment saying why (the loopback default)", f)
		}
	}
}

// securityTest is one "path: TestA, TestB" entry of SECURITY.md's attack table.
var securityTest = regexp.MustCompile(`^([\w./-]+_test\.go): (Test\w+(?:, Test\w+)*)$`)

// TestSecurityTableNamesRealTests keeps SECURITY.md honest: every attack in
// its table names at least one test, and each test it names exists, in the
// file it names, so a renamed or deleted test cannot leave a claim unbacked.
func TestSecurityTableNamesRealTests(t *testing.T) {
	raw, err := os.ReadFile("../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, found := strings.Cut(string(raw), "### Attacks, defences and the tests that show them")
	if !found {
		t.Fatal("SECURITY.md has no attack table")
	}
	rows := 0
	for line := range strings.SplitSeq(table, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| attack |") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 3 {
			t.Errorf("row has %d cells, want attack | defence | tests: %s", len(cells), line)
			continue
		}
		rows++
		for entry := range strings.SplitSeq(cells[2], "; ") {
			m := securityTest.FindStringSubmatch(entry)
			if m == nil {
				t.Errorf("%q is not \"path_test.go: TestName, ...\" (row %q)", entry, cells[0])
				continue
			}
			src, err := os.ReadFile(filepath.Join("..", m[1]))
			if err != nil {
				t.Errorf("row %q names %s: %v", cells[0], m[1], err)
				continue
			}
			for name := range strings.SplitSeq(m[2], ", ") {
				if !strings.Contains(string(src), "func "+name+"(") {
					t.Errorf("row %q names %s in %s, which has no such test", cells[0], name, m[1])
				}
			}
		}
	}
	if rows < 20 {
		t.Errorf("SECURITY.md's attack table has %d rows; the tests found fewer than the attacks it lists", rows)
	}
}
