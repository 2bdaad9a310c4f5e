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
