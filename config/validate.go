package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/safetext"
	"github.com/kinescope-tools/tusproxy/internal/storespec"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// minUpstreamChunkSize keeps chunks large enough that per-request overhead
// does not dominate, and keeps a typo like "64" (bytes) from being accepted.
// 0 is allowed too: it means a client's PATCH is never split.
const minUpstreamChunkSize = 64 << 10

// Bounds of MaxHeaderBytes: below 4 KiB ordinary browser requests with
// cookies fail; above 16 MiB every connection may pin that much memory.
const (
	minMaxHeaderBytes = 4 << 10
	maxMaxHeaderBytes = 16 << 20
)

// minJWTSecretLen is the HS256 key length RFC 7518 §3.2 requires: a key as
// long as the hash output, so the secret is not the weak point.
const minJWTSecretLen = 32

// maxJWTLeeway bounds the clock skew allowance; more would keep expired
// tokens working long after they should have stopped.
const maxJWTLeeway = 5 * time.Minute

// Validate reports every problem with c at once, one error per problem, each
// naming the flag and the environment variable. It checks only the settings
// c.Command uses and changes nothing.
func (c *Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c *Config) problems() []error {
	if !c.Command.known() {
		return []error{fmt.Errorf("unknown command %q (use serve, dev or emulator)", string(c.Command))}
	}
	var problems []error
	add := func(n name, format string, args ...any) {
		problems = append(problems, &SettingError{Flag: n.flag, Env: n.env, Problem: fmt.Sprintf(format, args...)})
	}

	if c.Command == CommandServe || c.Command == CommandDev {
		c.proxyProblems(add)
	}
	if c.Command == CommandDev || c.Command == CommandEmulator {
		if msg := listenProblem(c.EmulatorListen); msg != "" {
			add(nameEmulatorListen, "%s", msg)
		}
		if msg := tokenProblem(c.EmulatorToken); msg != "" {
			add(nameEmulatorToken, "%s", msg)
		}
	}
	switch c.LogFormat {
	case LogFormatJSON, LogFormatText, LogFormatAuto:
	default:
		add(nameLogFormat, "%q is not a log format (use json, text or auto)", c.LogFormat)
	}
	return problems
}

// proxyProblems checks the settings of the proxy (serve and dev), in the
// order the problems are reported.
func (c *Config) proxyProblems(add func(name, string, ...any)) {
	c.kinescopeProblems(add)
	basePathOK := c.addressProblems(add)
	c.clientIPProblems(add)
	c.corsProblems(add)
	c.sizeProblems(add)
	c.upstreamProblems(add)
	c.timeoutProblems(add)
	if c.MaxHeaderBytes < minMaxHeaderBytes || c.MaxHeaderBytes > maxMaxHeaderBytes {
		add(nameMaxHeaderBytes, "is %s; must be from 4KiB to 16MiB", formatSize(c.MaxHeaderBytes))
	}
	c.tlsProblems(add)
	if c.UploadTTL < 0 {
		add(nameUploadTTL, "is %s; must not be negative (0 means never expire)", c.UploadTTL)
	}
	if _, err := storespec.Parse(c.Store); err != nil {
		add(nameStore, "%s", err)
	}
	c.seedPathProblems(add, basePathOK)
	c.authProblems(add)
	c.limitProblems(add)
	c.metricsProblems(add)
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, " \t\r\n*?[]") {
		add(nameRedisPrefix, "%q must be non-empty, without spaces or glob characters (such as tusproxy: or staging:tusproxy:)", c.RedisPrefix)
	}
	if c.LockLease < time.Second || c.LockLease > 5*time.Minute {
		add(nameLockLease, "is %s; must be from 1s to 5m", c.LockLease)
	}
	c.webhookProblems(add)
}

