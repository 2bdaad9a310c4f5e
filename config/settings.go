package config

import (
	"github.com/kinescope-tools/tusproxy/internal/faultspec"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"

	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// name ties a flag to its environment variable; every problem names both.
type name struct{ flag, env string }

// String reads like "-max-size (TUSPROXY_MAX_SIZE)", the way problems name a
// setting, for problems that mention another one.
func (n name) String() string { return "-" + n.flag + " (" + n.env + ")" }

// The names of every setting, in the order usage and String list them.
var (
	nameAPIToken          = name{"kinescope-api-token", "KINESCOPE_API_TOKEN"}
	nameParentID          = name{"kinescope-parent-id", "KINESCOPE_PARENT_ID"}
	nameInitURL           = name{"kinescope-init-url", "KINESCOPE_INIT_URL"}
	nameListen            = name{"listen", "TUSPROXY_LISTEN"}
	nameTLSCertFile       = name{"tls-cert-file", "TUSPROXY_TLS_CERT_FILE"}
	nameTLSKeyFile        = name{"tls-key-file", "TUSPROXY_TLS_KEY_FILE"}
	nameReadHeaderTimeout = name{"read-header-timeout", "TUSPROXY_READ_HEADER_TIMEOUT"}
	nameMaxHeaderBytes    = name{"max-header-bytes", "TUSPROXY_MAX_HEADER_BYTES"}
	nameBodyIdleTimeout   = name{"body-idle-timeout", "TUSPROXY_BODY_IDLE_TIMEOUT"}
	nameMinBodyRate       = name{"min-body-rate", "TUSPROXY_MIN_BODY_RATE"}
	nameMinBodyRateWindow = name{"min-body-rate-window", "TUSPROXY_MIN_BODY_RATE_WINDOW"}
	nameBasePath          = name{"base-path", "TUSPROXY_BASE_PATH"}
	namePublicURL         = name{"public-url", "TUSPROXY_PUBLIC_URL"}
	nameTrustedProxies    = name{"trusted-proxies", "TUSPROXY_TRUSTED_PROXIES"}
	nameClientIPHeader    = name{"client-ip-header", "TUSPROXY_CLIENT_IP_HEADER"}
	nameCORSOrigins       = name{"cors-origins", "TUSPROXY_CORS_ORIGINS"}
	nameMaxSize           = name{"max-size", "TUSPROXY_MAX_SIZE"}
	nameMaxMetadataBytes  = name{"max-metadata-bytes", "TUSPROXY_MAX_METADATA_BYTES"}
	nameUpstreamHosts     = name{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS"}
	nameUpstreamChunkSize = name{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE"}
	nameUpstreamTimeout   = name{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT"}
	nameUpstreamIdle      = name{"upstream-idle-timeout", "TUSPROXY_UPSTREAM_IDLE_TIMEOUT"}
	nameUpstreamCAFile    = name{"upstream-ca-file", "TUSPROXY_UPSTREAM_CA_FILE"}
	nameInitTimeout       = name{"init-timeout", "TUSPROXY_INIT_TIMEOUT"}
	nameStore             = name{"store", "TUSPROXY_STORE"}
	nameUploadTTL         = name{"upload-ttl", "TUSPROXY_UPLOAD_TTL"}
	nameShutdownTimeout   = name{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT"}
	nameLogLevel          = name{"log-level", "TUSPROXY_LOG_LEVEL"}
	nameLogFormat         = name{"log-format", "TUSPROXY_LOG_FORMAT"}
	nameSeedPath          = name{"seed-path", "TUSPROXY_SEED_PATH"}
	nameAuth              = name{"auth", "TUSPROXY_AUTH"}
	nameAuthHookURL       = name{"auth-hook-url", "TUSPROXY_AUTH_HOOK_URL"}
	nameAuthHookTimeout   = name{"auth-hook-timeout", "TUSPROXY_AUTH_HOOK_TIMEOUT"}
	nameAuthCacheTTL      = name{"auth-cache-ttl", "TUSPROXY_AUTH_CACHE_TTL"}
	nameJWTSecret         = name{"jwt-secret", "TUSPROXY_JWT_SECRET"}
	nameJWTPublicKeyFile  = name{"jwt-public-key-file", "TUSPROXY_JWT_PUBLIC_KEY_FILE"}
	nameJWTJWKSFile       = name{"jwt-jwks-file", "TUSPROXY_JWT_JWKS_FILE"}
	nameJWTJWKSURL        = name{"jwt-jwks-url", "TUSPROXY_JWT_JWKS_URL"}
	nameJWTJWKSRefresh    = name{"jwt-jwks-refresh", "TUSPROXY_JWT_JWKS_REFRESH"}
	nameJWTAudience       = name{"jwt-audience", "TUSPROXY_JWT_AUDIENCE"}
	nameJWTIssuer         = name{"jwt-issuer", "TUSPROXY_JWT_ISSUER"}
	nameJWTLeeway         = name{"jwt-leeway", "TUSPROXY_JWT_LEEWAY"}
	nameCreateRate        = name{"create-rate", "TUSPROXY_CREATE_RATE"}
	nameMaxPatchesPerIP   = name{"max-patches-per-ip", "TUSPROXY_MAX_PATCHES_PER_IP"}
	nameMaxInFlight       = name{"max-inflight", "TUSPROXY_MAX_INFLIGHT"}
	nameEmulatorListen    = name{"emulator-listen", "TUSPROXY_EMULATOR_LISTEN"}
	nameEmulatorToken     = name{"emulator-token", "TUSPROXY_EMULATOR_TOKEN"}
	nameEmulatorDir       = name{"emulator-dir", "TUSPROXY_EMULATOR_DIR"}
	nameEmulatorFaults    = name{"emulator-faults", "TUSPROXY_EMULATOR_FAULTS"}
	nameMetricsListen     = name{"metrics-listen", "TUSPROXY_METRICS_LISTEN"}
	nameMetricsMaxUploads = name{"metrics-max-uploads", "TUSPROXY_METRICS_MAX_UPLOADS"}
	nameMetricsGrace      = name{"metrics-upload-grace", "TUSPROXY_METRICS_UPLOAD_GRACE"}
	nameMetricsIdle       = name{"metrics-upload-idle", "TUSPROXY_METRICS_UPLOAD_IDLE"}
	nameMetricsLinger     = name{"metrics-linger", "TUSPROXY_METRICS_LINGER"}
	namePprof             = name{"pprof", "TUSPROXY_PPROF"}
	nameRedisPrefix       = name{"redis-prefix", "TUSPROXY_REDIS_PREFIX"}
	nameLockLease         = name{"lock-lease", "TUSPROXY_LOCK_LEASE"}
	nameWebhookURL        = name{"webhook-url", "TUSPROXY_WEBHOOK_URL"}
	nameWebhookSecret     = name{"webhook-secret", "TUSPROXY_WEBHOOK_SECRET"}
	nameWebhookEvents     = name{"webhook-events", "TUSPROXY_WEBHOOK_EVENTS"}
	nameWebhookTimeout    = name{"webhook-timeout", "TUSPROXY_WEBHOOK_TIMEOUT"}
	nameWebhookMaxAge     = name{"webhook-max-age", "TUSPROXY_WEBHOOK_MAX_AGE"}
)

// Which commands use a setting.
const (
	forServe = 1 << iota
	forDev
	forEmulator

	forProxy = forServe | forDev
	forAll   = forServe | forDev | forEmulator
)

func (cmd Command) bit() int {
	switch cmd {
	case CommandServe:
		return forServe
	case CommandDev:
		return forDev
	case CommandEmulator:
		return forEmulator
	}
	return 0
}

// setting describes one flag/variable pair: how to parse it into Config, its
// default per command and how to show it.
type setting struct {
	name
	arg  string // placeholder in usage, e.g. "size"
	help string
	used int // forServe | forDev | forEmulator
	// defaults is the raw default text, parsed like user input.
	defaults func(Command) string
	// note, when it returns non-empty, replaces the quoted default in usage.
	note func(Command) string
	// parse sets the field from raw text and returns one message per
	// problem; on any problem the field keeps its previous value.
	parse func(c *Config, raw string) []string
	// show renders the field for String and LogValue.
	show func(c *Config) string
}

// withNote sets the note that replaces the quoted default in usage.
func (s *setting) withNote(note func(Command) string) *setting {
	s.note = note
	return s
}

func (s *setting) defaultText(cmd Command) string {
	if s.note != nil {
		if n := s.note(cmd); n != "" {
			return n
		}
	}
	return strconv.Quote(s.defaults(cmd))
}

func settingsFor(cmd Command) []*setting {
	var out []*setting
	for _, s := range allSettings {
		if s.used&cmd.bit() != 0 {
			out = append(out, s)
		}
	}
	return out
}

func always(v string) func(Command) string { return func(Command) string { return v } }

// perCommand gives the serve default, overridden for dev and emulator when
// the override is not "-".
func perCommand(serve, dev, emulator string) func(Command) string {
	return func(cmd Command) string {
		switch {
		case cmd == CommandDev && dev != "-":
			return dev
		case cmd == CommandEmulator && emulator != "-":
			return emulator
		}
		return serve
	}
}

var allSettings = []*setting{
	{
		name: nameAPIToken, arg: "token", used: forProxy,
		help:     "Kinescope workspace API token, sent as a Bearer credential",
		defaults: always(""),
		note: func(cmd Command) string {
			if cmd == CommandDev {
				return "the emulator token"
			}
			return "none, required"
		},
		parse: func(c *Config, raw string) []string { c.APIToken = raw; return nil },
		show:  func(c *Config) string { return secretState(c.APIToken) },
	},
	{
		name: nameParentID, arg: "id", used: forProxy,
		help:     "Kinescope project or folder id that uploads go to",
		defaults: perCommand("", "dev-project", "-"),
		note: func(cmd Command) string {
			if cmd == CommandServe {
				return "none, required"
			}
			return ""
		},
		parse: func(c *Config, raw string) []string { c.ParentID = raw; return nil },
		show:  func(c *Config) string { return c.ParentID },
	},
	{
		name: nameInitURL, arg: "url", used: forProxy,
		help:     "Kinescope upload init URL (absolute http or https)",
		defaults: perCommand("https://uploader.kinescope.io/v2/init", "", "-"),
		note: func(cmd Command) string {
			if cmd == CommandDev {
				return "the embedded emulator's"
			}
			return ""
		},
		parse: func(c *Config, raw string) []string { c.InitURL = raw; return nil },
		show:  func(c *Config) string { return redactURL(c.InitURL) },
	},
	{
		name: nameListen, arg: "host:port", used: forProxy,
		help:     "address the proxy listens on",
		defaults: perCommand(":8080", "127.0.0.1:8080", "-"),
		parse:    func(c *Config, raw string) []string { c.Listen = raw; return nil },
		show:     func(c *Config) string { return c.Listen },
	},
	pathSetting(nameTLSCertFile, "PEM certificate chain to serve HTTPS with; needs -tls-key-file",
		func(c *Config) *string { return &c.TLSCertFile }),
	pathSetting(nameTLSKeyFile, "PEM private key of -tls-cert-file",
		func(c *Config) *string { return &c.TLSKeyFile }),
	durationSetting(nameReadHeaderTimeout, forProxy, "how long a client may take to send request headers", "10s",
		func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }),
	sizeSetting(nameMaxHeaderBytes, "largest request header block accepted, from 4KiB to 16MiB", "64KiB",
		func(c *Config) *int64 { return &c.MaxHeaderBytes }),
	durationSetting(nameBodyIdleTimeout, forProxy, "a request body read that waits longer than this for bytes is cut", "60s",
		func(c *Config) *time.Duration { return &c.BodyIdleTimeout }),
	sizeSetting(nameMinBodyRate, "slowest upload body accepted, in bytes per second averaged over -min-body-rate-window "+
		"(408 below it, the bytes received kept); 0 = off. The default, 2 kbit/s, is a quarter of the slowest GPRS uplink, "+
		"so a phone on a poor mobile link is never cut", "256",
		func(c *Config) *int64 { return &c.MinBodyRate }),
	durationSetting(nameMinBodyRateWindow, forProxy, "the window -min-body-rate is averaged over; long enough to ride out "+
		"a mobile handover or a tunnel", "60s",
		func(c *Config) *time.Duration { return &c.MinBodyRateWindow }),
	{
		name: nameBasePath, arg: "path", used: forProxy,
		help:     "URL path of the tus endpoint; slashes are added at both ends",
		defaults: always("/files/"),
		parse: func(c *Config, raw string) []string {
			if raw == "" {
				return []string{`is empty (use "/" for the root)`}
			}
			if !strings.HasPrefix(raw, "/") {
				raw = "/" + raw
			}
			if !strings.HasSuffix(raw, "/") {
				raw += "/"
			}
			c.BasePath = raw
			return nil
		},
		show: func(c *Config) string { return c.BasePath },
	},
	{
		name: namePublicURL, arg: "url", used: forProxy,
		help:     "public base URL of the proxy, used to build upload URLs behind a reverse proxy",
		defaults: always(""),
		note:     always("none: taken from each request"),
		parse: func(c *Config, raw string) []string {
			c.PublicURL = strings.TrimRight(raw, "/")
			return nil
		},
		show: func(c *Config) string { return redactURL(c.PublicURL) },
	},
	{
		name: nameTrustedProxies, arg: "list", used: forProxy,
		help:     "comma-separated CIDR prefixes or IPs of reverse proxies whose forwarding headers are trusted",
		defaults: always(""),
		note:     always("none"),
		parse: func(c *Config, raw string) []string {
			var prefixes []netip.Prefix
			var problems []string
			for _, item := range splitList(raw) {
				p, err := parsePrefix(item)
				if err != "" {
					problems = append(problems, fmt.Sprintf("%q %s", item, err))
					continue
				}
				prefixes = append(prefixes, p)
			}
			if len(problems) > 0 {
				return problems
			}
			c.TrustedProxies = prefixes
			return nil
		},
		show: func(c *Config) string {
			items := make([]string, len(c.TrustedProxies))
			for i, p := range c.TrustedProxies {
				items[i] = p.String()
			}
			return strings.Join(items, ",")
		},
	},
	{
		name: nameClientIPHeader, arg: "header", used: forProxy,
		help:     "the one forwarding header believed from trusted proxies: x-forwarded-for, forwarded or x-real-ip",
		defaults: always(ClientIPXForwardedFor),
		parse: func(c *Config, raw string) []string {
			c.ClientIPHeader = strings.ToLower(raw)
			return nil
		},
		show: func(c *Config) string { return c.ClientIPHeader },
	},
	{
		name: nameCORSOrigins, arg: "list", used: forProxy,
		help:     `comma-separated browser origins allowed to upload (scheme://host[:port]), or "*"`,
		defaults: perCommand("", "*", "-"),
		note: func(cmd Command) string {
			if cmd == CommandServe {
				return "none"
			}
			return ""
		},
		parse: func(c *Config, raw string) []string {
			// Browsers send origins in lowercase (RFC 6454 §6.1), and
			// comparing exactly is only right if ours are too.
			c.CORSOrigins = splitList(strings.ToLower(raw))
			return nil
		},
		show: func(c *Config) string { return strings.Join(c.CORSOrigins, ",") },
	},
	{
		name: nameMaxSize, arg: "size", used: forProxy,
		help:     "largest upload accepted: bytes, or with KiB/MiB/GiB/TiB or KB/MB/GB/TB; 0 = no limit",
		defaults: always("0"),
		parse: func(c *Config, raw string) []string {
			n, msg := parseSize(raw)
			if msg != "" {
				return []string{msg}
			}
			c.MaxSize = n
			return nil
		},
		show: func(c *Config) string { return formatSize(c.MaxSize) },
	},
	sizeSetting(nameMaxMetadataBytes, "largest Upload-Metadata header accepted at creation (stored with the upload); larger is refused with 413", "4KiB",
		func(c *Config) *int64 { return &c.MaxMetadataBytes }),
	{
		name: nameUpstreamHosts, arg: "list", used: forProxy,
		help: "comma-separated hosts (subdomains included) that Kinescope upload endpoints may point to, " +
			"each host (the scheme's default port only) or host:port (that port only; IPv6 as [::1]:8443)",
		defaults: perCommand("kinescope.io", "", "-"),
		note: func(cmd Command) string {
			if cmd == CommandDev {
				return "the embedded emulator's host:port"
			}
			return ""
		},
		parse: func(c *Config, raw string) []string {
			c.UpstreamHosts = splitList(strings.ToLower(raw))
			return nil
		},
		show: func(c *Config) string { return strings.Join(c.UpstreamHosts, ",") },
	},
	{
		name: nameUpstreamChunkSize, arg: "size", used: forProxy,
		help:     "largest PATCH body sent to Kinescope: 0 = forward each client PATCH as one, never split; else at least 64KiB",
		defaults: always("0"),
		parse: func(c *Config, raw string) []string {
			n, msg := parseSize(raw)
			if msg != "" {
				return []string{msg}
			}
			c.UpstreamChunkSize = n
			return nil
		},
		show: func(c *Config) string { return formatSize(c.UpstreamChunkSize) },
	},
	durationSetting(nameUpstreamTimeout, forProxy, "timeout for dialing, TLS, response headers, HEAD and DELETE upstream", "30s",
		func(c *Config) *time.Duration { return &c.UpstreamTimeout }),
	durationSetting(nameUpstreamIdle, forProxy, "a body write to Kinescope that makes no progress for this long fails", "60s",
		func(c *Config) *time.Duration { return &c.UpstreamIdleTimeout }),
	pathSetting(nameUpstreamCAFile, "PEM bundle of CAs trusted for Kinescope instead of the system's",
		func(c *Config) *string { return &c.UpstreamCAFile }),
	durationSetting(nameInitTimeout, forProxy, "timeout of one Kinescope init call", "15s",
		func(c *Config) *time.Duration { return &c.InitTimeout }),
	{
		name: nameStore, arg: "store", used: forProxy,
		help:     `where upload state is kept: "memory", "bolt:PATH" or "redis://[:password@]host:port/db" ("rediss://" for TLS)`,
		defaults: perCommand("bolt:./tusproxy.db", "memory", "-"),
		parse:    func(c *Config, raw string) []string { c.Store = raw; return nil },
		show: func(c *Config) string {
			if strings.Contains(c.Store, "://") {
				return redactURL(c.Store)
			}
			return c.Store
		},
	},
	durationSetting(nameUploadTTL, forProxy, "how long an unfinished upload is kept after its last activity; 0 = forever", "24h",
		func(c *Config) *time.Duration { return &c.UploadTTL }),
	durationSetting(nameShutdownTimeout, forProxy, "how long in-flight requests get to finish on shutdown", "30s",
		func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	{
		name: nameLogLevel, arg: "level", used: forAll,
		help:     "minimum log level: debug, info, warn or error",
		defaults: always("info"),
		parse: func(c *Config, raw string) []string {
			level, ok := logLevels[strings.ToLower(raw)]
			if !ok {
				return []string{fmt.Sprintf("%q is not a log level (use debug, info, warn or error)", raw)}
			}
			c.LogLevel = level
			return nil
		},
		show: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
	},
	{
		// dev is run by a person at a terminal; serve and the emulator
		// alone feed log collectors, which want JSON whatever the output.
		name: nameLogFormat, arg: "format", used: forAll,
		help:     "log format: json, text, or auto (colour text when stderr is a terminal, else json)",
		defaults: perCommand(LogFormatJSON, LogFormatAuto, "-"),
		parse:    func(c *Config, raw string) []string { c.LogFormat = strings.ToLower(raw); return nil },
		show:     func(c *Config) string { return c.LogFormat },
	},
	{
		name: nameSeedPath, arg: "path", used: forProxy,
		help:     `path of Kinescope's documented "POST /upload" flow; "off" disables it`,
		defaults: always("/upload"),
		parse: func(c *Config, raw string) []string {
			if strings.EqualFold(raw, "off") {
				raw = ""
			}
			c.SeedPath = raw
			return nil
		},
		show: func(c *Config) string {
			if c.SeedPath == "" {
				return "off"
			}
			return c.SeedPath
		},
	},
	{
		name: nameAuth, arg: "mode", used: forProxy,
		help: `who may upload: "required" (an auth hook or a JWT key must be set), ` +
			`"none" (anonymous uploads, for deployments behind a gateway that authenticates) ` +
			`or "optional" (the hook or JWT when set, else anonymous)`,
		defaults: perCommand(AuthRequired, AuthOptional, "-"),
		parse: func(c *Config, raw string) []string {
			switch mode := strings.ToLower(raw); mode {
			case AuthRequired, AuthNone, AuthOptional:
				c.Auth = mode
				return nil
			}
			return []string{fmt.Sprintf("%q is not an auth mode (use required, none or optional)", raw)}
		},
		show: func(c *Config) string { return c.Auth },
	},
	{
		name: nameAuthHookURL, arg: "url", used: forProxy,
		help:     "URL that is POSTed each request's credentials and decides whether it may create or use an upload (absolute http or https)",
		defaults: always(""),
		note:     always("none: no hook"),
		parse:    func(c *Config, raw string) []string { c.AuthHookURL = raw; return nil },
		show:     func(c *Config) string { return redactURL(c.AuthHookURL) },
	},
	durationSetting(nameAuthHookTimeout, forProxy, "timeout of one auth hook call", "5s",
		func(c *Config) *time.Duration { return &c.AuthHookTimeout }),
	durationSetting(nameAuthCacheTTL, forProxy, "how long the hook's answer about one caller's credentials is reused; 0 = ask every time", "30s",
		func(c *Config) *time.Duration { return &c.AuthCacheTTL }),
	{
		name: nameJWTSecret, arg: "secret", used: forProxy,
		help:     "shared secret that clients' Bearer JWTs are signed with (HS256), at least 32 bytes",
		defaults: always(""),
		note:     always("none"),
		parse:    func(c *Config, raw string) []string { c.JWTSecret = raw; return nil },
		show:     func(c *Config) string { return secretState(c.JWTSecret) },
	},
	pathSetting(nameJWTPublicKeyFile, "PEM RSA or EC public key that verifies clients' Bearer JWTs (RS256, ES256)",
		func(c *Config) *string { return &c.JWTPublicKeyFile }),
	pathSetting(nameJWTJWKSFile, "JWKS file of the public keys that verify clients' Bearer JWTs (RS256, ES256), chosen by kid",
		func(c *Config) *string { return &c.JWTJWKSFile }),
	{
		name: nameJWTJWKSURL, arg: "url", used: forProxy,
		help: "URL of an identity provider's JWKS that verifies clients' Bearer JWTs (RS256, ES256), chosen by kid: " +
			"https, or http to loopback only; fetched at start, every -jwt-jwks-refresh and for an unknown kid (at most once per 5m)",
		defaults: always(""),
		note:     always("none"),
		parse:    func(c *Config, raw string) []string { c.JWTJWKSURL = raw; return nil },
		show:     func(c *Config) string { return redactURL(c.JWTJWKSURL) },
	},
	durationSetting(nameJWTJWKSRefresh, forProxy, "how often -jwt-jwks-url is fetched again, so keys the provider removed stop working; at least 1s", "1h",
		func(c *Config) *time.Duration { return &c.JWTJWKSRefresh }),
	textSetting(nameJWTAudience, "audience", "audience (aud) a JWT must name", "none: not checked",
		func(c *Config) *string { return &c.JWTAudience }),
	textSetting(nameJWTIssuer, "issuer", "issuer (iss) a JWT must name", "none: not checked",
		func(c *Config) *string { return &c.JWTIssuer }),
	durationSetting(nameJWTLeeway, forProxy, "clock skew allowed when checking a JWT's exp and nbf, at most 5m", "30s",
		func(c *Config) *time.Duration { return &c.JWTLeeway }),
	countSetting(nameCreateRate, "uploads one client IP may create per minute; 0 = unlimited", "0",
		func(c *Config) *int { return &c.CreateRate }).withNote(func(cmd Command) string {
		if cmd == CommandServe {
			return fmt.Sprintf(`"%d" with anonymous uploads, else "0"`, AnonymousCreateRate)
		}
		return ""
	}),
	countSetting(nameMaxPatchesPerIP, "PATCH requests one client IP may have in flight at once (429 above); 0 = unlimited. "+
		"The default, 64, lets an office of dozens of people behind one NAT address upload at once, while one address "+
		"holds well under 1% of the default -max-inflight", "64",

		func(c *Config) *int { return &c.MaxPatchesPerIP }),
	countSetting(nameMaxInFlight, "uploads with a PATCH in flight at once in the whole process (503 above); 0 = unlimited. "+
		"The default, 10000, is what 0.6-0.8 GiB of memory and 20000 open files hold: a slow upload in flight costs about "+
		"60 KiB (80 KiB with a TLS upstream) and two connections", "10000",
		func(c *Config) *int { return &c.MaxInFlight }),
	{
		name: nameEmulatorListen, arg: "host:port", used: forDev | forEmulator,
		help:     "address the Kinescope emulator listens on",
		defaults: perCommand("", "127.0.0.1:0", "127.0.0.1:9000"),
		parse:    func(c *Config, raw string) []string { c.EmulatorListen = raw; return nil },
		show:     func(c *Config) string { return c.EmulatorListen },
	},
	{
		name: nameEmulatorToken, arg: "token", used: forDev | forEmulator,
		help:     "API token the Kinescope emulator accepts",
		defaults: always(""),
		note: func(cmd Command) string {
			if cmd == CommandDev {
				return "random"
			}
			return "none, required"
		},
		parse: func(c *Config, raw string) []string { c.EmulatorToken = raw; return nil },
		show:  func(c *Config) string { return secretState(c.EmulatorToken) },
	},
	{
		name: nameEmulatorDir, arg: "dir", used: forDev | forEmulator,
		help:     "directory where the emulator keeps uploaded bytes",
		defaults: always(""),
		note:     always("a temporary directory"),
		parse:    func(c *Config, raw string) []string { c.EmulatorDir = raw; return nil },
		show:     func(c *Config) string { return c.EmulatorDir },
	},
	{
		name: nameEmulatorFaults, arg: "spec", used: forDev | forEmulator,
		help: "faults the emulator injects, e.g. cut-patch-every=3,cut-patch-after=256KiB,fail-every=5,latency=20ms " +
			"(also switchable at run time: PUT /v2/emulator/faults)",
		defaults: always("none"),
		parse: func(c *Config, raw string) []string {
			f, err := faultspec.Parse(raw)
			if err != nil {
				return []string{err.Error()}
			}
			c.EmulatorFaults = f
			return nil
		},
		show: func(c *Config) string { return c.EmulatorFaults.String() },
	},
	{
		// Loopback by default: the admin listener has no auth, and its
		// per-upload series name upload ids, which are capabilities. A
		// container sets the address it needs (the Dockerfile: ":9090").
		name: nameMetricsListen, arg: "host:port", used: forProxy,
		help:     `admin listener for /metrics, /healthz, /readyz (and /debug/pprof with -pprof); "off" disables it`,
		defaults: always("127.0.0.1:9090"),
		parse: func(c *Config, raw string) []string {
			if strings.EqualFold(raw, "off") {
				raw = ""
			}
			c.MetricsListen = raw
			return nil
		},
		show: func(c *Config) string {
			if c.MetricsListen == "" {
				return "off"
			}
			return c.MetricsListen
		},
	},
	countSetting(nameMetricsMaxUploads, "uploads that get per-upload metric series at once; 0 = none", "1000",
		func(c *Config) *int { return &c.MetricsMaxUploads }),
	durationSetting(nameMetricsGrace, forProxy, "how long an upload's series stay after it completes, is terminated or expires", "1m",
		func(c *Config) *time.Duration { return &c.MetricsUploadGrace }),
	durationSetting(nameMetricsIdle, forProxy, "an upload with no PATCH for this long loses its per-upload series", "10m",
		func(c *Config) *time.Duration { return &c.MetricsUploadIdle }),
	durationSetting(nameMetricsLinger, forProxy, "how long the admin listener keeps serving after a shutdown's drain, so Prometheus scrapes its last counters; 0 = close at once", "5s",
		func(c *Config) *time.Duration { return &c.MetricsLinger }),
	{
		name: namePprof, arg: "bool", used: forProxy,
		help:     "serve Go's /debug/pprof profiles on the admin listener",
		defaults: always("false"),
		parse: func(c *Config, raw string) []string {
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return []string{fmt.Sprintf("%q is not true or false", raw)}
			}
			c.Pprof = b
			return nil
		},
		show: func(c *Config) string { return strconv.FormatBool(c.Pprof) },
	},
	{
		name: nameRedisPrefix, arg: "prefix", used: forProxy,
		help:     "prefix of every Redis key and channel, so several deployments can share one Redis",
		defaults: always("tusproxy:"),
		parse:    func(c *Config, raw string) []string { c.RedisPrefix = raw; return nil },
		show:     func(c *Config) string { return c.RedisPrefix },
	},
	durationSetting(nameLockLease, forProxy, "with a Redis store: how long an upload's lock outlives a replica that died holding it", "10s",
		func(c *Config) *time.Duration { return &c.LockLease }),
	{
		name: nameWebhookURL, arg: "url", used: forProxy,
		help:     "receiver of the signed lifecycle webhooks (Standard Webhooks), absolute http or https; empty = off",
		defaults: always(""),
		note:     always("none: webhooks off"),
		parse:    func(c *Config, raw string) []string { c.WebhookURL = raw; return nil },
		show:     func(c *Config) string { return redactURL(c.WebhookURL) },
	},
	{
		name: nameWebhookSecret, arg: "secrets", used: forProxy,
		help: "secret that signs webhooks: whsec_ and the base64 of at least 24 random bytes; " +
			"several separated by spaces sign with each (to rotate). Required with -webhook-url",
		defaults: always(""),
		note:     always("none"),
		parse:    func(c *Config, raw string) []string { c.WebhookSecret = raw; return nil },
		show:     func(c *Config) string { return secretState(c.WebhookSecret) },
	},
	{
		name: nameWebhookEvents, arg: "list", used: forProxy,
		help:     "comma-separated webhook events to deliver: " + strings.Join(webhook.Types, ", "),
		defaults: always(strings.Join(webhook.Types, ",")),
		note:     always("all of them"),
		parse: func(c *Config, raw string) []string {
			c.WebhookEvents = splitList(strings.ToLower(raw))
			return nil
		},
		show: func(c *Config) string { return strings.Join(c.WebhookEvents, ",") },
	},
	durationSetting(nameWebhookTimeout, forProxy, "timeout of one webhook delivery (a POST and its answer)", "10s",
		func(c *Config) *time.Duration { return &c.WebhookTimeout }),
	durationSetting(nameWebhookMaxAge, forProxy, "how long a webhook event is retried before it is given up (logged and counted)", "72h",
		func(c *Config) *time.Duration { return &c.WebhookMaxAge }),
}

func durationSetting(n name, used int, help, def string, field func(*Config) *time.Duration) *setting {
	return &setting{
		name: n, arg: "duration", used: used, help: help,
		defaults: always(def),
		parse: func(c *Config, raw string) []string {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return []string{fmt.Sprintf("%q is not a duration (like 90s, 15m or 24h)", raw)}
			}
			*field(c) = d
			return nil
		},
		show: func(c *Config) string { return field(c).String() },
	}
}

// sizeSetting is a proxy setting in bytes, written with parseSize's units.
func sizeSetting(n name, help, def string, field func(*Config) *int64) *setting {
	return &setting{
		name: n, arg: "size", used: forProxy, help: help,
		defaults: always(def),
		parse: func(c *Config, raw string) []string {
			size, msg := parseSize(raw)
			if msg != "" {
				return []string{msg}
			}
			*field(c) = size
			return nil
		},
		show: func(c *Config) string { return formatSize(*field(c)) },
	}
}

// countSetting is a proxy setting holding a whole number. Negative numbers
// parse so that Validate can say why they are wrong.
func countSetting(n name, help, def string, field func(*Config) *int) *setting {
	return &setting{
		name: n, arg: "n", used: forProxy, help: help,
		defaults: always(def),
		parse: func(c *Config, raw string) []string {
			count, err := strconv.Atoi(raw)
			if errors.Is(err, strconv.ErrRange) {
				return []string{fmt.Sprintf("%q is too large", raw)}
			}
			if err != nil {
				return []string{fmt.Sprintf("%q is not a whole number", raw)}
			}
			*field(c) = count
			return nil
		},
		show: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

// pathSetting is a proxy setting naming a file, empty by default. Only the
// proxy opens it: Validate stays free of side effects.
func pathSetting(n name, help string, field func(*Config) *string) *setting {
	return textSetting(n, "path", help, "none", field)
}

// textSetting is a proxy setting kept as given, empty by default; note says
// in usage what empty means.
func textSetting(n name, arg, help, note string, field func(*Config) *string) *setting {
	return &setting{
		name: n, arg: arg, used: forProxy, help: help,
		defaults: always(""),
		note:     always(note),
		parse:    func(c *Config, raw string) []string { *field(c) = raw; return nil },
		show:     func(c *Config) string { return *field(c) },
	}
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func secretState(s string) string {
	if s == "" {
		return "(unset)"
	}
	return "(set)"
}

// redactURL hides what may be secret in a URL: credentials and the query.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = "redacted"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// splitList splits a comma-separated list, trimming items and dropping empty
// ones so that "a, b," is ["a" "b"].
func splitList(raw string) []string {
	var items []string
	for item := range strings.SplitSeq(raw, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// parsePrefix reads a CIDR prefix or a bare IP (a one-address prefix).
// Host bits are cleared: "10.1.2.3/8" means 10.0.0.0/8.
func parsePrefix(s string) (netip.Prefix, string) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, "has an IPv6 zone, which cannot match a peer address"
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, "is not a CIDR prefix"
		}
		return unmapPrefix(p.Masked()), ""
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, "is not an IP address or CIDR prefix"
	}
	return unmapPrefix(netip.PrefixFrom(addr, addr.BitLen())), ""
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 prefix it means (10.0.0.0/8): peers are compared unmapped, so the
// mapped form would never match, and ::ffff:0:0/96 must be seen for what it
// is, every IPv4 address.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// Size units: binary ones as their names say, decimal ones as powers of 1000.
var sizeUnits = []struct {
	suffix string
	bytes  int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// parseSize reads a whole number of bytes with an optional unit, case
// insensitive, spaces allowed between: "1048576", "8MiB", "5 GB".
func parseSize(s string) (int64, string) {
	notASize := fmt.Sprintf("%q is not a size (use bytes, or a whole number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s)
	// The leading run of digits is the number, the rest the unit.
	digitsEnd := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if digitsEnd < 0 {
		digitsEnd = len(s)
	}
	number, unit := s[:digitsEnd], strings.TrimSpace(s[digitsEnd:])
	if number == "" {
		return 0, notASize
	}
	multiplier := int64(0)
	if unit == "" {
		multiplier = 1
	}
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.suffix) {
			multiplier = u.bytes
		}
	}
	if multiplier == 0 {
		return 0, notASize
	}
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil || n > (1<<63-1)/multiplier {
		return 0, fmt.Sprintf("%q is too large", s)
	}
	return n * multiplier, ""
}

// formatSize writes n in the largest unit that divides it exactly, in a form
// parseSize reads back.
func formatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range sizeUnits {
		if u.bytes > 1 && n%u.bytes == 0 {
			return strconv.FormatInt(n/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
