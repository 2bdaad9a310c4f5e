package config_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionDependencies keeps the emulator and tusd (its upstream
// stand-in) out of the configuration: a production binary loads config, and
// only tests and the emulator commands should pull the emulator in.
func TestProductionDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if strings.Contains(dep, "kinescopetest") || strings.HasPrefix(dep, "github.com/tus/tusd") {
			t.Errorf("config depends on %s", dep)
		}
	}
}