// webhookProblems checks the lifecycle webhooks' receiver, secrets, events
// and timings.
func (c *Config) webhookProblems(add func(name, string, ...any)) {
	if c.WebhookURL != "" && !isAbsoluteHTTP(c.WebhookURL) {
		// Not quoted: the URL may carry a key in its query.
		add(nameWebhookURL, "must be an absolute http:// or https:// URL")
	}
	switch {
	case c.WebhookURL != "" && strings.TrimSpace(c.WebhookSecret) == "":
		add(nameWebhookSecret, "is required with %s: receivers verify every delivery with it "+
			"(make one with: echo whsec_$(openssl rand -base64 32))", nameWebhookURL)
	case c.WebhookSecret != "":
		// ParseSecrets never quotes a secret, nor says how long it is.
		if _, err := webhook.ParseSecrets(c.WebhookSecret); err != nil {
			add(nameWebhookSecret, "%s", err)
		}
	}
	if len(c.WebhookEvents) == 0 {
		add(nameWebhookEvents, "names no event (name some of %s, or leave it unset for all)", strings.Join(webhook.Types, ", "))
	}
	for _, event := range c.WebhookEvents {
		if !webhook.KnownType(event) {
			add(nameWebhookEvents, "%q is not an event (use %s)", event, strings.Join(webhook.Types, ", "))
		}
	}
	if c.WebhookTimeout <= 0 {
		add(nameWebhookTimeout, "is %s; must be more than 0", c.WebhookTimeout)
	}
	if c.WebhookMaxAge <= 0 {
		add(nameWebhookMaxAge, "is %s; must be more than 0", c.WebhookMaxAge)
	}
}

// kinescopeProblems checks what the proxy needs to ask Kinescope for
// uploads: the API token, the parent (project or folder) and the init URL.
func (c *Config) kinescopeProblems(add func(name, string, ...any)) {
	// In dev the API token is usually the emulator token, whose problems
	// are reported once, under its own name.
	if c.Command == CommandServe || (c.APIToken != "" && c.APIToken != c.EmulatorToken) {
		if msg := tokenProblem(c.APIToken); msg != "" {
			add(nameAPIToken, "%s", msg)
		}
	}
	if c.ParentID == "" {
		add(nameParentID, "is required")
	} else if safetext.HasASCIIControl(c.ParentID) {
		add(nameParentID, "contains control characters")
	}
	// The dev command fills an empty InitURL with its emulator's.
	if c.InitURL != "" || c.Command == CommandServe {
		if !isAbsoluteHTTP(c.InitURL) {
			// Not quoted: the URL may carry a key in its query.
			add(nameInitURL, "must be an absolute http:// or https:// URL")
		} else if msg := initURLProblem(c.InitURL); msg != "" {
			add(nameInitURL, "%s", msg)
		}
	}
}

// addressProblems checks where the proxy listens and the URLs it answers
// under. basePathOK is false when the base path is unusable, so that checks
// against it are skipped.
func (c *Config) addressProblems(add func(name, string, ...any)) (basePathOK bool) {
	if msg := listenProblem(c.Listen); msg != "" {
		add(nameListen, "%s", msg)
	}

	basePathOK = true
	if !strings.HasPrefix(c.BasePath, "/") || !strings.HasSuffix(c.BasePath, "/") {
		add(nameBasePath, "%q must start and end with /", c.BasePath)
		basePathOK = false
	} else if msg := pathProblem(c.BasePath); msg != "" {
		add(nameBasePath, "%q %s", c.BasePath, msg)
		basePathOK = false
	}

	if c.PublicURL != "" {
		if msg := publicURLProblem(c.PublicURL); msg != "" {
			add(namePublicURL, "%s", msg)
		}
	}

	return basePathOK
}

// clientIPProblems checks how the client's address is found behind reverse
// proxies.
func (c *Config) clientIPProblems(add func(name, string, ...any)) {
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			add(nameTrustedProxies, "contains an invalid prefix")
		}
	}
	for _, family := range []struct {
		name string
		all  netip.Prefix
	}{{"IPv4", netip.MustParsePrefix("0.0.0.0/0")}, {"IPv6", netip.MustParsePrefix("::/0")}} {
		if coversAll(c.TrustedProxies, family.all.Addr().Is4()) {
			add(nameTrustedProxies, "trusts every %s address (%s): any client could then write the address it likes "+
				"into the forwarding header and have it believed; name only the addresses your reverse proxies connect from",
				family.name, family.all)
		}
	}
	if c.ClientIPHeader != ClientIPXForwardedFor && c.ClientIPHeader != ClientIPForwarded && c.ClientIPHeader != ClientIPXRealIP {
		add(nameClientIPHeader, "%q is not a forwarding header tusproxy reads (use x-forwarded-for, forwarded or x-real-ip)", c.ClientIPHeader)
	}
}

