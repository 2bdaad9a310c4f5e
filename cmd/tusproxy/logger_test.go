package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// loadConfig loads command's settings from env (serve's required ones are
// and the emulator's filled in).
func loadConfig(t *testing.T, command string, env map[string]string) *config.Config {
	t.Helper()
	all := map[string]string{"KINESCOPE_API_TOKEN": token, "KINESCOPE_PARENT_ID": "p1", "TUSPROXY_AUTH": "none", "TUSPROXY_EMULATOR_TOKEN": "emulator-token"}
	for k, v := range env {
		all[k] = v
	}
	cfg, err := config.Load(config.Command(command), nil, func(k string) string { return all[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The log format follows the command and the terminal: dev at a terminal
// gets coloured text unless NO_COLOR is set; serve, a pipe or a file get
// JSON; an explicit TUSPROXY_LOG_FORMAT wins everywhere.
func TestLogFormatFollowsTheTerminal(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		format   string // TUSPROXY_LOG_FORMAT; "" leaves the default
		terminal bool
		noColor  bool
		want     string // "colour", "plain" (tint without colour), "json" or "text" (slog's)
	}{
		{"dev at a terminal", "dev", "", true, false, "colour"},
		{"dev at a terminal with NO_COLOR", "dev", "", true, true, "plain"},
		{"dev into a pipe", "dev", "", false, false, "json"},
		{"serve at a terminal", "serve", "", true, false, "json"},
		{"emulator at a terminal", "emulator", "", true, false, "json"},
		{"serve asked for auto at a terminal", "serve", "auto", true, false, "colour"},
		{"dev asked for json at a terminal", "dev", "json", true, false, "json"},
		{"dev asked for text at a terminal", "dev", "text", true, false, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, tt.command, map[string]string{"TUSPROXY_LOG_FORMAT": tt.format})
			var out bytes.Buffer
			newLogger(cfg, &out, tt.terminal, tt.noColor).Warn("upload stalled", slog.String("upload_id", "u1"))
			line := out.String()
			coloured := strings.Contains(line, "\x1b[")
			var got string
			switch {
			case strings.HasPrefix(line, "{") && strings.Contains(line, `"level":"WARN"`):
				got = "json"
			case strings.Contains(line, "level=WARN"):
				got = "text"
			case strings.Contains(line, "WRN") && strings.Contains(line, "upload stalled") && coloured:
				got = "colour"
			case strings.Contains(line, "WRN") && strings.Contains(line, "upload stalled"):
				got = "plain"
			}
			if got != tt.want {
				t.Errorf("logged %q: %s, want %s", line, got, tt.want)
			}
			if coloured && got != "colour" {
				t.Errorf("ANSI codes in a %s log: %q", got, line)
			}
		})
	}
}

// On a terminal no peer text can send an escape sequence: tint passes ESC
// through and turns a literal \x1b back into ESC, so the terminal handler
// scrubs every message and text value. Secrets stay redacted in text too.
func TestTerminalLogScrubsEscapesAndSecrets(t *testing.T) {
	cfg := loadConfig(t, "dev", map[string]string{"KINESCOPE_API_TOKEN": token})
	cfg.APIToken = token // dev takes the emulator's token unless one is set
	for _, noColor := range []bool{false, true} {
		var out bytes.Buffer
		logger := newLogger(cfg, &out, true, noColor)
		logger.Warn("http: bad request \x1b[2J from peer",
			slog.String("reason", "refused \x1b]0;pwned\x07 by hook"),
			slog.String("message", `literal \x1b[2J "quoted"`),
			slog.Any("error", errors.New("upstream said \x1b[31mred\x9b1m")),
			slog.Any("config", cfg),
			slog.String("config_text", cfg.String()))
		line := out.String()
		for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07", "\x1b[31mred", "\u009b", token} {
			if strings.Contains(line, bad) {
				t.Errorf("NO_COLOR=%v: the terminal log carries %q: %q", noColor, bad, line)
			}
		}
		for _, want := range []string{"bad request", "pwned", "literal", "red"} {
			if !strings.Contains(line, want) {
				t.Errorf("NO_COLOR=%v: the terminal log lost %q: %q", noColor, want, line)
			}
		}
		if coloured := strings.Contains(line, "\x1b["); coloured == noColor {
			t.Errorf("NO_COLOR=%v: coloured %v: %q", noColor, coloured, line)
		}
	}
}

// On a real terminal (a pty as stderr) dev logs in colour, and NO_COLOR
// turns the colour off (isTerminal sees the pty, not just a fake flag).
func TestDevOnARealTerminal(t *testing.T) {
	for _, tt := range []struct {
		name    string
		noColor string
		want    func(line string) bool
	}{
		{"colour", "", func(l string) bool { return strings.Contains(l, "\x1b[") && strings.Contains(l, "INF") }},
		{"NO_COLOR", "1", func(l string) bool { return !strings.Contains(l, "\x1b") && strings.Contains(l, "INF") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Skipf("no pty on this machine: %v", err)
			}
			defer ptmx.Close()
			defer tty.Close()
			var logged testkit.SyncBuffer
			go func() { _, _ = io.Copy(&logged, ptmx) }()

			addr := testkit.FreeAddr(t)
			env := map[string]string{"TUSPROXY_LISTEN": addr, "TUSPROXY_METRICS_LISTEN": "off", "NO_COLOR": tt.noColor}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, []string{"dev"}, func(k string) string { return env[k] }, io.Discard, tty) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("dev exited with %v", err)
				}
			}()
			waitHealthy(t, "http://"+addr)
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logged.String(), "tusproxy listening") {
				if time.Now().After(deadline) {
					t.Fatalf("dev never logged its start on the terminal:\n%q", logged.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if line := logged.String(); !tt.want(line) || strings.Contains(line, `"level"`) {
				t.Errorf("dev on a terminal logged %q", line)
			}
		})
	}
}
