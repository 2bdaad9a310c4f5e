package config_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
)

const secretToken = "tok-7d0b4c2a-SECRET-91ee"

func envOf(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

// problemLines splits a joined error into one line per problem.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return []string{err.Error()}
	}
	var lines []string
	for _, e := range joined.Unwrap() {
		lines = append(lines, e.Error())
	}
	return lines
}

func serveEnv() map[string]string {
	return map[string]string{"KINESCOPE_API_TOKEN": secretToken, "KINESCOPE_PARENT_ID": "proj-1"}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		cmd  config.Command
		env  map[string]string
		want config.Config
	}{
		{
			cmd: config.CommandServe,
			env: serveEnv(),
			want: config.Config{
				Command:           config.CommandServe,
				APIToken:          secretToken,
				ParentID:          "proj-1",
				InitURL:           "https://uploader.kinescope.io/v2/init",
				Listen:            ":8080",
				BasePath:          "/files/",
				UpstreamHosts:     []string{"kinescope.io"},
				UpstreamChunkSize: 8 << 20,
				UpstreamTimeout:   30 * time.Second,
				InitTimeout:       15 * time.Second,
				Store:             "bolt:./tusproxy.db",
				UploadTTL:         24 * time.Hour,
				ShutdownTimeout:   30 * time.Second,
				LogLevel:          slog.LevelInfo,
				LogFormat:         "json",
				SeedPath:          "/upload",
			},
		},
		{
			cmd: config.CommandDev,
			want: config.Config{
				Command:           config.CommandDev,
				ParentID:          "dev-project",
				Listen:            "127.0.0.1:8080",
				BasePath:          "/files/",
				CORSOrigins:       []string{"*"},
				UpstreamHosts:     []string{"127.0.0.1"},
				UpstreamChunkSize: 8 << 20,
				UpstreamTimeout:   30 * time.Second,
				InitTimeout:       15 * time.Second,
				Store:             "memory",
				UploadTTL:         24 * time.Hour,
				ShutdownTimeout:   30 * time.Second,
				LogLevel:          slog.LevelInfo,
				LogFormat:         "json",
				SeedPath:          "/upload",
				EmulatorListen:    "127.0.0.1:0",
			},
		},
		{
			cmd: config.CommandEmulator,
			env: map[string]string{"TUSPROXY_EMULATOR_TOKEN": "emu-token"},
			want: config.Config{
				Command:        config.CommandEmulator,
				LogLevel:       slog.LevelInfo,
				LogFormat:      "json",
				EmulatorListen: "127.0.0.1:9000",
				EmulatorToken:  "emu-token",
			},
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.cmd), func(t *testing.T) {
			c, err := config.Load(tt.cmd, nil, envOf(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := *c
			if tt.cmd == config.CommandDev {
				// The generated token is random; check its shape, then
				// compare the rest.
				if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got.EmulatorToken) {
					t.Errorf("dev EmulatorToken = %q, want 32 hex characters", got.EmulatorToken)
				}
				if got.APIToken != got.EmulatorToken {
					t.Error("dev APIToken is not the emulator token")
				}
				got.EmulatorToken, got.APIToken = "", ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load(%s) =\n%+v\nwant\n%+v", tt.cmd, got, tt.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate of loaded config: %v", err)
			}
		})
	}
}