// sizeProblems checks the bounds of an upload and of its metadata.
func (c *Config) sizeProblems(add func(name, string, ...any)) {
	if c.MaxSize < 0 {
		add(nameMaxSize, "is %d; must not be negative", c.MaxSize)
	}
	if c.MaxMetadataBytes <= 0 {
		add(nameMaxMetadataBytes, "is %s; must be more than 0", formatSize(c.MaxMetadataBytes))
	} else if c.MaxMetadataBytes > c.MaxHeaderBytes && c.MaxHeaderBytes >= minMaxHeaderBytes {
		add(nameMaxMetadataBytes, "is %s, more than %s (%s): the header block would be refused first; raise both",
			formatSize(c.MaxMetadataBytes), nameMaxHeaderBytes, formatSize(c.MaxHeaderBytes))
	}

}

// upstreamProblems checks the upload endpoints the proxy may forward to.
func (c *Config) upstreamProblems(add func(name, string, ...any)) {
	// The dev command adds its emulator's host:port to the list.
	if len(c.UpstreamHosts) == 0 && c.Command == CommandServe {
		add(nameUpstreamHosts, "must name at least one host")
	}
	for _, entry := range c.UpstreamHosts {
		if msg := upstreamHostProblem(entry); msg != "" {
			add(nameUpstreamHosts, "%q %s", entry, msg)
		}
	}
	if c.UpstreamChunkSize != 0 && c.UpstreamChunkSize < minUpstreamChunkSize {
		add(nameUpstreamChunkSize, "is %s; must be 0 (never split) or at least 64KiB", formatSize(c.UpstreamChunkSize))
	}
}

// timeoutProblems checks the timeouts and the minimum body rate.
func (c *Config) timeoutProblems(add func(name, string, ...any)) {
	positive := func(n name, d time.Duration) {
		if d <= 0 {
			add(n, "is %s; must be more than 0", d)
		}
	}
	positive(nameUpstreamTimeout, c.UpstreamTimeout)
	positive(nameUpstreamIdle, c.UpstreamIdleTimeout)
	positive(nameInitTimeout, c.InitTimeout)
	positive(nameShutdownTimeout, c.ShutdownTimeout)
	positive(nameReadHeaderTimeout, c.ReadHeaderTimeout)
	positive(nameBodyIdleTimeout, c.BodyIdleTimeout)
	if c.MetricsLinger < 0 {
		add(nameMetricsLinger, "is %s; must not be negative (0 closes the admin listener at once)", c.MetricsLinger)
	}
	if c.MinBodyRate < 0 {
		add(nameMinBodyRate, "is %d; must not be negative (0 turns it off)", c.MinBodyRate)
	}
	if c.MinBodyRate > 0 && c.MinBodyRateWindow < time.Second {
		add(nameMinBodyRateWindow, "is %s; must be at least 1s (a shorter window cuts clients for a network hiccup)", c.MinBodyRateWindow)
	}
}

// seedPathProblems checks the path of the seed route, which must not
// overlap the tus base path.
func (c *Config) seedPathProblems(add func(name, string, ...any), basePathOK bool) {
	if c.SeedPath != "" {
		switch {
		case !strings.HasPrefix(c.SeedPath, "/"):
			add(nameSeedPath, "%q must start with / (or be off)", c.SeedPath)
		case pathProblem(c.SeedPath) != "":
			add(nameSeedPath, "%q %s", c.SeedPath, pathProblem(c.SeedPath))
		case basePathOK && pathsOverlap(c.SeedPath, c.BasePath):
			add(nameSeedPath, "%q overlaps the tus base path %q (-%s); choose another path or off", c.SeedPath, c.BasePath, nameBasePath.flag)
		}
	}

}

