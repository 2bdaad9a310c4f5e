// Package config holds every setting of tusproxy, loads it from command-line
// flags and environment variables, and checks it before anything starts.
//
// Every setting is both a flag and an environment variable; a flag given on
// the command line wins over the variable, which wins over the default. The
// variable names are part of the product and never change.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"strconv"
	"strings"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/faultspec"
)

// Command names the mode the program runs in; defaults and required settings
// depend on it.
type Command string

// The commands of the tusproxy binary.
const (
	// CommandServe runs the proxy against the real Kinescope.
	CommandServe Command = "serve"
	// CommandDev runs the proxy together with a local Kinescope emulator,
	// with defaults fit for a laptop: loopback, in-memory store, open CORS.
	CommandDev Command = "dev"
	// CommandEmulator runs only the Kinescope emulator.
	CommandEmulator Command = "emulator"
)

// Config is the whole configuration of one run. Load fills it; the defaults
// below are those of the serve command unless another command is named.
type Config struct {
	// Command is the command this configuration was loaded for. It decides the
	// defaults and which settings Validate requires and checks.
	Command Command

	// APIToken is the Kinescope workspace API token used for POST /v2/init.
	// Required for serve. In dev it defaults to EmulatorToken. It never
	// appears in errors, usage text or String.
	APIToken string
	// ParentID is the Kinescope project or folder uploads go to. Required
	// for serve; dev: "dev-project".
	ParentID string
	// InitURL is Kinescope's upload init URL, an absolute http(s) URL.
	// Default https://uploader.kinescope.io/v2/init. In dev the default is ""
	// and means the embedded emulator's own init URL.
	InitURL string

	// Listen is the proxy's listen address. Default ":8080"; dev:
	// "127.0.0.1:8080".
	Listen string
	// TLSCertFile and TLSKeyFile are the PEM certificate chain and private
	// key to serve HTTPS with; both or neither. The proxy loads them; Validate
	// does not read them. Default "": plain HTTP (TLS ends at a reverse proxy).
	TLSCertFile string
	// TLSKeyFile is the private key of TLSCertFile. Default "".
	TLSKeyFile string
	// ReadHeaderTimeout is how long a client may take to send its request
	// headers, against slowloris-style connection hoarding. Must be > 0.
	// Default 10s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes is the largest request header block accepted, in bytes;
	// from 4 KiB to 16 MiB. Default 64 KiB: tus headers are short, and Go's
	// own default of 1 MiB only lets a client hold more memory.
	MaxHeaderBytes int64
	// BodyIdleTimeout cuts a request body (a PATCH, or a creation with data)
	// whose next bytes take longer than this to arrive; whole uploads may
	// take hours, so only silence is bounded. Must be > 0. Default 60s.
	BodyIdleTimeout time.Duration
	// MinBodyRate is the slowest an upload body (a PATCH, or a creation with
	// data) may arrive, in bytes per second averaged over MinBodyRateWindow:
	// slower, it is cut with 408 once the bytes that did arrive are recorded,
	// so the client resumes from HEAD. Without it one client dribbling a byte
	// a second holds a MaxInFlight slot for as long as it likes. 0 disables
	// it. Must be >= 0. Default 256 (2 kbit/s): a quarter of the slowest GPRS
	// uplink (one timeslot, ~9 kbit/s), so a phone on a poor mobile link that
	// is stalled for most of a minute still passes.
	MinBodyRate int64
	// MinBodyRateWindow is the window MinBodyRate is averaged over, measured
	// from a body's first read. Must be at least 1s when MinBodyRate is on.
	// Default 60s: a handover or a tunnel does not cut a phone.
	MinBodyRateWindow time.Duration
	// BasePath is the URL path the tus handler is mounted at; it always
	// starts and ends with "/" (Load adds missing slashes). Default "/files/".
	BasePath string
	// PublicURL is the proxy's public base URL (scheme and host, optionally
	// a path prefix) used to build upload URLs behind a reverse proxy; no
	// query or fragment, no trailing "/". Default "": derived from requests.
	PublicURL string
	// TrustedProxies are the peers whose forwarding header (ClientIPHeader)
	// is believed; bare IPs become /32 or /128 prefixes, IPv4-mapped IPv6
	// prefixes become IPv4 ones. Prefixes that together cover every IPv4 or
	// every IPv6 address (0.0.0.0/0, ::/0) are refused: every client could
	// then write its own address. Default none.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is the one forwarding header believed from a trusted
	// proxy: ClientIPXForwardedFor (X-Forwarded-For, with
	// X-Forwarded-Proto/Host for Location), ClientIPForwarded (RFC 7239
	// Forwarded, its for=, proto= and host=) or ClientIPXRealIP (X-Real-IP,
	// with X-Forwarded-Proto/Host). The others are ignored. Default
	// "x-forwarded-for", what nginx's $proxy_add_x_forwarded_for writes.
	ClientIPHeader string
	// CORSOrigins are the browser origins allowed to upload, each exactly
	// "scheme://host[:port]" in lowercase, or the single entry "*". Default
	// none (no CORS headers); dev: ["*"].
	CORSOrigins []string
	// MaxSize is the largest upload accepted, in bytes; 0 means no limit.
	// Default 0.
	MaxSize int64
	// MaxMetadataBytes caps the Upload-Metadata header of a creation, in
	// bytes; a larger one is refused (413) before Kinescope is called. Must
	// be > 0 and at most MaxHeaderBytes. Default 4 KiB: metadata is stored
	// with every upload for as long as it lives (TUSPROXY_UPLOAD_TTL), so
	// the cap bounds what an unfinished creation costs the store, while the
	// keys tus clients send (filename, filetype, name, type, a title and a
	// description) fit many times over: a 255-byte file name is 340 bytes
	// of base64, and Kinescope's titles stop at 140 characters.
	MaxMetadataBytes int64

	// UpstreamHosts are the hosts (and their subdomains) that Kinescope's
	// upload endpoints may point to; lowercase. Each entry is "host", which
	// allows only the scheme's default port (443 for https, 80 for http), or
	// "host:port" ("[::1]:8443" for IPv6), which allows exactly that port.
	// Default ["kinescope.io"]; dev: empty, and the dev command adds its
	// embedded emulator's host:port.
	UpstreamHosts []string
	// UpstreamChunkSize is the largest PATCH body sent upstream, in bytes: 0
	// (the default) forwards each client PATCH as one upstream PATCH;
	// otherwise at least 64 KiB.
	UpstreamChunkSize int64
	// UpstreamTimeout bounds dialing, the TLS handshake and waiting for
	// response headers from the upload endpoint, and whole HEAD and DELETE
	// calls. Must be > 0. Default 30s.
	UpstreamTimeout time.Duration
	// UpstreamIdleTimeout fails a write of a body to Kinescope that makes
	// no progress for this long, so a stalled upstream does not pin a PATCH
	// forever. Must be > 0. Default 60s.
	UpstreamIdleTimeout time.Duration
	// UpstreamCAFile is a PEM bundle of the CAs trusted for Kinescope (the
	// init URL and upload endpoints) instead of the system pool. The proxy
	// loads it; Validate does not read it. Default "": the system pool.
	UpstreamCAFile string
	// InitTimeout bounds one POST /v2/init call. Must be > 0. Default 15s.
	InitTimeout time.Duration

	// Store says where upload state lives: "memory", "bolt:PATH" or a
	// redis:// (rediss://) URL, as package storespec reads it. Default
	// "bolt:./tusproxy.db"; dev: "memory".
	Store string
	// UploadTTL is how long an unfinished upload is kept after its last
	// activity; 0 means uploads never expire. Default 24h.
	UploadTTL time.Duration
	// ShutdownTimeout is how long in-flight requests get to finish on
	// shutdown. Must be > 0. Default 30s.
	ShutdownTimeout time.Duration

	// LogLevel is the minimum level logged: debug, info, warn or error.
	// Default info.
	LogLevel slog.Level
	// LogFormat is LogFormatJSON, LogFormatText or LogFormatAuto. Default
	// json; dev: auto.
	LogFormat string

	// SeedPath is the path of the endpoint that answers Kinescope's
	// documented "POST /upload" flow with a Kinescope endpoint; "" disables
	// it (set "off"). It must not overlap BasePath. Default "/upload".
	SeedPath string

	// Auth says whether serving without authentication is allowed:
	// AuthRequired (an auth hook or a JWT key must be configured), AuthNone
	// (anonymous uploads; no hook or JWT key may be set) or AuthOptional
	// (whatever is configured, anonymous when nothing is). Default
	// "required": a public tusproxy with no auth spends its operator's
	// Kinescope quota for anyone; dev: "optional".
	Auth string

	// AuthHookURL is the operator's auth hook, an absolute http(s) URL that
	// the proxy POSTs each request's credentials to and that decides whether
	// the request may create or use an upload. Its user info and query are
	// redacted in String. Default "": no hook.
	AuthHookURL string
	// AuthHookTimeout bounds one auth hook call. Must be > 0. Default 5s.
	AuthHookTimeout time.Duration
	// AuthCacheTTL is how long the hook's answer about one caller's
	// credentials is reused; 0 means the hook is asked every time. Must be
	// >= 0. Default 30s.
	AuthCacheTTL time.Duration

	// JWTSecret is the shared secret that clients' Bearer JWTs are signed
	// with (HS256); at least 32 bytes when set. It never appears in errors,
	// usage text or String. At most one of JWTSecret, JWTPublicKeyFile,
	// JWTJWKSFile and JWTJWKSURL is set. Default "".
	JWTSecret string
	// JWTPublicKeyFile is a PEM RSA or EC public key file that clients' JWTs
	// are verified with (RS256, ES256). The proxy parses it; Validate does
	// not read it. Default "".
	JWTPublicKeyFile string
	// JWTJWKSFile is a JWKS file of public keys that clients' JWTs are
	// verified with, chosen by kid. The proxy parses it; Validate does not
	// read it. Default "".
	JWTJWKSFile string
	// JWTJWKSURL is where an identity provider publishes the JWKS that
	// clients' JWTs are verified with: https, or http to a loopback host
	// only (over plain http anyone on the path could swap in their own
	// keys). The proxy fetches it at start (and does not start if that
	// fails), every JWTJWKSRefresh, and when a token names an unknown kid
	// (at most once per 5 minutes); a failed refresh keeps the last keys.
	// Its user info and query are redacted in String. Default "".
	JWTJWKSURL string
	// JWTJWKSRefresh is how often JWTJWKSURL is fetched again, so keys a
	// provider removed stop verifying tokens. At least 1s. Default 1h.
	JWTJWKSRefresh time.Duration
	// JWTAudience, when set, is the audience (aud) a JWT must name. It
	// needs one of the four JWT key settings. Default "": not checked.
	JWTAudience string
	// JWTIssuer, when set, is the issuer (iss) a JWT must name. It needs one
	// of the four JWT key settings. Default "": not checked.
	JWTIssuer string
	// JWTLeeway is the clock skew allowed when checking a JWT's exp and nbf;
	// from 0 to 5m, as more would keep expired tokens alive. Only used when
	// JWTEnabled. Default 30s.
	JWTLeeway time.Duration

	// CreateRate is how many uploads one client IP may create per minute;
	// 0 means unlimited. Must be >= 0. Default: AnonymousCreateRate when
	// serve runs without auth hook and JWT (anonymous uploads), else 0; an
	// explicit value, 0 included, always wins. dev: 0.
	CreateRate int
	// MaxPatchesPerIP is how many PATCH requests one client IP may have in
	// flight at once; 0 means unlimited. Must be >= 0. Default 64: an office
	// behind one NAT address, dozens of people each uploading a file or two
	// (tus-js-client sends one PATCH per upload at a time), fits under it,
	// while one address holds well under 1% of the default MaxInFlight and
	// cannot starve everyone else.
	MaxPatchesPerIP int
	// MaxInFlight is how many uploads may have a PATCH in flight at once in
	// the whole process, which bounds the memory, the connections and the
	// file descriptors held; 0 means unlimited. Must be >= 0. Default 10000:
	// most uploads are slow (browsers on a few Mbit/s or less), so a server
	// holds many at once, and a slow PATCH in flight costs about 60 KiB of
	// resident memory, 80 KiB with a TLS upstream (one goroutine's stack,
	// net/http's connection buffers, the request's state, the upstream's TLS
	// state; issue 15) and two file descriptors (the client's connection
	// and Kinescope's). 10000 is thus 0.6-0.8 GiB and 20000 descriptors: the
	// process raises its soft RLIMIT_NOFILE to the hard one at start (Go does
	// on Linux), so the hard limit must allow that (README, "Running it for
	// real"). A PATCH whose client sends fast takes a 256 KiB buffer more
	// while it does.
	MaxInFlight int

	// EmulatorListen is the emulator's listen address. emulator:
	// "127.0.0.1:9000"; dev: "127.0.0.1:0" (any free port). Unused by serve.
	EmulatorListen string
	// EmulatorToken is the API token the emulator accepts. Required for
	// emulator; dev: 32 random hex characters. Never shown. Unused by serve.
	EmulatorToken string
	// EmulatorDir is where the emulator keeps uploaded bytes. Default "": a
	// temporary directory. Unused by serve.
	EmulatorDir string
	// EmulatorFaults are the faults the emulator starts with. Default: none.
	EmulatorFaults faultspec.Faults

	// MetricsListen is the admin listener's address (/metrics, /healthz,
	// /readyz, /debug/pprof); "" (set "off", or an empty flag) disables it. Default
	// "127.0.0.1:9090" (loopback: it has no auth, and its per-upload series
	// name upload ids, which are enough to DELETE an upload when uploads need
	// no credentials); a container or pod sets ":9090" so probes and
	// Prometheus reach it. It is separate from Listen so uploaders never see
	// metrics.
	MetricsListen string
	// MetricsLinger is how long the admin listener keeps serving after a
	// shutdown's drain ended and the public listener closed, so the last
	// seconds of the drain (its final 503s and accepted bytes) reach
	// Prometheus. Default 5s: two scrapes at the common 1-2.5 s intervals;
	// set it above your scrape interval. 0 closes it at once.
	MetricsLinger time.Duration
	// MetricsMaxUploads caps how many uploads have per-upload series at
	// once; the rest count only in the overall metrics. Default 1000.
	MetricsMaxUploads int
	// MetricsUploadGrace is how long an upload's series stay after it
	// completes, is terminated or expires. Default 1m.
	MetricsUploadGrace time.Duration
	// MetricsUploadIdle is how long an upload may go without a PATCH before
	// its series are removed. Default 10m.
	MetricsUploadIdle time.Duration
	// Pprof serves /debug/pprof on the admin listener. Default false.
	Pprof bool

	// RedisPrefix prefixes every Redis key and channel. Default "tusproxy:".
	RedisPrefix string
	// LockLease is how long a Redis upload lock outlives a replica that
	// died holding it; holders renew it while they work. Default 10s.
	LockLease time.Duration

	// WebhookURL is the receiver of the lifecycle webhooks, signed as the
	// Standard Webhooks specification says: an absolute http(s) URL. Its
	// user info and query are redacted in String. Default "": webhooks off.
	WebhookURL string
	// WebhookSecret is the secret webhooks are signed with: "whsec_" and the
	// standard base64 of at least 24 bytes; several separated by spaces
	// sign each delivery with every one, so a receiver can rotate. Required
	// when WebhookURL is set. It never appears in errors, usage text or
	// String. Default "".
	WebhookSecret string
	// WebhookEvents are the event types delivered, a subset of
	// upload.created, upload.completed, upload.terminated, upload.expired
	// and upload.failed, lowercase. Default all five.
	WebhookEvents []string
	// WebhookTimeout bounds one delivery, from dialling the receiver to the
	// end of its answer. Must be > 0. Default 10s.
	WebhookTimeout time.Duration
	// WebhookMaxAge is how long an event is retried: once its next attempt
	// would come later than this after the event, it is given up, logged
	// with its id and counted. Must be > 0. Default 72h: a receiver down
	// over a long weekend still gets everything.
	WebhookMaxAge time.Duration
}