func TestDevTokens(t *testing.T) {
	first, err := config.Load(config.CommandDev, nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	second, err := config.Load(config.CommandDev, nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if first.EmulatorToken == second.EmulatorToken {
		t.Error("two dev runs generated the same emulator token")
	}

	c, err := config.Load(config.CommandDev, []string{"-emulator-token=emu", "-kinescope-api-token=api"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.EmulatorToken != "emu" || c.APIToken != "api" {
		t.Errorf("dev with both tokens given: emulator %q, api %q", c.EmulatorToken, c.APIToken)
	}
	c, err = config.Load(config.CommandDev, []string{"-emulator-token=emu"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIToken != "emu" {
		t.Errorf("dev APIToken = %q, want the emulator token", c.APIToken)
	}
}

// everyFlag sets every proxy setting to a valid non-default value.
var everySetting = []struct{ flag, env, value string }{
	{"kinescope-api-token", "KINESCOPE_API_TOKEN", secretToken},
	{"kinescope-parent-id", "KINESCOPE_PARENT_ID", "folder-9"},
	{"kinescope-init-url", "KINESCOPE_INIT_URL", "http://127.0.0.1:9000/v2/init"},
	{"listen", "TUSPROXY_LISTEN", "0.0.0.0:9090"},
	{"base-path", "TUSPROXY_BASE_PATH", "tus"},
	{"public-url", "TUSPROXY_PUBLIC_URL", "https://up.example.com/media/"},
	{"trusted-proxies", "TUSPROXY_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1, 10.1.2.3/8,"},
	{"cors-origins", "TUSPROXY_CORS_ORIGINS", "https://App.example.com, http://localhost:3000"},
	{"max-size", "TUSPROXY_MAX_SIZE", "5 GiB"},
	{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS", "Kinescope.io,127.0.0.1"},
	{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE", "64KiB"},
	{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT", "1m"},
	{"init-timeout", "TUSPROXY_INIT_TIMEOUT", "5s"},
	{"store", "TUSPROXY_STORE", "memory"},
	{"upload-ttl", "TUSPROXY_UPLOAD_TTL", "0"},
	{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT", "2s"},
	{"log-level", "TUSPROXY_LOG_LEVEL", "DEBUG"},
	{"log-format", "TUSPROXY_LOG_FORMAT", "text"},
	{"seed-path", "TUSPROXY_SEED_PATH", "off"},
}

var everySettingWant = config.Config{
	Command:           config.CommandServe,
	APIToken:          secretToken,
	ParentID:          "folder-9",
	InitURL:           "http://127.0.0.1:9000/v2/init",
	Listen:            "0.0.0.0:9090",
	BasePath:          "/tus/",
	PublicURL:         "https://up.example.com/media",
	TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")},
	CORSOrigins:       []string{"https://app.example.com", "http://localhost:3000"},
	MaxSize:           5 << 30,
	UpstreamHosts:     []string{"kinescope.io", "127.0.0.1"},
	UpstreamChunkSize: 64 << 10,
	UpstreamTimeout:   time.Minute,
	InitTimeout:       5 * time.Second,
	Store:             "memory",
	UploadTTL:         0,
	ShutdownTimeout:   2 * time.Second,
	LogLevel:          slog.LevelDebug,
	LogFormat:         "text",
	SeedPath:          "",
}

func TestEverySettingByFlagAndByEnv(t *testing.T) {
	var args []string
	env := map[string]string{}
	for _, s := range everySetting {
		args = append(args, "-"+s.flag+"="+s.value)
		env[s.env] = s.value
	}
	byFlag, err := config.Load(config.CommandServe, args, envOf(nil), io.Discard)
	if err != nil {
		t.Fatalf("Load by flags: %v", err)
	}
	if !reflect.DeepEqual(*byFlag, everySettingWant) {
		t.Errorf("by flags:\n%+v\nwant\n%+v", *byFlag, everySettingWant)
	}
	byEnv, err := config.Load(config.CommandServe, nil, envOf(env), io.Discard)
	if err != nil {
		t.Fatalf("Load by env: %v", err)
	}
	if !reflect.DeepEqual(*byEnv, everySettingWant) {
		t.Errorf("by env:\n%+v\nwant\n%+v", *byEnv, everySettingWant)
	}
}

func TestEmulatorSettings(t *testing.T) {
	env := map[string]string{
		"TUSPROXY_EMULATOR_LISTEN": "127.0.0.1:7000",
		"TUSPROXY_EMULATOR_TOKEN":  "emu",
		"TUSPROXY_EMULATOR_DIR":    "/var/tmp/emu",
		"TUSPROXY_LOG_LEVEL":       "warn",
		// Settings the emulator does not use are ignored, even when bad.
		"TUSPROXY_MAX_SIZE": "lots",
		"TUSPROXY_STORE":    "redis://x",
	}
	c, err := config.Load(config.CommandEmulator, []string{"-log-format=text"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{Command: config.CommandEmulator, EmulatorListen: "127.0.0.1:7000", EmulatorToken: "emu",
		EmulatorDir: "/var/tmp/emu", LogLevel: slog.LevelWarn, LogFormat: "text"}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load = %+v, want %+v", *c, want)
	}

	// Proxy flags are not emulator flags.
	if _, err := config.Load(config.CommandEmulator, []string{"-emulator-token=x", "-listen=:1"}, envOf(nil), io.Discard); err == nil {
		t.Error("emulator accepted -listen")
	}
	// And the serve command has no emulator flags.
	if _, err := config.Load(config.CommandServe, []string{"-emulator-token=x"}, envOf(serveEnv()), io.Discard); err == nil {
		t.Error("serve accepted -emulator-token")
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		get  func(*config.Config) any
		want any
	}{
		{"flag wins over env", []string{"-listen=:1111"}, map[string]string{"TUSPROXY_LISTEN": ":2222"},
			func(c *config.Config) any { return c.Listen }, ":1111"},
		{"env wins over default", nil, map[string]string{"TUSPROXY_LISTEN": ":2222"},
			func(c *config.Config) any { return c.Listen }, ":2222"},
		{"default when neither", nil, nil,
			func(c *config.Config) any { return c.Listen }, ":8080"},
		{"empty env is unset", nil, map[string]string{"TUSPROXY_LISTEN": ""},
			func(c *config.Config) any { return c.Listen }, ":8080"},
		{"flag token wins over env token", []string{"-kinescope-api-token=from-flag"}, nil,
			func(c *config.Config) any { return c.APIToken }, "from-flag"},
		{"explicitly empty flag wins over env", []string{"-cors-origins="}, map[string]string{"TUSPROXY_CORS_ORIGINS": "https://a.example"},
			func(c *config.Config) any { return c.CORSOrigins }, []string(nil)},
		{"bad env is not consulted when the flag is given", []string{"-max-size=1KB"}, map[string]string{"TUSPROXY_MAX_SIZE": "lots"},
			func(c *config.Config) any { return c.MaxSize }, int64(1000)},
		{"flag with double dash and space", []string{"--upload-ttl", "1h"}, map[string]string{"TUSPROXY_UPLOAD_TTL": "2h"},
			func(c *config.Config) any { return c.UploadTTL }, time.Hour},
		{"values are trimmed", nil, map[string]string{"TUSPROXY_LOG_FORMAT": " text\n"},
			func(c *config.Config) any { return c.LogFormat }, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := serveEnv()
			env["KINESCOPE_API_TOKEN"] = "from-env"
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := config.Load(config.CommandServe, tt.args, envOf(env), io.Discard)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestSizes(t *testing.T) {
	tests := []struct {
		value string
		want  int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"8MiB", 8 << 20},
		{"1 GiB", 1 << 30},
		{"2tib", 2 << 40},
		{"3KiB", 3 << 10},
		{"5GB", 5e9},
		{"2kb", 2000},
		{"7MB", 7e6},
		{"1TB", 1e12},
		{"100B", 100},
		{"9223372036854775807", 1<<63 - 1},
	}
	for _, tt := range tests {
		c, err := config.Load(config.CommandServe, []string{"-max-size", tt.value}, envOf(serveEnv()), io.Discard)
		if err != nil {
			t.Errorf("-max-size %q: %v", tt.value, err)
			continue
		}
		if c.MaxSize != tt.want {
			t.Errorf("-max-size %q = %d, want %d", tt.value, c.MaxSize, tt.want)
		}
	}
}

func TestSeedPath(t *testing.T) {
	tests := []struct {
		basePath, seedPath string
		want               string // SeedPath after Load, or "error"
	}{
		{"/files/", "/upload", "/upload"},
		{"/files/", "OFF", ""},
		{"/files/", "/files", "error"},
		{"/files/", "/files/", "error"},
		{"/files/", "/files/seed", "error"},
		{"/", "/upload", "error"},
		{"/files/", "/", "error"},
		{"/upload/files/", "/upload", "error"},
		{"/filesystem/", "/files", "/files"},
		{"/files/", "/files-upload", "/files-upload"},
		{"/files/", "upload", "error"},
		{"/files/", "/up?load", "error"},
	}
	for _, tt := range tests {
		c, err := config.Load(config.CommandServe, []string{"-base-path", tt.basePath, "-seed-path", tt.seedPath}, envOf(serveEnv()), io.Discard)
		if tt.want == "error" {
			lines := problemLines(err)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "-seed-path (TUSPROXY_SEED_PATH): ") {
				t.Errorf("base %q, seed %q: problems %q, want one seed-path problem", tt.basePath, tt.seedPath, lines)
			}
			continue
		}
		if err != nil {
			t.Errorf("base %q, seed %q: %v", tt.basePath, tt.seedPath, err)
			continue
		}
		if c.SeedPath != tt.want {
			t.Errorf("base %q, seed %q: SeedPath = %q, want %q", tt.basePath, tt.seedPath, c.SeedPath, tt.want)
		}
	}
}

func TestBasePathSlashes(t *testing.T) {
	for value, want := range map[string]string{"files": "/files/", "/a/b": "/a/b/", "x/": "/x/", "/": "/"} {
		c, err := config.Load(config.CommandServe, []string{"-base-path=" + value, "-seed-path=off"}, envOf(serveEnv()), io.Discard)
		if err != nil {
			t.Errorf("-base-path %q: %v", value, err)
			continue
		}
		if c.BasePath != want {
			t.Errorf("-base-path %q = %q, want %q", value, c.BasePath, want)
		}
	}
}

// badValues has one bad value per row and the problem line it must produce.
var badValues = []struct {
	flag, env, value string
	want             string // the whole problem line
}{
	{"kinescope-api-token", "KINESCOPE_API_TOKEN", "tok en " + secretToken,
		"-kinescope-api-token (KINESCOPE_API_TOKEN): contains spaces, control or non-ASCII characters, which cannot be sent in an HTTP header"},
	{"kinescope-init-url", "KINESCOPE_INIT_URL", "ftp://x/init?key=" + secretToken,
		"-kinescope-init-url (KINESCOPE_INIT_URL): must be an absolute http:// or https:// URL"},
	{"listen", "TUSPROXY_LISTEN", "8080",
		`-listen (TUSPROXY_LISTEN): "8080" is not host:port (such as :8080 or 127.0.0.1:8080)`},
	{"base-path", "TUSPROXY_BASE_PATH", "/fi?les",
		`-base-path (TUSPROXY_BASE_PATH): "/fi?les/" must not contain ? or #`},
	{"public-url", "TUSPROXY_PUBLIC_URL", "https://up.example.com/?a=b",
		`-public-url (TUSPROXY_PUBLIC_URL): "https://up.example.com/?a=b" must not have a query or fragment`},
	{"trusted-proxies", "TUSPROXY_TRUSTED_PROXIES", "10.0.0.300",
		`-trusted-proxies (TUSPROXY_TRUSTED_PROXIES): "10.0.0.300" is not an IP address or CIDR prefix`},
	{"cors-origins", "TUSPROXY_CORS_ORIGINS", "https://app.example.com/",
		`-cors-origins (TUSPROXY_CORS_ORIGINS): "https://app.example.com/" must have no path, query or fragment, not even a trailing / (browsers send scheme://host[:port])`},
	{"max-size", "TUSPROXY_MAX_SIZE", "12XB",
		`-max-size (TUSPROXY_MAX_SIZE): "12XB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS", "https://kinescope.io",
		`-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "https://kinescope.io" is not a lowercase host name or IP address (no scheme, port or path)`},
	{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE", "1000",
		"-upstream-chunk-size (TUSPROXY_UPSTREAM_CHUNK_SIZE): is 1KB; must be at least 64KiB"},
	{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT", "0s",
		"-upstream-timeout (TUSPROXY_UPSTREAM_TIMEOUT): is 0s; must be more than 0"},
	{"init-timeout", "TUSPROXY_INIT_TIMEOUT", "soon",
		`-init-timeout (TUSPROXY_INIT_TIMEOUT): "soon" is not a duration (like 90s, 15m or 24h)`},
	{"store", "TUSPROXY_STORE", "redis://:" + secretToken + "@cache:6379",
		"-store (TUSPROXY_STORE): redis stores are not supported yet (use memory or bolt:PATH)"},
	{"upload-ttl", "TUSPROXY_UPLOAD_TTL", "-1h",
		"-upload-ttl (TUSPROXY_UPLOAD_TTL): is -1h0m0s; must not be negative (0 means never expire)"},
	{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT", "-5s",
		"-shutdown-timeout (TUSPROXY_SHUTDOWN_TIMEOUT): is -5s; must be more than 0"},
	{"log-level", "TUSPROXY_LOG_LEVEL", "verbose",
		`-log-level (TUSPROXY_LOG_LEVEL): "verbose" is not a log level (use debug, info, warn or error)`},
	{"log-format", "TUSPROXY_LOG_FORMAT", "xml",
		`-log-format (TUSPROXY_LOG_FORMAT): "xml" is not a log format (use json or text)`},
	{"seed-path", "TUSPROXY_SEED_PATH", "upload",
		`-seed-path (TUSPROXY_SEED_PATH): "upload" must start with / (or be off)`},
}

// moreBadValues are further single problems, each checked alone.
var moreBadValues = []struct {
	flag, value, want string
}{
	{"kinescope-parent-id", "", "-kinescope-parent-id (KINESCOPE_PARENT_ID): is required"},
	{"kinescope-api-token", "", "-kinescope-api-token (KINESCOPE_API_TOKEN): is required"},
	{"kinescope-init-url", "/v2/init", "-kinescope-init-url (KINESCOPE_INIT_URL): must be an absolute http:// or https:// URL"},
	{"listen", ":http", `-listen (TUSPROXY_LISTEN): ":http" has a port that is not a number from 0 to 65535`},
	{"listen", ":70000", `-listen (TUSPROXY_LISTEN): ":70000" has a port that is not a number from 0 to 65535`},
	{"listen", "", "-listen (TUSPROXY_LISTEN): is required (host:port, such as :8080)"},
	{"base-path", "", `-base-path (TUSPROXY_BASE_PATH): is empty (use "/" for the root)`},
	{"base-path", "/a b", `-base-path (TUSPROXY_BASE_PATH): "/a b/" must not contain spaces or control characters`},
	{"public-url", "up.example.com", `-public-url (TUSPROXY_PUBLIC_URL): "up.example.com" is not an absolute http:// or https:// URL`},
	{"public-url", "https://u:" + secretToken + "@up.example.com", "-public-url (TUSPROXY_PUBLIC_URL): must not contain user info"},
	{"public-url", "https://up.example.com#top", `-public-url (TUSPROXY_PUBLIC_URL): "https://up.example.com#top" must not have a query or fragment`},
	{"trusted-proxies", "10.0.0.0/33", `-trusted-proxies (TUSPROXY_TRUSTED_PROXIES): "10.0.0.0/33" is not a CIDR prefix`},
	{"trusted-proxies", "fe80::1%eth0", `-trusted-proxies (TUSPROXY_TRUSTED_PROXIES): "fe80::1%eth0" has an IPv6 zone, which cannot match a peer address`},
	{"cors-origins", "*,https://a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "*" allows every origin and must be the only entry`},
	{"cors-origins", "a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "a.example" is not an origin like https://example.com or https://example.com:8443`},
	{"cors-origins", "https://u@a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "https://u@a.example" is not an origin like https://example.com or https://example.com:8443`},
	{"max-size", "-1", `-max-size (TUSPROXY_MAX_SIZE): "-1" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "1.5GiB", `-max-size (TUSPROXY_MAX_SIZE): "1.5GiB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "MiB", `-max-size (TUSPROXY_MAX_SIZE): "MiB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "9999999TiB", `-max-size (TUSPROXY_MAX_SIZE): "9999999TiB" is too large`},
	{"max-size", "99999999999999999999", `-max-size (TUSPROXY_MAX_SIZE): "99999999999999999999" is too large`},
	{"upstream-hosts", "", "-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): must name at least one host"},
	{"upstream-hosts", "kinescope.io:443", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "kinescope.io:443" is not a lowercase host name or IP address (no scheme, port or path)`},
	{"upstream-chunk-size", "0", "-upstream-chunk-size (TUSPROXY_UPSTREAM_CHUNK_SIZE): is 0; must be at least 64KiB"},
	{"upstream-timeout", "-1s", "-upstream-timeout (TUSPROXY_UPSTREAM_TIMEOUT): is -1s; must be more than 0"},
	{"init-timeout", "0", "-init-timeout (TUSPROXY_INIT_TIMEOUT): is 0s; must be more than 0"},
	{"store", "bolt:", `-store (TUSPROXY_STORE): "bolt:" needs a file path, such as bolt:/var/lib/tusproxy/state.db`},
	{"store", "disk", `-store (TUSPROXY_STORE): "disk" is not a supported store (use memory or bolt:PATH)`},
	{"store", "", `-store (TUSPROXY_STORE): "" is not a supported store (use memory or bolt:PATH)`},
	{"seed-path", "/files/seed", `-seed-path (TUSPROXY_SEED_PATH): "/files/seed" overlaps the tus base path "/files/" (-base-path); choose another path or off`},
}

func TestBadValues(t *testing.T) {
	for _, tt := range badValues {
		for _, via := range []string{"flag", "env"} {
			t.Run(tt.flag+" by "+via, func(t *testing.T) {
				env := serveEnv()
				var args []string
				if via == "flag" {
					args = []string{"-" + tt.flag + "=" + tt.value}
				} else {
					env[tt.env] = tt.value
				}
				c, err := config.Load(config.CommandServe, args, envOf(env), io.Discard)
				if c != nil {
					t.Error("Load returned a config with an error")
				}
				lines := problemLines(err)
				if len(lines) != 1 || lines[0] != tt.want {
					t.Errorf("problems = %q\nwant [%q]", lines, tt.want)
				}
				var settingErr *config.SettingError
				if !errors.As(err, &settingErr) || settingErr.Flag != tt.flag || settingErr.Env != tt.env {
					t.Errorf("error %v is not a SettingError for %s/%s", err, tt.flag, tt.env)
				}
			})
		}
	}
	for _, tt := range moreBadValues {
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			lines := problemLines(loadErr(config.CommandServe, []string{"-" + tt.flag + "=" + tt.value}, serveEnv()))
			if len(lines) != 1 || lines[0] != tt.want {
				t.Errorf("problems = %q\nwant [%q]", lines, tt.want)
			}
		})
	}
}

func loadErr(cmd config.Command, args []string, env map[string]string) error {
	_, err := config.Load(cmd, args, envOf(env), io.Discard)
	return err
}

func TestEveryProblemAtOnce(t *testing.T) {
	// Half by flag and half by env, to show both kinds are collected.
	var args []string
	env := map[string]string{"KINESCOPE_PARENT_ID": "p"}
	for i, tt := range badValues {
		if i%2 == 0 {
			args = append(args, "-"+tt.flag+"="+tt.value)
		} else {
			env[tt.env] = tt.value
		}
	}
	err := loadErr(config.CommandServe, args, env)
	lines := problemLines(err)
	if len(lines) != len(badValues) {
		t.Errorf("got %d problems, want %d:\n%s", len(lines), len(badValues), strings.Join(lines, "\n"))
	}
	for _, tt := range badValues {
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("missing problem %q", tt.want)
		}
	}
	if strings.Contains(err.Error(), secretToken) {
		t.Errorf("error text contains the token:\n%s", err)
	}
}

func TestModeSpecificRequirements(t *testing.T) {
	tests := []struct {
		name string
		cmd  config.Command
		args []string
		env  map[string]string
		want []string
	}{
		{"serve needs token and parent", config.CommandServe, nil, nil, []string{
			"-kinescope-api-token (KINESCOPE_API_TOKEN): is required",
			"-kinescope-parent-id (KINESCOPE_PARENT_ID): is required",
		}},
		{"emulator needs its token", config.CommandEmulator, nil, nil, []string{
			"-emulator-token (TUSPROXY_EMULATOR_TOKEN): is required",
		}},
		{"emulator listen and token checked", config.CommandEmulator, []string{"-emulator-listen=nowhere", "-emulator-token=a b"}, nil, []string{
			`-emulator-listen (TUSPROXY_EMULATOR_LISTEN): "nowhere" is not host:port (such as :8080 or 127.0.0.1:8080)`,
			"-emulator-token (TUSPROXY_EMULATOR_TOKEN): contains spaces, control or non-ASCII characters, which cannot be sent in an HTTP header",
		}},
		{"dev bad emulator token reported once", config.CommandDev, []string{"-emulator-token=a\tb"}, nil, []string{
			"-emulator-token (TUSPROXY_EMULATOR_TOKEN): contains spaces, control or non-ASCII characters, which cannot be sent in an HTTP header",
		}},
		{"dev checks a given init URL", config.CommandDev, []string{"-kinescope-init-url=nope"}, nil, []string{
			"-kinescope-init-url (KINESCOPE_INIT_URL): must be an absolute http:// or https:// URL",
		}},
		{"unknown command", config.Command("deploy"), nil, nil, []string{
			`unknown command "deploy" (use serve, dev or emulator)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := problemLines(loadErr(tt.cmd, tt.args, tt.env))
			if !reflect.DeepEqual(lines, tt.want) {
				t.Errorf("problems =\n%q\nwant\n%q", lines, tt.want)
			}
		})
	}
}

func TestCommandLineMistakes(t *testing.T) {
	var out bytes.Buffer
	_, err := config.Load(config.CommandServe, []string{"-kinescope-api-tokn=" + secretToken}, envOf(serveEnv()), &out)
	if err == nil || !strings.Contains(err.Error(), "kinescope-api-tokn") {
		t.Errorf("unknown flag: err = %v", err)
	}
	if strings.Contains(out.String()+err.Error(), secretToken) {
		t.Error("a mistyped token flag echoed the token")
	}

	// "-kinescope-api-token= SECRET" leaves the token as a stray argument.
	_, err = config.Load(config.CommandServe, []string{"-kinescope-api-token=", secretToken}, envOf(serveEnv()), io.Discard)
	lines := problemLines(err)
	want := []string{
		"1 unexpected argument(s) after the flags: give settings as -name=value",
		"-kinescope-api-token (KINESCOPE_API_TOKEN): is required",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("problems = %q, want %q", lines, want)
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []config.Command{config.CommandServe, config.CommandDev, config.CommandEmulator} {
		t.Run(string(cmd), func(t *testing.T) {
			var out bytes.Buffer
			c, err := config.Load(cmd, []string{"-h"}, envOf(map[string]string{"KINESCOPE_API_TOKEN": secretToken, "TUSPROXY_EMULATOR_TOKEN": secretToken}), &out)
			if !errors.Is(err, flag.ErrHelp) || c != nil {
				t.Fatalf("Load -h = %v, %v; want nil, flag.ErrHelp", c, err)
			}
			usage := out.String()
			if strings.Contains(usage, secretToken) {
				t.Error("usage shows the token")
			}
			emulatorOnly := map[string]bool{"emulator-listen": true, "emulator-token": true, "emulator-dir": true, "log-level": true, "log-format": true}
			for _, s := range append(everySetting[:len(everySetting):len(everySetting)],
				struct{ flag, env, value string }{"emulator-listen", "TUSPROXY_EMULATOR_LISTEN", ""},
				struct{ flag, env, value string }{"emulator-token", "TUSPROXY_EMULATOR_TOKEN", ""},
				struct{ flag, env, value string }{"emulator-dir", "TUSPROXY_EMULATOR_DIR", ""},
			) {
				listed := strings.Contains(usage, "  -"+s.flag+" ") && strings.Contains(usage, "env "+s.env+", default ")
				wantListed := true
				switch cmd {
				case config.CommandServe:
					wantListed = !strings.HasPrefix(s.flag, "emulator-")
				case config.CommandEmulator:
					wantListed = emulatorOnly[s.flag]
				}
				if listed != wantListed {
					t.Errorf("-%s listed = %v, want %v", s.flag, listed, wantListed)
				}
			}
		})
	}

	var out bytes.Buffer
	config.Load(config.CommandServe, []string{"-help"}, envOf(nil), &out)
	for _, want := range []string{
		"env TUSPROXY_UPSTREAM_CHUNK_SIZE, default \"8MiB\"",
		"env TUSPROXY_LISTEN, default \":8080\"",
		"env KINESCOPE_API_TOKEN, default none, required",
		"env TUSPROXY_STORE, default \"bolt:./tusproxy.db\"",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("serve usage lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	config.Load(config.CommandDev, []string{"-h"}, envOf(nil), &out)
	for _, want := range []string{
		"env TUSPROXY_LISTEN, default \"127.0.0.1:8080\"",
		"env TUSPROXY_EMULATOR_TOKEN, default random",
		"env TUSPROXY_STORE, default \"memory\"",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dev usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestValidateHasNoSideEffects(t *testing.T) {
	c := everySettingWant
	c.TrustedProxies = nil
	c.BasePath = "files"
	c.CORSOrigins = []string{"HTTPS://A.EXAMPLE"}
	before := c
	lines := problemLines(c.Validate())
	want := []string{
		`-base-path (TUSPROXY_BASE_PATH): "files" must start and end with /`,
		`-cors-origins (TUSPROXY_CORS_ORIGINS): "HTTPS://A.EXAMPLE" must be lowercase, as browsers send it`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("Validate problems =\n%q\nwant\n%q", lines, want)
	}
	if !reflect.DeepEqual(c, before) {
		t.Error("Validate changed the config")
	}
	if err := (&config.Config{}).Validate(); err == nil {
		t.Error("Validate of a Config without a command succeeded")
	}
}

func TestStringIsSafe(t *testing.T) {
	env := serveEnv()
	env["KINESCOPE_INIT_URL"] = "https://uploader.kinescope.io/v2/init?key=" + secretToken
	env["TUSPROXY_PUBLIC_URL"] = "https://up.example.com"
	c, err := config.Load(config.CommandServe, []string{"-max-size=2GiB", "-trusted-proxies=10.0.0.0/8"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	if strings.Contains(s, secretToken) {
		t.Fatalf("String() shows the token: %s", s)
	}
	for _, want := range []string{
		"command=serve ",
		"kinescope-api-token=(set)",
		"kinescope-init-url=https://uploader.kinescope.io/v2/init?redacted",
		"max-size=2GiB",
		"upstream-chunk-size=8MiB",
		"trusted-proxies=10.0.0.0/8",
		`cors-origins=""`,
		"upload-ttl=24h0m0s",
		"log-level=info",
		"seed-path=/upload",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q: %s", want, s)
		}
	}
	if strings.Contains(s, "emulator") {
		t.Errorf("serve String() shows emulator settings: %s", s)
	}

	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c)
	if strings.Contains(logged.String(), secretToken) || !strings.Contains(logged.String(), "config.kinescope-api-token=(set)") {
		t.Errorf("logged config: %s", logged.String())
	}

	unset := (&config.Config{Command: config.CommandEmulator}).String()
	if !strings.Contains(unset, "emulator-token=(unset)") {
		t.Errorf("String() of an empty emulator config: %s", unset)
	}
}