// limitProblems checks the per-address and global request limits.
func (c *Config) limitProblems(add func(name, string, ...any)) {
	for _, limit := range []struct {
		name
		value int
	}{
		{nameCreateRate, c.CreateRate},
		{nameMaxPatchesPerIP, c.MaxPatchesPerIP},
		{nameMaxInFlight, c.MaxInFlight},
	} {
		if limit.value < 0 {
			add(limit.name, "is %d; must not be negative (0 means unlimited)", limit.value)
		}
	}
}

// metricsProblems checks the admin listener and the per-upload series'
// bounds.
func (c *Config) metricsProblems(add func(name, string, ...any)) {
	if c.MetricsListen != "" {
		if msg := listenProblem(c.MetricsListen); msg != "" {
			add(nameMetricsListen, "%s", msg)
		} else if c.MetricsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			add(nameMetricsListen, "%q is also the public listener (-%s); metrics must not be served to uploaders", c.MetricsListen, nameListen.flag)
		}
	}
	if c.MetricsMaxUploads < 0 {
		add(nameMetricsMaxUploads, "is %d; must not be negative (0 means no per-upload series)", c.MetricsMaxUploads)
	}
	if c.MetricsUploadGrace < 0 {
		add(nameMetricsGrace, "is %s; must not be negative", c.MetricsUploadGrace)
	}
	if c.MetricsUploadIdle <= 0 {
		add(nameMetricsIdle, "is %s; must be more than 0", c.MetricsUploadIdle)
	}
}

// tlsProblems reports a certificate without its key or the other way round:
// serving plain HTTP when HTTPS was meant would be worse than not starting.
func (c *Config) tlsProblems(add func(name, string, ...any)) {
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		add(nameTLSCertFile, "is set but %s is not; give both or neither", nameTLSKeyFile)
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		add(nameTLSKeyFile, "is set but %s is not; give both or neither", nameTLSCertFile)
	}
}