// WebhooksEnabled reports whether lifecycle webhooks are delivered.
func (c *Config) WebhooksEnabled() bool { return c.WebhookURL != "" }

// The values of ClientIPHeader.
const (
	ClientIPXForwardedFor = "x-forwarded-for"
	ClientIPForwarded     = "forwarded"
	ClientIPXRealIP       = "x-real-ip"
)

// The values of LogFormat.
const (
	LogFormatJSON = "json" // one JSON object a line, for log collectors
	LogFormatText = "text" // slog's key=value lines, uncoloured
	// LogFormatAuto is readable text with coloured levels when stderr is a
	// terminal (uncoloured when NO_COLOR is set, https://no-color.org),
	// else JSON: a person at a terminal reads the log, anything else
	// parses it.
	LogFormatAuto = "auto"
)

// JWTEnabled reports whether clients must present a Bearer JWT: a secret, a
// public key file, a JWKS file or a JWKS URL is set.
func (c *Config) JWTEnabled() bool {
	return c.JWTSecret != "" || c.JWTPublicKeyFile != "" || c.JWTJWKSFile != "" || c.JWTJWKSURL != ""
}

// AuthEnabled reports whether clients are authenticated at all, by the auth
// hook, by JWT, or both.
func (c *Config) AuthEnabled() bool {
	return c.AuthHookURL != "" || c.JWTEnabled()
}

