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

	"github.com/kinescope-tools/tusproxy/internal/faultspec"
)

const secretToken = "tok-7d0b4c2a-SECRET-91ee"

// webhookSecret and webhookSecret2 are Standard Webhooks secrets: whsec_
// and the base64 of 32 bytes.
const (
	webhookSecret  = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	webhookSecret2 = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

// jwtSecret is long enough for HS256; secretToken is not.
const jwtSecret = "jwt-5f1c9a7e-SECRET-0b3d44e2a9c17f68"

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

// serveEnv is the least serve starts with. Auth is "optional" so that tests
// of other settings may add a hook or JWT key or leave them out;
// TestServeRequiresAuth covers the default, "required".
func serveEnv() map[string]string {
	return map[string]string{"KINESCOPE_API_TOKEN": secretToken, "KINESCOPE_PARENT_ID": "proj-1", "TUSPROXY_AUTH": "optional"}
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
				Command:             config.CommandServe,
				APIToken:            secretToken,
				ParentID:            "proj-1",
				InitURL:             "https://uploader.kinescope.io/v2/init",
				Listen:              ":8080",
				BasePath:            "/files/",
				ClientIPHeader:      "x-forwarded-for",
				UpstreamHosts:       []string{"kinescope.io"},
				UpstreamChunkSize:   0,
				UpstreamTimeout:     30 * time.Second,
				InitTimeout:         15 * time.Second,
				Store:               "bolt:./tusproxy.db",
				UploadTTL:           24 * time.Hour,
				ShutdownTimeout:     30 * time.Second,
				LogLevel:            slog.LevelInfo,
				LogFormat:           "json",
				SeedPath:            "/upload",
				ReadHeaderTimeout:   10 * time.Second,
				MaxHeaderBytes:      64 << 10,
				BodyIdleTimeout:     time.Minute,
				MinBodyRate:         256,
				MinBodyRateWindow:   time.Minute,
				UpstreamIdleTimeout: time.Minute,
				Auth:                "optional",
				AuthHookTimeout:     5 * time.Second,
				AuthCacheTTL:        30 * time.Second,
				JWTLeeway:           30 * time.Second,
				JWTJWKSRefresh:      time.Hour,
				CreateRate:          config.AnonymousCreateRate,
				MaxPatchesPerIP:     64,
				MaxInFlight:         10000,
				MaxMetadataBytes:    4 << 10,
				MetricsListen:       "127.0.0.1:9090",
				MetricsLinger:       5 * time.Second,
				MetricsMaxUploads:   1000,
				MetricsUploadGrace:  time.Minute,
				MetricsUploadIdle:   10 * time.Minute,
				RedisPrefix:         "tusproxy:",
				LockLease:           10 * time.Second,
				WebhookEvents:       []string{"upload.created", "upload.completed", "upload.terminated", "upload.expired", "upload.failed"},
				WebhookTimeout:      10 * time.Second,
				WebhookMaxAge:       72 * time.Hour,
			},
		},
		{
			cmd: config.CommandDev,
			want: config.Config{
				Command:             config.CommandDev,
				ParentID:            "dev-project",
				Listen:              "127.0.0.1:8080",
				BasePath:            "/files/",
				ClientIPHeader:      "x-forwarded-for",
				CORSOrigins:         []string{"*"},
				UpstreamChunkSize:   0,
				UpstreamTimeout:     30 * time.Second,
				InitTimeout:         15 * time.Second,
				Store:               "memory",
				UploadTTL:           24 * time.Hour,
				ShutdownTimeout:     30 * time.Second,
				LogLevel:            slog.LevelInfo,
				LogFormat:           "auto",
				SeedPath:            "/upload",
				EmulatorListen:      "127.0.0.1:0",
				ReadHeaderTimeout:   10 * time.Second,
				MaxHeaderBytes:      64 << 10,
				BodyIdleTimeout:     time.Minute,
				MinBodyRate:         256,
				MinBodyRateWindow:   time.Minute,
				UpstreamIdleTimeout: time.Minute,
				Auth:                "optional",
				AuthHookTimeout:     5 * time.Second,
				AuthCacheTTL:        30 * time.Second,
				JWTLeeway:           30 * time.Second,
				JWTJWKSRefresh:      time.Hour,
				MaxPatchesPerIP:     64,
				MaxInFlight:         10000,
				MaxMetadataBytes:    4 << 10,
				MetricsListen:       "127.0.0.1:9090",
				MetricsLinger:       5 * time.Second,
				MetricsMaxUploads:   1000,
				MetricsUploadGrace:  time.Minute,
				MetricsUploadIdle:   10 * time.Minute,
				RedisPrefix:         "tusproxy:",
				LockLease:           10 * time.Second,
				WebhookEvents:       []string{"upload.created", "upload.completed", "upload.terminated", "upload.expired", "upload.failed"},
				WebhookTimeout:      10 * time.Second,
				WebhookMaxAge:       72 * time.Hour,
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
	{"trusted-proxies", "TUSPROXY_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1, 10.1.2.3/8,::ffff:172.16.0.0/108,"},
	{"client-ip-header", "TUSPROXY_CLIENT_IP_HEADER", "Forwarded"},
	{"cors-origins", "TUSPROXY_CORS_ORIGINS", "https://App.example.com, http://localhost:3000"},
	{"max-size", "TUSPROXY_MAX_SIZE", "5 GiB"},
	{"max-metadata-bytes", "TUSPROXY_MAX_METADATA_BYTES", "8KiB"},
	{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS", "Kinescope.io,127.0.0.1,127.0.0.1:8443,[::1]:9000"},
	{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE", "64KiB"},
	{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT", "1m"},
	{"init-timeout", "TUSPROXY_INIT_TIMEOUT", "5s"},
	{"store", "TUSPROXY_STORE", "memory"},
	{"upload-ttl", "TUSPROXY_UPLOAD_TTL", "0"},
	{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT", "2s"},
	{"log-level", "TUSPROXY_LOG_LEVEL", "DEBUG"},
	{"log-format", "TUSPROXY_LOG_FORMAT", "text"},
	{"seed-path", "TUSPROXY_SEED_PATH", "off"},
	// The files do not exist: Load and Validate must not open them.
	{"tls-cert-file", "TUSPROXY_TLS_CERT_FILE", "/nonexistent/tls/cert.pem"},
	{"tls-key-file", "TUSPROXY_TLS_KEY_FILE", "/nonexistent/tls/key.pem"},
	{"read-header-timeout", "TUSPROXY_READ_HEADER_TIMEOUT", "3s"},
	{"max-header-bytes", "TUSPROXY_MAX_HEADER_BYTES", "16 KiB"},
	{"body-idle-timeout", "TUSPROXY_BODY_IDLE_TIMEOUT", "2m"},
	{"min-body-rate", "TUSPROXY_MIN_BODY_RATE", "1KiB"},
	{"min-body-rate-window", "TUSPROXY_MIN_BODY_RATE_WINDOW", "30s"},
	{"upstream-idle-timeout", "TUSPROXY_UPSTREAM_IDLE_TIMEOUT", "45s"},
	{"upstream-ca-file", "TUSPROXY_UPSTREAM_CA_FILE", "/nonexistent/ca.pem"},
	{"auth", "TUSPROXY_AUTH", "required"},
	{"auth-hook-url", "TUSPROXY_AUTH_HOOK_URL", "https://auth.example.com/tus?key=k"},
	{"auth-hook-timeout", "TUSPROXY_AUTH_HOOK_TIMEOUT", "1500ms"},
	{"auth-cache-ttl", "TUSPROXY_AUTH_CACHE_TTL", "0"},
	{"jwt-secret", "TUSPROXY_JWT_SECRET", jwtSecret},
	{"jwt-audience", "TUSPROXY_JWT_AUDIENCE", "uploads"},
	{"jwt-issuer", "TUSPROXY_JWT_ISSUER", "https://id.example.com/"},
	{"jwt-leeway", "TUSPROXY_JWT_LEEWAY", "5m"},
	{"jwt-jwks-refresh", "TUSPROXY_JWT_JWKS_REFRESH", "15m"},
	{"create-rate", "TUSPROXY_CREATE_RATE", "12"},
	{"max-patches-per-ip", "TUSPROXY_MAX_PATCHES_PER_IP", "4"},
	{"max-inflight", "TUSPROXY_MAX_INFLIGHT", "0"},
	{"metrics-listen", "TUSPROXY_METRICS_LISTEN", "127.0.0.1:9191"},
	{"metrics-linger", "TUSPROXY_METRICS_LINGER", "2s"},
	{"metrics-max-uploads", "TUSPROXY_METRICS_MAX_UPLOADS", "50"},
	{"metrics-upload-grace", "TUSPROXY_METRICS_UPLOAD_GRACE", "30s"},
	{"metrics-upload-idle", "TUSPROXY_METRICS_UPLOAD_IDLE", "1h"},
	{"pprof", "TUSPROXY_PPROF", "true"},
	{"redis-prefix", "TUSPROXY_REDIS_PREFIX", "staging:tus:"},
	{"lock-lease", "TUSPROXY_LOCK_LEASE", "20s"},
	{"webhook-url", "TUSPROXY_WEBHOOK_URL", "https://hooks.example.com/tus?key=k"},
	{"webhook-secret", "TUSPROXY_WEBHOOK_SECRET", webhookSecret + " " + webhookSecret2},
	{"webhook-events", "TUSPROXY_WEBHOOK_EVENTS", "upload.completed, Upload.Failed"},
	{"webhook-timeout", "TUSPROXY_WEBHOOK_TIMEOUT", "3s"},
	{"webhook-max-age", "TUSPROXY_WEBHOOK_MAX_AGE", "24h"},
}

// otherSettings are proxy settings that cannot join everySetting because
// they exclude one of its values; TestJWTKeyFiles and TestHelp use them.
var otherSettings = []struct{ flag, env, value string }{
	{"jwt-public-key-file", "TUSPROXY_JWT_PUBLIC_KEY_FILE", "/nonexistent/jwt.pem"},
	{"jwt-jwks-file", "TUSPROXY_JWT_JWKS_FILE", "/nonexistent/jwks.json"},
	{"jwt-jwks-url", "TUSPROXY_JWT_JWKS_URL", "https://id.example.com/.well-known/jwks.json"},
}

var everySettingWant = config.Config{
	Command:           config.CommandServe,
	APIToken:          secretToken,
	ParentID:          "folder-9",
	InitURL:           "http://127.0.0.1:9000/v2/init",
	Listen:            "0.0.0.0:9090",
	BasePath:          "/tus/",
	PublicURL:         "https://up.example.com/media",
	TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")},
	ClientIPHeader:    "forwarded",
	CORSOrigins:       []string{"https://app.example.com", "http://localhost:3000"},
	MaxSize:           5 << 30,
	UpstreamHosts:     []string{"kinescope.io", "127.0.0.1", "127.0.0.1:8443", "[::1]:9000"},
	UpstreamChunkSize: 64 << 10,
	UpstreamTimeout:   time.Minute,
	InitTimeout:       5 * time.Second,
	Store:             "memory",
	UploadTTL:         0,
	ShutdownTimeout:   2 * time.Second,
	LogLevel:          slog.LevelDebug,
	LogFormat:         "text",
	SeedPath:          "",

	TLSCertFile:         "/nonexistent/tls/cert.pem",
	TLSKeyFile:          "/nonexistent/tls/key.pem",
	ReadHeaderTimeout:   3 * time.Second,
	MaxHeaderBytes:      16 << 10,
	BodyIdleTimeout:     2 * time.Minute,
	MinBodyRate:         1 << 10,
	MinBodyRateWindow:   30 * time.Second,
	UpstreamIdleTimeout: 45 * time.Second,
	UpstreamCAFile:      "/nonexistent/ca.pem",
	Auth:                "required",
	AuthHookURL:         "https://auth.example.com/tus?key=k",
	AuthHookTimeout:     1500 * time.Millisecond,
	AuthCacheTTL:        0,
	JWTSecret:           jwtSecret,
	JWTAudience:         "uploads",
	JWTIssuer:           "https://id.example.com/",
	JWTLeeway:           5 * time.Minute,
	JWTJWKSRefresh:      15 * time.Minute,
	CreateRate:          12,
	MaxPatchesPerIP:     4,
	MaxInFlight:         0,
	MaxMetadataBytes:    8 << 10,
	MetricsListen:       "127.0.0.1:9191",
	MetricsLinger:       2 * time.Second,
	MetricsMaxUploads:   50,
	MetricsUploadGrace:  30 * time.Second,
	MetricsUploadIdle:   time.Hour,
	Pprof:               true,
	RedisPrefix:         "staging:tus:",
	LockLease:           20 * time.Second,
	WebhookURL:          "https://hooks.example.com/tus?key=k",
	WebhookSecret:       webhookSecret + " " + webhookSecret2,
	WebhookEvents:       []string{"upload.completed", "upload.failed"},
	WebhookTimeout:      3 * time.Second,
	WebhookMaxAge:       24 * time.Hour,
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
		"TUSPROXY_EMULATOR_FAULTS": "cut-patch-every=3,cut-patch-after=64KiB,fail-every=4",
		"TUSPROXY_LOG_LEVEL":       "warn",
		// Settings the emulator does not use are ignored, even when bad.
		"TUSPROXY_MAX_SIZE":      "lots",
		"TUSPROXY_STORE":         "redis://x",
		"TUSPROXY_JWT_SECRET":    "short",
		"TUSPROXY_MAX_INFLIGHT":  "many",
		"TUSPROXY_TLS_CERT_FILE": "/only/cert.pem",
	}
	c, err := config.Load(config.CommandEmulator, []string{"-log-format=text"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{Command: config.CommandEmulator, EmulatorListen: "127.0.0.1:7000", EmulatorToken: "emu",
		EmulatorDir: "/var/tmp/emu", LogLevel: slog.LevelWarn, LogFormat: "text",
		EmulatorFaults: faultspec.Faults{CutPatchEvery: 3, CutPatchAfter: 64 << 10, FailEvery: 4}}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load = %+v, want %+v", *c, want)
	}

	// A bad fault spec is refused, naming the fault.
	_, err = config.Load(config.CommandEmulator, []string{"-emulator-token=x", "-emulator-faults=fail-every=0"}, envOf(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "fail-every") || !strings.Contains(err.Error(), "TUSPROXY_EMULATOR_FAULTS") {
		t.Errorf("bad -emulator-faults: error %v, want one naming fail-every and TUSPROXY_EMULATOR_FAULTS", err)
	}

	// Proxy flags are not emulator flags.
	if _, err := config.Load(config.CommandEmulator, []string{"-emulator-token=x", "-listen=:1"}, envOf(nil), io.Discard); err == nil {
		t.Error("emulator accepted -listen")
	}
	// And the serve command has no emulator flags.
	if _, err := config.Load(config.CommandServe, []string{"-emulator-token=x"}, envOf(serveEnv()), io.Discard); err == nil {
		t.Error("serve accepted -emulator-token")
	}
	if _, err := config.Load(config.CommandEmulator, []string{"-emulator-token=x", "-jwt-secret=" + jwtSecret}, envOf(nil), io.Discard); err == nil {
		t.Error("emulator accepted -jwt-secret")
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
		{"flag secret wins over env secret", []string{"-jwt-secret=" + jwtSecret + "-flag"}, map[string]string{"TUSPROXY_JWT_SECRET": jwtSecret},
			func(c *config.Config) any { return c.JWTSecret }, jwtSecret + "-flag"},
		{"flag count wins over env", []string{"-max-inflight=7"}, map[string]string{"TUSPROXY_MAX_INFLIGHT": "9"},
			func(c *config.Config) any { return c.MaxInFlight }, 7},
		{"header size by env", nil, map[string]string{"TUSPROXY_MAX_HEADER_BYTES": "1MiB"},
			func(c *config.Config) any { return c.MaxHeaderBytes }, int64(1 << 20)},
		{"a secret file from a mounted secret is trimmed", nil, map[string]string{"TUSPROXY_JWT_SECRET": jwtSecret + "\n"},
			func(c *config.Config) any { return c.JWTSecret }, jwtSecret},
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
	{"webhook-secret", "TUSPROXY_WEBHOOK_SECRET", "whsec_c2hvcnQ=",
		"-webhook-secret (TUSPROXY_WEBHOOK_SECRET): the secret holds fewer than 24 bytes; use 24 to 64 random bytes (openssl rand -base64 32)"},
	{"webhook-events", "TUSPROXY_WEBHOOK_EVENTS", "upload.created,upload.finished",
		`-webhook-events (TUSPROXY_WEBHOOK_EVENTS): "upload.finished" is not an event (use upload.created, upload.completed, upload.terminated, upload.expired, upload.failed)`},
	{"webhook-timeout", "TUSPROXY_WEBHOOK_TIMEOUT", "0",
		"-webhook-timeout (TUSPROXY_WEBHOOK_TIMEOUT): is 0s; must be more than 0"},
	{"webhook-max-age", "TUSPROXY_WEBHOOK_MAX_AGE", "-1h",
		"-webhook-max-age (TUSPROXY_WEBHOOK_MAX_AGE): is -1h0m0s; must be more than 0"},
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
	{"client-ip-header", "TUSPROXY_CLIENT_IP_HEADER", "x-client-ip",
		`-client-ip-header (TUSPROXY_CLIENT_IP_HEADER): "x-client-ip" is not a forwarding header tusproxy reads (use x-forwarded-for, forwarded or x-real-ip)`},
	{"cors-origins", "TUSPROXY_CORS_ORIGINS", "https://app.example.com/",
		`-cors-origins (TUSPROXY_CORS_ORIGINS): "https://app.example.com/" must have no path, query or fragment, not even a trailing / (browsers send scheme://host[:port])`},
	{"max-size", "TUSPROXY_MAX_SIZE", "12XB",
		`-max-size (TUSPROXY_MAX_SIZE): "12XB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-metadata-bytes", "TUSPROXY_MAX_METADATA_BYTES", "0",
		"-max-metadata-bytes (TUSPROXY_MAX_METADATA_BYTES): is 0; must be more than 0"},
	{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS", "https://kinescope.io",
		`-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "https://kinescope.io" is not host or host:port: no scheme, path or user info (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE", "1000",
		"-upstream-chunk-size (TUSPROXY_UPSTREAM_CHUNK_SIZE): is 1KB; must be 0 (never split) or at least 64KiB"},
	{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT", "0s",
		"-upstream-timeout (TUSPROXY_UPSTREAM_TIMEOUT): is 0s; must be more than 0"},
	{"init-timeout", "TUSPROXY_INIT_TIMEOUT", "soon",
		`-init-timeout (TUSPROXY_INIT_TIMEOUT): "soon" is not a duration (like 90s, 15m or 24h)`},
	{"store", "TUSPROXY_STORE", "redis://:" + secretToken + "@cache:6379/zero",
		"-store (TUSPROXY_STORE): has a database that is not a number (redis://host:port/0)"},
	{"metrics-linger", "TUSPROXY_METRICS_LINGER", "-1s",
		`-metrics-linger (TUSPROXY_METRICS_LINGER): is -1s; must not be negative (0 closes the admin listener at once)`},
	{"metrics-listen", "TUSPROXY_METRICS_LISTEN", "9090",
		`-metrics-listen (TUSPROXY_METRICS_LISTEN): "9090" is not host:port (such as :8080 or 127.0.0.1:8080)`},
	{"metrics-max-uploads", "TUSPROXY_METRICS_MAX_UPLOADS", "-1",
		"-metrics-max-uploads (TUSPROXY_METRICS_MAX_UPLOADS): is -1; must not be negative (0 means no per-upload series)"},
	{"metrics-upload-idle", "TUSPROXY_METRICS_UPLOAD_IDLE", "0s",
		"-metrics-upload-idle (TUSPROXY_METRICS_UPLOAD_IDLE): is 0s; must be more than 0"},
	{"pprof", "TUSPROXY_PPROF", "yes please",
		`-pprof (TUSPROXY_PPROF): "yes please" is not true or false`},
	{"redis-prefix", "TUSPROXY_REDIS_PREFIX", "a b",
		`-redis-prefix (TUSPROXY_REDIS_PREFIX): "a b" must be non-empty, without spaces or glob characters (such as tusproxy: or staging:tusproxy:)`},
	{"lock-lease", "TUSPROXY_LOCK_LEASE", "100ms",
		"-lock-lease (TUSPROXY_LOCK_LEASE): is 100ms; must be from 1s to 5m"},
	{"upload-ttl", "TUSPROXY_UPLOAD_TTL", "-1h",
		"-upload-ttl (TUSPROXY_UPLOAD_TTL): is -1h0m0s; must not be negative (0 means never expire)"},
	{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT", "-5s",
		"-shutdown-timeout (TUSPROXY_SHUTDOWN_TIMEOUT): is -5s; must be more than 0"},
	{"log-level", "TUSPROXY_LOG_LEVEL", "verbose",
		`-log-level (TUSPROXY_LOG_LEVEL): "verbose" is not a log level (use debug, info, warn or error)`},
	{"log-format", "TUSPROXY_LOG_FORMAT", "xml",
		`-log-format (TUSPROXY_LOG_FORMAT): "xml" is not a log format (use json, text or auto)`},
	{"seed-path", "TUSPROXY_SEED_PATH", "upload",
		`-seed-path (TUSPROXY_SEED_PATH): "upload" must start with / (or be off)`},
	{"tls-cert-file", "TUSPROXY_TLS_CERT_FILE", "/etc/tusproxy/cert.pem",
		"-tls-cert-file (TUSPROXY_TLS_CERT_FILE): is set but -tls-key-file (TUSPROXY_TLS_KEY_FILE) is not; give both or neither"},
	{"read-header-timeout", "TUSPROXY_READ_HEADER_TIMEOUT", "-1s",
		"-read-header-timeout (TUSPROXY_READ_HEADER_TIMEOUT): is -1s; must be more than 0"},
	{"max-header-bytes", "TUSPROXY_MAX_HEADER_BYTES", "1KiB",
		"-max-header-bytes (TUSPROXY_MAX_HEADER_BYTES): is 1KiB; must be from 4KiB to 16MiB"},
	{"body-idle-timeout", "TUSPROXY_BODY_IDLE_TIMEOUT", "never",
		`-body-idle-timeout (TUSPROXY_BODY_IDLE_TIMEOUT): "never" is not a duration (like 90s, 15m or 24h)`},
	{"min-body-rate", "TUSPROXY_MIN_BODY_RATE", "slow",
		`-min-body-rate (TUSPROXY_MIN_BODY_RATE): "slow" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"min-body-rate-window", "TUSPROXY_MIN_BODY_RATE_WINDOW", "500ms",
		"-min-body-rate-window (TUSPROXY_MIN_BODY_RATE_WINDOW): is 500ms; must be at least 1s (a shorter window cuts clients for a network hiccup)"},
	{"upstream-idle-timeout", "TUSPROXY_UPSTREAM_IDLE_TIMEOUT", "0",
		"-upstream-idle-timeout (TUSPROXY_UPSTREAM_IDLE_TIMEOUT): is 0s; must be more than 0"},
	{"auth-hook-url", "TUSPROXY_AUTH_HOOK_URL", "auth.example.com/tus?key=" + secretToken,
		"-auth-hook-url (TUSPROXY_AUTH_HOOK_URL): must be an absolute http:// or https:// URL"},
	{"auth-hook-timeout", "TUSPROXY_AUTH_HOOK_TIMEOUT", "0s",
		"-auth-hook-timeout (TUSPROXY_AUTH_HOOK_TIMEOUT): is 0s; must be more than 0"},
	{"auth-cache-ttl", "TUSPROXY_AUTH_CACHE_TTL", "-30s",
		"-auth-cache-ttl (TUSPROXY_AUTH_CACHE_TTL): is -30s; must not be negative (0 means no caching)"},
	{"jwt-secret", "TUSPROXY_JWT_SECRET", secretToken,
		"-jwt-secret (TUSPROXY_JWT_SECRET): is shorter than 32 bytes; use a random secret of at least 32 bytes"},
	{"jwt-leeway", "TUSPROXY_JWT_LEEWAY", "5m1s",
		"-jwt-leeway (TUSPROXY_JWT_LEEWAY): is 5m1s; must be from 0 to 5m"},
	{"create-rate", "TUSPROXY_CREATE_RATE", "ten",
		`-create-rate (TUSPROXY_CREATE_RATE): "ten" is not a whole number`},
	{"max-patches-per-ip", "TUSPROXY_MAX_PATCHES_PER_IP", "-1",
		"-max-patches-per-ip (TUSPROXY_MAX_PATCHES_PER_IP): is -1; must not be negative (0 means unlimited)"},
	{"max-inflight", "TUSPROXY_MAX_INFLIGHT", "1.5",
		`-max-inflight (TUSPROXY_MAX_INFLIGHT): "1.5" is not a whole number`},
}

const (
	trustsEveryIPv4 = "-trusted-proxies (TUSPROXY_TRUSTED_PROXIES): trusts every IPv4 address (0.0.0.0/0): any client could then " +
		"write the address it likes into the forwarding header and have it believed; name only the addresses your reverse proxies connect from"
	trustsEveryIPv6 = "-trusted-proxies (TUSPROXY_TRUSTED_PROXIES): trusts every IPv6 address (::/0): any client could then " +
		"write the address it likes into the forwarding header and have it believed; name only the addresses your reverse proxies connect from"
)

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
	// Trusting every address lets every client forge its own, however the
	// "everything" is written.
	{"trusted-proxies", "0.0.0.0/0", trustsEveryIPv4},
	{"trusted-proxies", "10.0.0.0/8,1.2.3.4/0", trustsEveryIPv4},
	{"trusted-proxies", "::ffff:0.0.0.0/96", trustsEveryIPv4},
	{"trusted-proxies", "0.0.0.0/1,128.0.0.0/2,192.0.0.0/2", trustsEveryIPv4},
	{"trusted-proxies", "::/0", trustsEveryIPv6},
	{"trusted-proxies", "::1/0", trustsEveryIPv6},
	{"trusted-proxies", "0::0/0", trustsEveryIPv6},
	{"trusted-proxies", "::/1,8000::/1", trustsEveryIPv6},
	{"client-ip-header", "", `-client-ip-header (TUSPROXY_CLIENT_IP_HEADER): "" is not a forwarding header tusproxy reads (use x-forwarded-for, forwarded or x-real-ip)`},
	{"cors-origins", "*,https://a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "*" allows every origin and must be the only entry`},
	{"cors-origins", "a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "a.example" is not an origin like https://example.com or https://example.com:8443`},
	{"cors-origins", "https://u@a.example", `-cors-origins (TUSPROXY_CORS_ORIGINS): "https://u@a.example" is not an origin like https://example.com or https://example.com:8443`},
	{"max-size", "-1", `-max-size (TUSPROXY_MAX_SIZE): "-1" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "1.5GiB", `-max-size (TUSPROXY_MAX_SIZE): "1.5GiB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "MiB", `-max-size (TUSPROXY_MAX_SIZE): "MiB" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"max-size", "9999999TiB", `-max-size (TUSPROXY_MAX_SIZE): "9999999TiB" is too large`},
	{"max-size", "99999999999999999999", `-max-size (TUSPROXY_MAX_SIZE): "99999999999999999999" is too large`},
	{"upstream-hosts", "", "-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): must name at least one host"},
	{"upstream-hosts", "kinescope.io:0", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "kinescope.io:0" is not host or host:port: the port is not a number from 1 to 65535 (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-hosts", "kinescope.io:https", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "kinescope.io:https" is not host or host:port: the port is not a number from 1 to 65535 (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-hosts", "kinescope.io:65536", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "kinescope.io:65536" is not host or host:port: the port is not a number from 1 to 65535 (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-hosts", "::1:8443:x", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "::1:8443:x" is not host or host:port: not host or host:port (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-hosts", "[kinescope.io]:443", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "[kinescope.io]:443" is not host or host:port: only an IPv6 address goes in brackets (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"upstream-hosts", "kine$cope.io:443", `-upstream-hosts (TUSPROXY_UPSTREAM_HOSTS): "kine$cope.io:443" is not host or host:port: "kine$cope.io" is not a lowercase host name or IP address (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)`},
	{"kinescope-init-url", "http://uploader.kinescope.io/v2/init", "-kinescope-init-url (KINESCOPE_INIT_URL): uses plain http to a host that is not loopback, so the API token would travel in clear: use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"},
	{"kinescope-init-url", "http://127.0.0.1.nip.io/v2/init", "-kinescope-init-url (KINESCOPE_INIT_URL): uses plain http to a host that is not loopback, so the API token would travel in clear: use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"},
	{"kinescope-init-url", "http://10.0.0.1:9000/v2/init", "-kinescope-init-url (KINESCOPE_INIT_URL): uses plain http to a host that is not loopback, so the API token would travel in clear: use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"},
	{"upstream-chunk-size", "64KiB-1", `-upstream-chunk-size (TUSPROXY_UPSTREAM_CHUNK_SIZE): "64KiB-1" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"upstream-chunk-size", "65535", "-upstream-chunk-size (TUSPROXY_UPSTREAM_CHUNK_SIZE): is 65535; must be 0 (never split) or at least 64KiB"},
	{"upstream-timeout", "-1s", "-upstream-timeout (TUSPROXY_UPSTREAM_TIMEOUT): is -1s; must be more than 0"},
	{"init-timeout", "0", "-init-timeout (TUSPROXY_INIT_TIMEOUT): is 0s; must be more than 0"},
	{"store", "bolt:", `-store (TUSPROXY_STORE): "bolt:" needs a file path, such as bolt:/var/lib/tusproxy/state.db`},
	{"store", "disk", `-store (TUSPROXY_STORE): "disk" is not a supported store (use memory, bolt:PATH or redis://host:port/db)`},
	{"store", "", `-store (TUSPROXY_STORE): "" is not a supported store (use memory, bolt:PATH or redis://host:port/db)`},
	{"seed-path", "/files/seed", `-seed-path (TUSPROXY_SEED_PATH): "/files/seed" overlaps the tus base path "/files/" (-base-path); choose another path or off`},
	{"tls-key-file", "/etc/tusproxy/key.pem", "-tls-key-file (TUSPROXY_TLS_KEY_FILE): is set but -tls-cert-file (TUSPROXY_TLS_CERT_FILE) is not; give both or neither"},
	{"read-header-timeout", "0", "-read-header-timeout (TUSPROXY_READ_HEADER_TIMEOUT): is 0s; must be more than 0"},
	{"max-header-bytes", "4095", "-max-header-bytes (TUSPROXY_MAX_HEADER_BYTES): is 4095; must be from 4KiB to 16MiB"},
	{"max-header-bytes", "17MiB", "-max-header-bytes (TUSPROXY_MAX_HEADER_BYTES): is 17MiB; must be from 4KiB to 16MiB"},
	{"max-header-bytes", "0", "-max-header-bytes (TUSPROXY_MAX_HEADER_BYTES): is 0; must be from 4KiB to 16MiB"},
	{"max-header-bytes", "big", `-max-header-bytes (TUSPROXY_MAX_HEADER_BYTES): "big" is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
	{"body-idle-timeout", "0", "-body-idle-timeout (TUSPROXY_BODY_IDLE_TIMEOUT): is 0s; must be more than 0"},
	{"upstream-idle-timeout", "-1m", "-upstream-idle-timeout (TUSPROXY_UPSTREAM_IDLE_TIMEOUT): is -1m0s; must be more than 0"},
	{"auth-hook-url", "https:///check", "-auth-hook-url (TUSPROXY_AUTH_HOOK_URL): must be an absolute http:// or https:// URL"},
	{"auth-hook-url", "ftp://u:" + secretToken + "@auth.example.com/", "-auth-hook-url (TUSPROXY_AUTH_HOOK_URL): must be an absolute http:// or https:// URL"},
	{"auth-hook-timeout", "-1s", "-auth-hook-timeout (TUSPROXY_AUTH_HOOK_TIMEOUT): is -1s; must be more than 0"},
	{"auth-cache-ttl", "a while", `-auth-cache-ttl (TUSPROXY_AUTH_CACHE_TTL): "a while" is not a duration (like 90s, 15m or 24h)`},
	{"jwt-secret", jwtSecret[:31], "-jwt-secret (TUSPROXY_JWT_SECRET): is shorter than 32 bytes; use a random secret of at least 32 bytes"},
	{"jwt-leeway", "-1s", "-jwt-leeway (TUSPROXY_JWT_LEEWAY): is -1s; must be from 0 to 5m"},
	{"jwt-audience", "uploads", "-jwt-audience (TUSPROXY_JWT_AUDIENCE): has no effect without -jwt-secret (TUSPROXY_JWT_SECRET), -jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE), -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE) or -jwt-jwks-url (TUSPROXY_JWT_JWKS_URL); JWTs are not checked at all"},
	{"jwt-issuer", "https://id.example.com/", "-jwt-issuer (TUSPROXY_JWT_ISSUER): has no effect without -jwt-secret (TUSPROXY_JWT_SECRET), -jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE), -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE) or -jwt-jwks-url (TUSPROXY_JWT_JWKS_URL); JWTs are not checked at all"},
	{"create-rate", "-5", "-create-rate (TUSPROXY_CREATE_RATE): is -5; must not be negative (0 means unlimited)"},
	{"create-rate", "99999999999999999999", `-create-rate (TUSPROXY_CREATE_RATE): "99999999999999999999" is too large`},
	{"max-patches-per-ip", "", `-max-patches-per-ip (TUSPROXY_MAX_PATCHES_PER_IP): "" is not a whole number`},
	{"max-inflight", "-1", "-max-inflight (TUSPROXY_MAX_INFLIGHT): is -1; must not be negative (0 means unlimited)"},
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
			serveAuthRequired,
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
			c, err := config.Load(cmd, []string{"-h"}, envOf(map[string]string{"KINESCOPE_API_TOKEN": secretToken, "TUSPROXY_EMULATOR_TOKEN": secretToken, "TUSPROXY_JWT_SECRET": jwtSecret}), &out)
			if !errors.Is(err, flag.ErrHelp) || c != nil {
				t.Fatalf("Load -h = %v, %v; want nil, flag.ErrHelp", c, err)
			}
			usage := out.String()
			if strings.Contains(usage, secretToken) || strings.Contains(usage, jwtSecret) {
				t.Error("usage shows a secret")
			}
			emulatorOnly := map[string]bool{"emulator-listen": true, "emulator-token": true, "emulator-dir": true, "log-level": true, "log-format": true}
			all := append(everySetting[:len(everySetting):len(everySetting)], otherSettings...)
			for _, s := range append(all,
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
		"env TUSPROXY_UPSTREAM_CHUNK_SIZE, default \"0\"",
		"env TUSPROXY_LISTEN, default \":8080\"",
		"env KINESCOPE_API_TOKEN, default none, required",
		"env TUSPROXY_STORE, default \"bolt:./tusproxy.db\"",
		"env TUSPROXY_MAX_HEADER_BYTES, default \"64KiB\"",
		"env TUSPROXY_MAX_INFLIGHT, default \"10000\"",
		"env TUSPROXY_CREATE_RATE, default \"10\" with anonymous uploads, else \"0\"",
		"env TUSPROXY_JWT_LEEWAY, default \"30s\"",
		"env TUSPROXY_JWT_SECRET, default none\n",
		"env TUSPROXY_AUTH_HOOK_URL, default none: no hook\n",
		"env TUSPROXY_TLS_CERT_FILE, default none\n",
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
	env["TUSPROXY_AUTH_HOOK_URL"] = "https://hook:" + secretToken + "@auth.example.com/tus?sig=" + secretToken
	env["TUSPROXY_JWT_SECRET"] = jwtSecret
	c, err := config.Load(config.CommandServe, []string{"-max-size=2GiB", "-trusted-proxies=10.0.0.0/8", "-upstream-ca-file=/etc/ca.pem"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	if strings.Contains(s, secretToken) || strings.Contains(s, jwtSecret) {
		t.Fatalf("String() shows a secret: %s", s)
	}
	for _, want := range []string{
		"command=serve ",
		"kinescope-api-token=(set)",
		"kinescope-init-url=https://uploader.kinescope.io/v2/init?redacted",
		"max-size=2GiB",
		"upstream-chunk-size=0",
		"trusted-proxies=10.0.0.0/8",
		`cors-origins=""`,
		"upload-ttl=24h0m0s",
		"log-level=info",
		"seed-path=/upload",
		"auth-hook-url=https://redacted@auth.example.com/tus?redacted",
		"jwt-secret=(set)",
		"jwt-leeway=30s",
		`jwt-audience=""`,
		"max-header-bytes=64KiB",
		"max-inflight=1000",
		"create-rate=0",
		"body-idle-timeout=1m0s",
		"upstream-ca-file=/etc/ca.pem",
		`tls-cert-file=""`,
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
	if strings.Contains(logged.String(), secretToken) || strings.Contains(logged.String(), jwtSecret) ||
		!strings.Contains(logged.String(), "config.kinescope-api-token=(set)") || !strings.Contains(logged.String(), "config.jwt-secret=(set)") {
		t.Errorf("logged config: %s", logged.String())
	}

	unset := (&config.Config{Command: config.CommandEmulator}).String()
	if !strings.Contains(unset, "emulator-token=(unset)") {
		t.Errorf("String() of an empty emulator config: %s", unset)
	}
	if unset := (&config.Config{Command: config.CommandDev}).String(); !strings.Contains(unset, "jwt-secret=(unset)") {
		t.Errorf("String() of an empty dev config: %s", unset)
	}
}

func TestJWTKeyFiles(t *testing.T) {
	for _, s := range otherSettings {
		for _, via := range []string{"flag", "env"} {
			t.Run(s.flag+" by "+via, func(t *testing.T) {
				env := serveEnv()
				env["TUSPROXY_JWT_AUDIENCE"] = "uploads"
				var args []string
				if via == "flag" {
					args = []string{"-" + s.flag + "=" + s.value}
				} else {
					env[s.env] = s.value
				}
				// The file does not exist: only the proxy reads it.
				c, err := config.Load(config.CommandServe, args, envOf(env), io.Discard)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				got := map[string]string{"jwt-public-key-file": c.JWTPublicKeyFile, "jwt-jwks-file": c.JWTJWKSFile, "jwt-jwks-url": c.JWTJWKSURL}
				for flag, value := range got {
					want := ""
					if flag == s.flag {
						want = s.value
					}
					if value != want {
						t.Errorf("-%s = %q, want %q", flag, value, want)
					}
				}
				if !c.JWTEnabled() || !c.AuthEnabled() || c.JWTAudience != "uploads" {
					t.Errorf("JWTEnabled %v, AuthEnabled %v, JWTAudience %q", c.JWTEnabled(), c.AuthEnabled(), c.JWTAudience)
				}
				if !strings.Contains(c.String(), s.flag+"="+s.value) {
					t.Errorf("String() lacks %s=%s: %s", s.flag, s.value, c)
				}
			})
		}
	}
}

func TestSettingCombinations(t *testing.T) {
	const (
		secret = "-jwt-secret=" + jwtSecret
		pem    = "-jwt-public-key-file=/keys/jwt.pem"
		jwks   = "-jwt-jwks-file=/keys/jwks.json"
		// Validate does not fetch it: only the proxy does.
		jwksURL = "-jwt-jwks-url=https://id.example.com/.well-known/jwks.json"
	)
	tests := []struct {
		name string
		cmd  config.Command
		args []string
		want []string
	}{
		{"secret and public key", config.CommandServe, []string{secret, pem}, []string{
			"-jwt-secret (TUSPROXY_JWT_SECRET): cannot be combined with -jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE); give one way to verify JWTs",
		}},
		{"public key and JWKS", config.CommandServe, []string{jwks, pem}, []string{
			"-jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE): cannot be combined with -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE); give one way to verify JWTs",
		}},
		{"all three", config.CommandServe, []string{jwks, pem, secret}, []string{
			"-jwt-secret (TUSPROXY_JWT_SECRET): cannot be combined with -jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE) or -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE); give one way to verify JWTs",
		}},
		{"short secret and a key file are two problems", config.CommandServe, []string{"-jwt-secret=" + secretToken, jwks}, []string{
			"-jwt-secret (TUSPROXY_JWT_SECRET): is shorter than 32 bytes; use a random secret of at least 32 bytes",
			"-jwt-secret (TUSPROXY_JWT_SECRET): cannot be combined with -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE); give one way to verify JWTs",
		}},
		{"audience and issuer with a key", config.CommandServe, []string{jwks, "-jwt-audience=a", "-jwt-issuer=i", "-jwt-leeway=0"}, nil},
		{"JWKS file and URL", config.CommandServe, []string{jwks, jwksURL}, []string{
			"-jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE): cannot be combined with -jwt-jwks-url (TUSPROXY_JWT_JWKS_URL); give one way to verify JWTs",
		}},
		{"JWKS URL alone", config.CommandServe, []string{jwksURL, "-jwt-audience=a"}, nil},
		{"JWKS URL over http to loopback", config.CommandServe, []string{"-jwt-jwks-url=http://127.0.0.1:8080/jwks.json"}, nil},
		{"JWKS URL over http to localhost", config.CommandServe, []string{"-jwt-jwks-url=http://localhost:8080/jwks.json"}, nil},
		{"JWKS URL over http elsewhere", config.CommandServe, []string{"-jwt-jwks-url=http://id.example.com/jwks.json"}, []string{
			"-jwt-jwks-url (TUSPROXY_JWT_JWKS_URL): uses plain http to a host that is not loopback, so anyone on the path could replace the keys and sign their own tokens: " +
				"use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)",
		}},
		{"JWKS URL not a URL", config.CommandServe, []string{"-jwt-jwks-url=id.example.com/jwks.json"}, []string{
			"-jwt-jwks-url (TUSPROXY_JWT_JWKS_URL): must be an absolute https:// URL",
		}},
		{"JWKS refresh too short", config.CommandServe, []string{jwksURL, "-jwt-jwks-refresh=500ms"}, []string{
			"-jwt-jwks-refresh (TUSPROXY_JWT_JWKS_REFRESH): is 500ms; must be at least 1s",
		}},
		{"JWKS refresh unused without the URL", config.CommandServe, []string{secret, "-jwt-jwks-refresh=0"}, nil},
		{"leeway alone is fine", config.CommandServe, []string{"-jwt-leeway=1m"}, nil},
		{"hook and JWT together", config.CommandServe, []string{secret, "-auth-hook-url=http://127.0.0.1:9999/auth"}, nil},
		{"TLS cert and key", config.CommandServe, []string{"-tls-cert-file=/c.pem", "-tls-key-file=/k.pem"}, nil},
		{"exactly 32-byte secret", config.CommandServe, []string{"-jwt-secret=" + jwtSecret[:32]}, nil},
		{"limits at their edges", config.CommandServe, []string{"-max-header-bytes=4KiB", "-create-rate=0", "-max-patches-per-ip=0", "-max-inflight=0"}, nil},
		{"largest header limit", config.CommandServe, []string{"-max-header-bytes=16MiB"}, nil},
		{"dev takes the new settings", config.CommandDev, []string{secret, "-create-rate=60", "-tls-cert-file=/c.pem", "-tls-key-file=/k.pem"}, nil},
		{"dev checks them too", config.CommandDev, []string{"-max-inflight=-1", "-tls-key-file=/k.pem"}, []string{
			"-tls-key-file (TUSPROXY_TLS_KEY_FILE): is set but -tls-cert-file (TUSPROXY_TLS_CERT_FILE) is not; give both or neither",
			"-max-inflight (TUSPROXY_MAX_INFLIGHT): is -1; must not be negative (0 means unlimited)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := serveEnv()
			if tt.cmd != config.CommandServe {
				env = nil
			}
			err := loadErr(tt.cmd, tt.args, env)
			if lines := problemLines(err); !reflect.DeepEqual(lines, tt.want) {
				t.Errorf("problems =\n%q\nwant\n%q", lines, tt.want)
			}
			if err != nil && (strings.Contains(err.Error(), jwtSecret[:32]) || strings.Contains(err.Error(), secretToken)) {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestAuthEnabled(t *testing.T) {
	tests := []struct {
		name     string
		c        config.Config
		jwt, any bool
	}{
		{"nothing", config.Config{JWTAudience: "a", JWTIssuer: "i", JWTLeeway: time.Minute, AuthCacheTTL: time.Minute}, false, false},
		{"hook", config.Config{AuthHookURL: "https://auth.example.com/"}, false, true},
		{"secret", config.Config{JWTSecret: jwtSecret}, true, true},
		{"public key", config.Config{JWTPublicKeyFile: "/k.pem"}, true, true},
		{"JWKS", config.Config{JWTJWKSFile: "/jwks.json"}, true, true},
		{"hook and JWT", config.Config{AuthHookURL: "https://auth.example.com/", JWTJWKSFile: "/jwks.json"}, true, true},
	}
	for _, tt := range tests {
		if got := tt.c.JWTEnabled(); got != tt.jwt {
			t.Errorf("%s: JWTEnabled = %v, want %v", tt.name, got, tt.jwt)
		}
		if got := tt.c.AuthEnabled(); got != tt.any {
			t.Errorf("%s: AuthEnabled = %v, want %v", tt.name, got, tt.any)
		}
	}
}

// TestInitURLPlainHTTPOnlyToLoopback: the API token goes with every init
// call, so plain http is accepted only where nobody can listen in.
func TestInitURLPlainHTTPOnlyToLoopback(t *testing.T) {
	for _, initURL := range []string{
		"https://uploader.kinescope.io/v2/init",
		"http://127.0.0.1:9000/v2/init",
		"http://127.8.9.10/v2/init",
		"http://[::1]:9000/v2/init",
		"http://localhost:9000/v2/init",
		"HTTP://LOCALHOST/v2/init",
	} {
		env := serveEnv()
		env["KINESCOPE_INIT_URL"] = initURL
		if _, err := config.Load(config.CommandServe, nil, envOf(env), io.Discard); err != nil {
			t.Errorf("KINESCOPE_INIT_URL=%s refused: %v", initURL, err)
		}
	}
}

// TestServeAdminListenerIsLoopbackByDefault: the admin listener has no
// auth and its per-upload series name upload ids, so serve binds it to
// loopback unless told otherwise (issue 11, item 5); containers set ":9090".
func TestServeAdminListenerIsLoopbackByDefault(t *testing.T) {
	for _, cmd := range []config.Command{config.CommandServe, config.CommandDev} {
		c, err := config.Load(cmd, nil, envOf(serveEnv()), io.Discard)
		if err != nil {
			t.Fatalf("Load(%s): %v", cmd, err)
		}
		if c.MetricsListen != "127.0.0.1:9090" {
			t.Errorf("%s: MetricsListen = %q, want 127.0.0.1:9090", cmd, c.MetricsListen)
		}
	}
	c, err := config.Load(config.CommandServe, nil, envOf(map[string]string{
		"KINESCOPE_API_TOKEN": secretToken, "KINESCOPE_PARENT_ID": "p", "TUSPROXY_METRICS_LISTEN": ":9090",
		"TUSPROXY_AUTH": "none",
	}), io.Discard)
	if err != nil {
		t.Fatalf("TUSPROXY_METRICS_LISTEN=:9090: %v", err)
	}
	if c.MetricsListen != ":9090" {
		t.Errorf("TUSPROXY_METRICS_LISTEN=:9090 gives %q, want :9090", c.MetricsListen)
	}
}

// TestMaxMetadataBytes: the cap defaults to 4KiB and cannot exceed the
// header block it travels in.
func TestMaxMetadataBytes(t *testing.T) {
	c, err := config.Load(config.CommandServe, nil, envOf(serveEnv()), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxMetadataBytes != 4<<10 {
		t.Errorf("default MaxMetadataBytes = %d, want 4096", c.MaxMetadataBytes)
	}
	err = loadErr(config.CommandServe, []string{"-max-metadata-bytes=128KiB"}, serveEnv())
	want := "-max-metadata-bytes (TUSPROXY_MAX_METADATA_BYTES): is 128KiB, more than -max-header-bytes (TUSPROXY_MAX_HEADER_BYTES) (64KiB): the header block would be refused first; raise both"
	if lines := problemLines(err); len(lines) != 1 || lines[0] != want {
		t.Errorf("problems = %q, want [%q]", lines, want)
	}
	if err := loadErr(config.CommandServe, []string{"-max-metadata-bytes=128KiB", "-max-header-bytes=256KiB"}, serveEnv()); err != nil {
		t.Errorf("128KiB of metadata in 256KiB of headers: %v", err)
	}
}

const serveAuthRequired = "-auth (TUSPROXY_AUTH): is required but neither -auth-hook-url (TUSPROXY_AUTH_HOOK_URL) nor a JWT key " +
	"(-jwt-secret (TUSPROXY_JWT_SECRET), -jwt-public-key-file (TUSPROXY_JWT_PUBLIC_KEY_FILE), -jwt-jwks-file (TUSPROXY_JWT_JWKS_FILE) or -jwt-jwks-url (TUSPROXY_JWT_JWKS_URL)) is set: " +
	"anyone could create videos on your Kinescope account; configure one, or set TUSPROXY_AUTH=none to accept anonymous uploads " +
	"(only behind a gateway that authenticates)"

// serve refuses to run open unless anonymous uploads are chosen explicitly;
// anonymous serve gets a creation rate unless one is given; dev stays open.
func TestServeRequiresAuth(t *testing.T) {
	base := map[string]string{"KINESCOPE_API_TOKEN": secretToken, "KINESCOPE_PARENT_ID": "proj-1"}
	with := func(kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, tt := range []struct {
		name     string
		cmd      config.Command
		env      map[string]string
		problems []string
		auth     string
		rate     int
		mode     string
	}{
		{"serve without auth", config.CommandServe, with(), []string{serveAuthRequired}, "", 0, ""},
		{"serve with a hook", config.CommandServe, with("TUSPROXY_AUTH_HOOK_URL", "https://auth.example.com/"), nil, "required", 0, "auth hook"},
		{"serve with JWT", config.CommandServe, with("TUSPROXY_JWT_SECRET", jwtSecret), nil, "required", 0, "JWT"},
		{"serve with JWT and hook", config.CommandServe, with("TUSPROXY_JWT_SECRET", jwtSecret, "TUSPROXY_AUTH_HOOK_URL", "https://auth.example.com/"), nil, "required", 0, "JWT + hook"},
		{"serve anonymous", config.CommandServe, with("TUSPROXY_AUTH", "none"), nil, "none", config.AnonymousCreateRate, "anonymous"},
		{"serve anonymous, NONE", config.CommandServe, with("TUSPROXY_AUTH", "NONE"), nil, "none", config.AnonymousCreateRate, "anonymous"},
		{"serve anonymous with a chosen rate", config.CommandServe, with("TUSPROXY_AUTH", "none", "TUSPROXY_CREATE_RATE", "100"), nil, "none", 100, "anonymous"},
		{"serve anonymous, unlimited on purpose", config.CommandServe, with("TUSPROXY_AUTH", "none", "TUSPROXY_CREATE_RATE", "0"), nil, "none", 0, "anonymous"},
		{"serve anonymous contradicted by a hook", config.CommandServe, with("TUSPROXY_AUTH", "none", "TUSPROXY_AUTH_HOOK_URL", "https://auth.example.com/"), []string{
			"-auth (TUSPROXY_AUTH): is none (anonymous uploads) but -auth-hook-url (TUSPROXY_AUTH_HOOK_URL) is set; remove one or the other",
		}, "", 0, ""},
		{"serve anonymous contradicted by JWT", config.CommandServe, with("TUSPROXY_AUTH", "none", "TUSPROXY_JWT_SECRET", jwtSecret), []string{
			"-auth (TUSPROXY_AUTH): is none (anonymous uploads) but -jwt-secret (TUSPROXY_JWT_SECRET) is set; remove one or the other",
		}, "", 0, ""},
		{"unknown mode", config.CommandServe, with("TUSPROXY_AUTH", "off", "TUSPROXY_JWT_SECRET", jwtSecret), []string{
			`-auth (TUSPROXY_AUTH): "off" is not an auth mode (use required, none or optional)`,
		}, "", 0, ""},
		{"dev is open", config.CommandDev, nil, nil, "optional", 0, "anonymous"},
		{"dev with a hook", config.CommandDev, map[string]string{"TUSPROXY_AUTH_HOOK_URL": "https://auth.example.com/"}, nil, "optional", 0, "auth hook"},
		{"dev required", config.CommandDev, map[string]string{"TUSPROXY_AUTH": "required"}, []string{
			serveAuthRequired,
		}, "", 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.cmd, nil, envOf(tt.env), io.Discard)
			if lines := problemLines(err); !reflect.DeepEqual(lines, tt.problems) {
				t.Fatalf("problems =\n%q\nwant\n%q", lines, tt.problems)
			}
			if err != nil {
				return
			}
			if c.Auth != tt.auth || c.CreateRate != tt.rate || c.AuthMode() != tt.mode {
				t.Errorf("Auth %q CreateRate %d AuthMode %q, want %q %d %q", c.Auth, c.CreateRate, c.AuthMode(), tt.auth, tt.rate, tt.mode)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("a loaded config does not validate: %v", err)
			}
		})
	}
}

// TestSlowClientLimitsOnByDefault: serve caps the PATCHes one address may
// hold and cuts bodies that dribble, without being configured to (issue
// 11: one address dribbling 1 byte/s held every in-flight slot).
func TestSlowClientLimitsOnByDefault(t *testing.T) {
	for _, cmd := range []config.Command{config.CommandServe, config.CommandDev} {
		c, err := config.Load(cmd, nil, envOf(serveEnv()), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if c.MaxPatchesPerIP <= 0 || c.MaxPatchesPerIP >= c.MaxInFlight {
			t.Errorf("%s: MaxPatchesPerIP = %d, want a cap above 0 and below MaxInFlight (%d)", cmd, c.MaxPatchesPerIP, c.MaxInFlight)
		}
		if c.MinBodyRate <= 0 || c.MinBodyRateWindow < time.Second {
			t.Errorf("%s: MinBodyRate = %d over %s, want a rate above 0 over at least 1s", cmd, c.MinBodyRate, c.MinBodyRateWindow)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: defaults do not validate: %v", cmd, err)
		}
	}
}

// TestWebhookSettings: webhooks are off by default; a URL needs a secret;
// the URL must be absolute http(s); the secret never shows.
func TestWebhookSettings(t *testing.T) {
	c, err := config.Load(config.CommandServe, nil, envOf(serveEnv()), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhooksEnabled() {
		t.Error("webhooks are on by default")
	}

	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"a URL without a secret", map[string]string{"TUSPROXY_WEBHOOK_URL": "https://hooks.example.com/tus"}, []string{
			"-webhook-secret (TUSPROXY_WEBHOOK_SECRET): is required with -webhook-url (TUSPROXY_WEBHOOK_URL): receivers verify every delivery with it (make one with: echo whsec_$(openssl rand -base64 32))"}},
		{"a relative URL", map[string]string{"TUSPROXY_WEBHOOK_URL": "hooks.example.com/tus?key=" + secretToken, "TUSPROXY_WEBHOOK_SECRET": webhookSecret}, []string{
			"-webhook-url (TUSPROXY_WEBHOOK_URL): must be an absolute http:// or https:// URL"}},
		{"an ftp URL", map[string]string{"TUSPROXY_WEBHOOK_URL": "ftp://hooks.example.com/", "TUSPROXY_WEBHOOK_SECRET": webhookSecret}, []string{
			"-webhook-url (TUSPROXY_WEBHOOK_URL): must be an absolute http:// or https:// URL"}},
		{"plain http and several secrets", map[string]string{"TUSPROXY_WEBHOOK_URL": "http://10.0.0.5:3000/hooks", "TUSPROXY_WEBHOOK_SECRET": webhookSecret + "  " + webhookSecret2}, nil},
		{"a secret alone is kept for later", map[string]string{"TUSPROXY_WEBHOOK_SECRET": webhookSecret}, nil},
	}
	for _, tt := range tests {
		env := serveEnv()
		for k, v := range tt.env {
			env[k] = v
		}
		lines := problemLines(loadErr(config.CommandServe, nil, env))
		if !reflect.DeepEqual(lines, tt.want) {
			t.Errorf("%s: problems %q, want %q", tt.name, lines, tt.want)
		}
		for _, line := range lines {
			if strings.Contains(line, secretToken) || strings.Contains(line, "MDEyMzQ1") {
				t.Errorf("%s: a problem quotes a secret: %s", tt.name, line)
			}
		}
	}

	env := serveEnv()
	env["TUSPROXY_WEBHOOK_URL"] = "https://hook:" + secretToken + "@hooks.example.com/tus?key=" + secretToken
	env["TUSPROXY_WEBHOOK_SECRET"] = webhookSecret
	c, err = config.Load(config.CommandDev, nil, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.WebhooksEnabled() {
		t.Error("dev with a webhook URL: webhooks off")
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c)
	for _, shown := range []string{c.String(), logged.String()} {
		if strings.Contains(shown, "MDEyMzQ1") || strings.Contains(shown, secretToken) {
			t.Errorf("the summary shows the webhook secret or URL credentials: %s", shown)
		}
		for _, want := range []string{"webhook-secret=(set)", "webhook-url=https://redacted@hooks.example.com/tus?redacted", "webhook-max-age=72h0m0s"} {
			if !strings.Contains(shown, want) {
				t.Errorf("summary lacks %s: %s", want, shown)
			}
		}
	}
}
