package config

import (
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

// The names of every setting, in the order usage and String list them.
var (
	nameAPIToken          = name{"kinescope-api-token", "KINESCOPE_API_TOKEN"}
	nameParentID          = name{"kinescope-parent-id", "KINESCOPE_PARENT_ID"}
	nameInitURL           = name{"kinescope-init-url", "KINESCOPE_INIT_URL"}
	nameListen            = name{"listen", "TUSPROXY_LISTEN"}
	nameBasePath          = name{"base-path", "TUSPROXY_BASE_PATH"}
	namePublicURL         = name{"public-url", "TUSPROXY_PUBLIC_URL"}
	nameTrustedProxies    = name{"trusted-proxies", "TUSPROXY_TRUSTED_PROXIES"}
	nameCORSOrigins       = name{"cors-origins", "TUSPROXY_CORS_ORIGINS"}
	nameMaxSize           = name{"max-size", "TUSPROXY_MAX_SIZE"}
	nameUpstreamHosts     = name{"upstream-hosts", "TUSPROXY_UPSTREAM_HOSTS"}
	nameUpstreamChunkSize = name{"upstream-chunk-size", "TUSPROXY_UPSTREAM_CHUNK_SIZE"}
	nameUpstreamTimeout   = name{"upstream-timeout", "TUSPROXY_UPSTREAM_TIMEOUT"}
	nameInitTimeout       = name{"init-timeout", "TUSPROXY_INIT_TIMEOUT"}
	nameStore             = name{"store", "TUSPROXY_STORE"}
	nameUploadTTL         = name{"upload-ttl", "TUSPROXY_UPLOAD_TTL"}
	nameShutdownTimeout   = name{"shutdown-timeout", "TUSPROXY_SHUTDOWN_TIMEOUT"}
	nameLogLevel          = name{"log-level", "TUSPROXY_LOG_LEVEL"}
	nameLogFormat         = name{"log-format", "TUSPROXY_LOG_FORMAT"}
	nameSeedPath          = name{"seed-path", "TUSPROXY_SEED_PATH"}
	nameEmulatorListen    = name{"emulator-listen", "TUSPROXY_EMULATOR_LISTEN"}
	nameEmulatorToken     = name{"emulator-token", "TUSPROXY_EMULATOR_TOKEN"}
	nameEmulatorDir       = name{"emulator-dir", "TUSPROXY_EMULATOR_DIR"}
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
	{
		name: nameUpstreamHosts, arg: "list", used: forProxy,
		help:     "comma-separated hosts that Kinescope upload endpoints may point to (subdomains included)",
		defaults: perCommand("kinescope.io", "127.0.0.1", "-"),
		parse: func(c *Config, raw string) []string {
			c.UpstreamHosts = splitList(strings.ToLower(raw))
			return nil
		},
		show: func(c *Config) string { return strings.Join(c.UpstreamHosts, ",") },
	},
	{
		name: nameUpstreamChunkSize, arg: "size", used: forProxy,
		help:     "largest PATCH body sent to Kinescope, at least 64KiB",
		defaults: always("8MiB"),
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
	durationSetting(nameInitTimeout, forProxy, "timeout of one Kinescope init call", "15s",
		func(c *Config) *time.Duration { return &c.InitTimeout }),
	{
		name: nameStore, arg: "store", used: forProxy,
		help:     `where upload state is kept: "memory" or "bolt:PATH"`,
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
		name: nameLogFormat, arg: "format", used: forAll,
		help:     "log format: json or text",
		defaults: always("json"),
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
		return p.Masked(), ""
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, "is not an IP address or CIDR prefix"
	}
	return netip.PrefixFrom(addr, addr.BitLen()), ""
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