// The values of Config.Auth.
const (
	AuthRequired = "required"
	AuthNone     = "none"
	AuthOptional = "optional"
)

// AnonymousCreateRate is CreateRate's default when serve runs with anonymous
// uploads: creations per minute per client address. A person uploading
// from a browser picks a few files at a time; a bucket of 10, refilled at
// one every 6 s, lets that through, while one address can no longer create
// hundreds of Kinescope videos a minute (300 took a third of a second with
// no limit). Many users behind one address (an office NAT, or a gateway
// whose address is not in TrustedProxies) need a higher value.
const AnonymousCreateRate = 10

// AuthMode names how clients are authenticated, for the start-up log line:
// "anonymous", "auth hook", "JWT" or "JWT + hook".
func (c *Config) AuthMode() string {
	switch {
	case c.JWTEnabled() && c.AuthHookURL != "":
		return "JWT + hook"
	case c.JWTEnabled():
		return "JWT"
	case c.AuthHookURL != "":
		return "auth hook"
	}
	return "anonymous"
}

// SettingError is one problem with one setting. Load and Validate join them
// with errors.Join, so every problem is reported at once.
type SettingError struct {
	// Flag is the flag's name without the dash, e.g. "max-size".
	Flag string
	// Env is the environment variable, e.g. "TUSPROXY_MAX_SIZE".
	Env string
	// Problem says what is wrong; it never quotes a secret.
	Problem string
}

