package config

import (
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
		name == "TUSPROXY_PROMTOOL_REQUIRED"
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