func (c *Config) authProblems(add func(name, string, ...any)) {
	switch {
	case c.Auth == AuthRequired && !c.AuthEnabled():
		add(nameAuth, "is %s but neither %s nor a JWT key (%s, %s, %s or %s) is set: anyone could create videos on your Kinescope account; "+
			"configure one, or set %s=%s to accept anonymous uploads (only behind a gateway that authenticates)",
			AuthRequired, nameAuthHookURL, nameJWTSecret, nameJWTPublicKeyFile, nameJWTJWKSFile, nameJWTJWKSURL, nameAuth.env, AuthNone)
	case c.Auth == AuthNone && c.AuthEnabled():
		add(nameAuth, "is %s (anonymous uploads) but %s; remove one or the other", AuthNone, c.authConfigured())
	case c.Auth != AuthRequired && c.Auth != AuthNone && c.Auth != AuthOptional:
		add(nameAuth, "%q is not an auth mode (use required, none or optional)", c.Auth)
	}
	if c.AuthHookURL != "" && !isAbsoluteHTTP(c.AuthHookURL) {
		// Not quoted: the URL may carry a key in its query.
		add(nameAuthHookURL, "must be an absolute http:// or https:// URL")
	}
	if c.AuthHookTimeout <= 0 {
		add(nameAuthHookTimeout, "is %s; must be more than 0", c.AuthHookTimeout)
	}
	if c.AuthCacheTTL < 0 {
		add(nameAuthCacheTTL, "is %s; must not be negative (0 means no caching)", c.AuthCacheTTL)
	}

	// Never quote the secret, nor say how long it is.
	if c.JWTSecret != "" && len(c.JWTSecret) < minJWTSecretLen {
		add(nameJWTSecret, "is shorter than %d bytes; use a random secret of at least %d bytes", minJWTSecretLen, minJWTSecretLen)
	}
	// Each key source means a different set of algorithms; two at once
	// would leave it unclear which tokens are accepted.
	var keySources []name
	for _, source := range []struct {
		name
		set bool
	}{
		{nameJWTSecret, c.JWTSecret != ""},
		{nameJWTPublicKeyFile, c.JWTPublicKeyFile != ""},
		{nameJWTJWKSFile, c.JWTJWKSFile != ""},
		{nameJWTJWKSURL, c.JWTJWKSURL != ""},
	} {
		if source.set {
			keySources = append(keySources, source.name)
		}
	}
	if len(keySources) > 1 {
		others := make([]string, len(keySources)-1)
		for i, n := range keySources[1:] {
			others[i] = n.String()
		}
		add(keySources[0], "cannot be combined with %s; give one way to verify JWTs", strings.Join(others, " or "))
	}
	// An audience or issuer without a key looks like JWTs are checked while
	// nothing is: refuse to start rather than run open.
	if !c.JWTEnabled() {
		for _, claim := range []struct {
			name
			value string
		}{
			{nameJWTAudience, c.JWTAudience},
			{nameJWTIssuer, c.JWTIssuer},
		} {
			if claim.value != "" {
				add(claim.name, "has no effect without %s, %s, %s or %s; JWTs are not checked at all",
					nameJWTSecret, nameJWTPublicKeyFile, nameJWTJWKSFile, nameJWTJWKSURL)
			}
		}
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > maxJWTLeeway {
		add(nameJWTLeeway, "is %s; must be from 0 to 5m", c.JWTLeeway)
	}
	if c.JWTJWKSURL != "" {
		if msg := jwksURLProblem(c.JWTJWKSURL); msg != "" {
			add(nameJWTJWKSURL, "%s", msg)
		}
		if c.JWTJWKSRefresh < time.Second {
			add(nameJWTJWKSRefresh, "is %s; must be at least 1s", c.JWTJWKSRefresh)
		}
	}
}

func (c *Config) corsProblems(add func(name, string, ...any)) {
	for _, origin := range c.CORSOrigins {
		if origin == "*" {
			if len(c.CORSOrigins) > 1 {
				add(nameCORSOrigins, `"*" allows every origin and must be the only entry`)
			}
			continue
		}
		if msg := originProblem(origin); msg != "" {
			add(nameCORSOrigins, "%q %s", origin, msg)
		}
	}
}

// tokenProblem checks a bearer token without ever quoting it.
func tokenProblem(token string) string {
	if token == "" {
		return "is required"
	}
	for i := 0; i < len(token); i++ {
		// Visible ASCII only: anything else cannot be sent in an
		// Authorization header (RFC 9110 §5.5), and a stray newline from a
		// secrets file is the usual cause.
		if token[i] <= ' ' || token[i] >= 0x7f {
			return "contains spaces, control or non-ASCII characters, which cannot be sent in an HTTP header"
		}
	}
	return ""
}

// coversAll reports whether the prefixes of one family (IPv4 when is4)
// together hold every address of it: 0.0.0.0/0 itself, but also ::0/0,
// ::ffff:0:0/96 (unmapped to 0.0.0.0/0 when parsed) or 0.0.0.0/1 with
// 128.0.0.0/1. It walks the prefixes in address order looking for a gap.
func coversAll(prefixes []netip.Prefix, is4 bool) bool {
	var family []netip.Prefix
	for _, p := range prefixes {
		if p.IsValid() && p.Addr().Is4() == is4 {
			family = append(family, p.Masked())
		}
	}
	slices.SortFunc(family, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	next := netip.IPv6Unspecified()
	if is4 {
		next = netip.IPv4Unspecified()
	}
	for _, p := range family {
		if next.Less(p.Addr()) {
			return false // a gap before p
		}
		last := lastAddr(p)
		if last.Less(next) {
			continue // inside what is already covered
		}
		if !last.Next().IsValid() {
			return true // reached the family's last address
		}
		next = last.Next()
	}
	return false
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	offset := 0
	if p.Addr().Is4() {
		offset = 12 // As16 holds an IPv4 address in its last 4 bytes
	}
	for bit := offset*8 + p.Bits(); bit < 128; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// listenProblem checks a net.Listen address: optional host, numeric port.
func listenProblem(addr string) string {
	if addr == "" {
		return "is required (host:port, such as :8080)"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (such as :8080 or 127.0.0.1:8080)", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q has a port that is not a number from 0 to 65535", addr)
	}
	if host != "" && !isHostName(strings.ToLower(host)) {
		return fmt.Sprintf("%q has a host that is not a name or IP address", addr)
	}
	return ""
}

func isAbsoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Opaque == "" && u.Host != ""
}

// initURLProblem refuses plain http to anything but loopback: the API token
// travels in the Authorization header of every init call, and over plain
// http anyone on the path reads it. Loopback stays allowed for the emulator
// and for a local TLS-terminating sidecar. raw is an absolute http(s) URL.
func initURLProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || isLoopbackHost(u.Hostname()) {
		return ""
	}
	// The URL is not quoted: it may carry a key in its query.
	return "uses plain http to a host that is not loopback, so the API token would travel in clear: " +
		"use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"
}