// Error reads like `-max-size (TUSPROXY_MAX_SIZE): "12XB" is not a size`.
func (e *SettingError) Error() string {
	return "-" + e.Flag + " (" + e.Env + "): " + e.Problem
}

// Load builds the configuration for cmd from args (without the program and
// command names), the environment read through getenv, and the defaults of
// cmd. Flag errors and -h output go to usage; -h returns flag.ErrHelp. Every
// bad value and every Validate problem is returned together, one error per
// problem.
//
// In dev, an empty EmulatorToken is generated (crypto/rand) and an empty
// APIToken takes its value, so that the proxy and its emulator agree.
func Load(cmd Command, args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	if !cmd.known() {
		return nil, fmt.Errorf("unknown command %q (use serve, dev or emulator)", string(cmd))
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if usage == nil {
		usage = io.Discard
	}

	used := settingsFor(cmd)
	given, problems, err := parseFlags(cmd, used, args, usage)
	if err != nil {
		return nil, err
	}
	c, createRateGiven, settingProblems := readSettings(cmd, used, given, getenv)
	problems = append(problems, settingProblems...)
	c.deriveDefaults(createRateGiven)

	problems = append(problems, c.problems()...)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return c, nil
}

// parseFlags reads args into the raw text of each flag of used. Values are
// parsed later, with the environment, so that all bad values are reported,
// not just the first one. err is flag's own (it names only the flag, never
// its value); problems are stray arguments.
func parseFlags(cmd Command, used []*setting, args []string, usage io.Writer) (given map[*setting]*rawFlag, problems []error, err error) {
	fs := flag.NewFlagSet("tusproxy "+string(cmd), flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() { writeUsage(usage, cmd, used) }
	given = make(map[*setting]*rawFlag, len(used))
	for _, s := range used {
		raw := &rawFlag{}
		given[s] = raw
		fs.Var(raw, s.flag, s.help)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		// Stray words are not quoted: one may be a token whose flag was
		// mistyped, as in "-kinescope-api-token= SECRET".
		problems = append(problems, fmt.Errorf("%d unexpected argument(s) after the flags: give settings as -name=value", fs.NArg()))
	}
	return given, problems, nil
}

// readSettings builds the Config of cmd: each setting of used from its flag,
// else from its environment variable, else its default. createRateGiven
// reports whether the operator chose a creation rate.
func readSettings(cmd Command, used []*setting, given map[*setting]*rawFlag, getenv func(string) string) (c *Config, createRateGiven bool, problems []error) {
	c = &Config{Command: cmd}
	for _, s := range used {
		// The default goes in first so that a bad value leaves the field at
		// its default and Validate does not report the same setting twice.
		if msgs := s.parse(c, s.defaults(cmd)); len(msgs) > 0 {
			panic(fmt.Sprintf("config: default of -%s does not parse: %v", s.flag, msgs))
		}
		raw, ok := given[s].value, given[s].set
		if !ok {
			raw = getenv(s.env)
			ok = raw != ""
		}
		if !ok {
			continue
		}
		if s.name == nameCreateRate {
			createRateGiven = true
		}
		for _, msg := range s.parse(c, strings.TrimSpace(raw)) {
			problems = append(problems, &SettingError{Flag: s.flag, Env: s.env, Problem: msg})
		}
	}
	return c, createRateGiven, problems
}

// deriveDefaults fills the settings whose default depends on others.
func (c *Config) deriveDefaults(createRateGiven bool) {
	if c.Command == CommandDev {
		if c.EmulatorToken == "" {
			c.EmulatorToken = randomToken()
		}
		if c.APIToken == "" {
			c.APIToken = c.EmulatorToken
		}
	}
	// Anonymous uploads on the internet get a creation rate unless the
	// operator chose one, 0 included.
	if c.Command == CommandServe && !createRateGiven && !c.AuthEnabled() {
		c.CreateRate = AnonymousCreateRate
	}
}

// randomToken returns 32 hex characters from crypto/rand.
func randomToken() string {
	var b [16]byte
	// crypto/rand.Read never fails; it crashes the program instead.
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rawFlag is a flag.Value that keeps the text it was given.
type rawFlag struct {
	value string
	set   bool
}

func (f *rawFlag) String() string { return "" }

func (f *rawFlag) Set(v string) error {
	f.value, f.set = v, true
	return nil
}

func (cmd Command) known() bool {
	return cmd == CommandServe || cmd == CommandDev || cmd == CommandEmulator
}

// writeUsage lists every flag of cmd with its variable and default.
func writeUsage(w io.Writer, cmd Command, used []*setting) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: tusproxy %s [flags]\n\n", cmd)
	b.WriteString("Every flag can also be set with the environment variable shown under it;\n")
	b.WriteString("a flag on the command line wins over the variable.\n\n")
	for _, s := range used {
		fmt.Fprintf(&b, "  -%s %s\n", s.flag, s.arg)
		fmt.Fprintf(&b, "        %s\n", s.help)
		fmt.Fprintf(&b, "        env %s, default %s\n", s.env, s.defaultText(cmd))
	}
	io.WriteString(w, b.String())
}

// String is a one-line summary of every setting of the command, safe for
// logs: tokens and the JWT secret show as "(set)" or "(unset)", and URL
// credentials and queries are redacted.
func (c *Config) String() string {
	var b strings.Builder
	b.WriteString("command=")
	b.WriteString(quoteIfNeeded(string(c.Command)))
	for _, s := range settingsFor(c.Command) {
		b.WriteString(" ")
		b.WriteString(s.flag)
		b.WriteString("=")
		b.WriteString(quoteIfNeeded(s.show(c)))
	}
	return b.String()
}

// LogValue lets slog log the configuration as a group with the same redaction
// as String.
func (c *Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("command", string(c.Command))}
	for _, s := range settingsFor(c.Command) {
		attrs = append(attrs, slog.String(s.flag, s.show(c)))
	}
	return slog.GroupValue(attrs...)
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '=' || r >= 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}