// jwksURLProblem accepts https, and plain http to loopback only: whoever
// can change the key set in transit can sign their own tokens, so over
// plain http anyone on the path could upload as anyone. Loopback stays
// allowed for tests and a local sidecar that fetches over TLS.
func jwksURLProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !isAbsoluteHTTP(raw):
		// Not quoted: the URL may carry a key in its query.
		return "must be an absolute https:// URL"
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return "uses plain http to a host that is not loopback, so anyone on the path could replace the keys and sign their own tokens: " +
			"use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"
	}
	return ""
}

// isLoopbackHost reports whether host is 127.0.0.0/8, ::1 or localhost.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Zone() == "" && addr.Unmap().IsLoopback()
}

// upstreamHostProblem checks one TUSPROXY_UPSTREAM_HOSTS entry with the
// parser the endpoint policy itself uses, so that what is validated is what
// is enforced.
func upstreamHostProblem(entry string) string {
	const form = " (such as kinescope.io, or 127.0.0.1:8443 to allow that port only; IPv6 as [::1]:8443)"
	if strings.ContainsAny(entry, "/?#@") {
		return "is not host or host:port: no scheme, path or user info" + form
	}
	host, _, err := kinescope.ParseHostEntry(entry)
	if err != nil {
		return "is not host or host:port: " + err.Error() + form
	}
	if !isHostName(host) {
		return "is not host or host:port: " + strconv.Quote(host) + " is not a lowercase host name or IP address" + form
	}
	return ""
}

func publicURLProblem(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Host == "":
		return fmt.Sprintf("%q is not an absolute http:// or https:// URL", raw)
	case u.User != nil:
		// Not quoted: it holds credentials.
		return "must not contain user info"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Sprintf("%q must not have a query or fragment", raw)
	case strings.HasSuffix(raw, "/"):
		return fmt.Sprintf("%q must not end with /", raw)
	}
	return ""
}

// originProblem checks a serialized origin (RFC 6454 §6.2): scheme, host and
// optional port, nothing else, lowercase as browsers send it.
func originProblem(origin string) string {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" || u.User != nil {
		return "is not an origin like https://example.com or https://example.com:8443"
	}
	if u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(origin, "#") {
		return "must have no path, query or fragment, not even a trailing / (browsers send scheme://host[:port])"
	}
	if origin != strings.ToLower(origin) {
		return "must be lowercase, as browsers send it"
	}
	return ""
}

// pathProblem rejects characters that make a URL path ambiguous.
func pathProblem(p string) string {
	if strings.ContainsAny(p, "?#") {
		return "must not contain ? or #"
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "must not contain spaces or control characters"
	}
	return ""
}

// pathsOverlap reports whether a request could be meant for both the seed
// endpoint and the tus handler: either path is the other or lies under it.
func pathsOverlap(seedPath, basePath string) bool {
	seedDir := strings.TrimSuffix(seedPath, "/") + "/"
	return strings.HasPrefix(seedDir, basePath) || strings.HasPrefix(basePath, seedDir)
}

// isHostName accepts a lowercase DNS name or an IP address without zone.
func isHostName(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Zone() == ""
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		if strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

// authConfigured names the auth settings that are set, for a problem.
func (c *Config) authConfigured() string {
	var set []string
	if c.AuthHookURL != "" {
		set = append(set, nameAuthHookURL.String())
	}
	for _, key := range []struct {
		name
		value string
	}{{nameJWTSecret, c.JWTSecret}, {nameJWTPublicKeyFile, c.JWTPublicKeyFile}, {nameJWTJWKSFile, c.JWTJWKSFile}, {nameJWTJWKSURL, c.JWTJWKSURL}} {
		if key.value != "" {
			set = append(set, key.String())
		}
	}
	return strings.Join(set, " and ") + " is set"
}
