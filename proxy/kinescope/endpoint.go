package kinescope

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrEndpointRefused is wrapped by every error EndpointPolicy.Check and
// EndpointPolicy.CheckAddress return.
var ErrEndpointRefused = errors.New("kinescope endpoint refused")

// EndpointPolicy decides which upload endpoints the proxy may send bytes to.
// The endpoint comes from Kinescope's answer; checking it keeps a compromised
// or misconfigured init service (or emulator) from turning the proxy into a
// relay to arbitrary hosts and ports.
type EndpointPolicy struct {
	// Hosts are the allowlist entries, each "host" or "host:port" (an IPv6
	// literal with a port in brackets: "[::1]:8443"); see ParseHostEntry. A
	// host also allows its subdomains and is compared case-insensitively.
	// An entry without a port allows only the scheme's default port (443
	// for https, 80 for http); an entry with a port allows exactly that
	// port. Entries that do not parse allow nothing.
	Hosts []string
}

// ParseHostEntry splits an allowlist entry into its lowercase host and its
// port ("" when the entry names none). It accepts "host", "host:port",
// "[ipv6]:port", "[ipv6]" and a bare IPv6 literal, which cannot carry a port
// ("::1:8443" is an address, not ::1 on port 8443). The port is a number
// from 1 to 65535 without sign or leading zeros. The host is not checked
// beyond that: callers validate it as a name or an address.
func ParseHostEntry(entry string) (host, port string, err error) {
	entry = strings.ToLower(strings.TrimSpace(entry))
	if entry == "" {
		return "", "", errors.New("empty entry")
	}
	if _, err := netip.ParseAddr(entry); err == nil && strings.Contains(entry, ":") {
		return entry, "", nil // a bare IPv6 literal
	}
	if !strings.Contains(entry, ":") {
		return entry, "", nil
	}
	withPort := !(strings.HasPrefix(entry, "[") && strings.HasSuffix(entry, "]"))
	if !withPort {
		host = entry[1 : len(entry)-1]
	} else if host, port, err = net.SplitHostPort(entry); err != nil {
		return "", "", errors.New("not host or host:port")
	}
	bracketed := strings.HasPrefix(entry, "[")
	if ip, err := netip.ParseAddr(host); bracketed && (err != nil || !ip.Is6() || ip.Zone() != "") {
		return "", "", errors.New("only an IPv6 address goes in brackets")
	}
	if !bracketed && strings.Contains(host, ":") {
		return "", "", errors.New("an IPv6 address with a port must be in brackets, as [::1]:8443")
	}
	if host == "" {
		return "", "", errors.New("no host")
	}
	if !withPort {
		return host, "", nil
	}
	if _, ok := portNumber(port); !ok {
		return "", "", errors.New("the port is not a number from 1 to 65535")
	}
	return host, port, nil
}

// portNumber parses a port written the one canonical way: digits, no sign,
// no leading zero, from 1 to 65535. "0443" is refused rather than read as
// 443 by one party and something else by another.
func portNumber(port string) (int, bool) {
	if port == "" || len(port) > 5 || port[0] == '0' || strings.Trim(port, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(port)
	return n, err == nil && n >= 1 && n <= 65535
}

// defaultPort is the port an HTTP client dials for a URL without one.
func defaultPort(scheme string) string {
	if scheme == "http" {
		return "80"
	}
	return "443"
}

// Check accepts an absolute https URL whose host is one of Hosts or a
// subdomain of one at a label boundary ("evilkinescope.io" is not under
// "kinescope.io"), on the port the entry allows (see Hosts), without
// userinfo. Plain http is accepted only for a loopback host (127.0.0.1, ::1,
// localhost) that is itself listed in Hosts, which is what the local emulator
// uses. The host and port checked are those an HTTP client dials for the
// URL: u.Hostname(), and u.Port() or the scheme's default (CheckAddress).
// Errors wrap ErrEndpointRefused and never contain the URL: its path is a
// bearer capability for the upload. They may name the host and port, which
// are not secret and are what an operator needs when Kinescope moves
// endpoints to a new domain.
func (p EndpointPolicy) Check(endpoint string) error {
	if strings.IndexFunc(endpoint, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\\' }) >= 0 {
		// url.Parse tolerates some of these; HTTP clients and proxies
		// disagree about them, so refuse rather than guess.
		return refused("not a valid URL")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		// err's text would quote the endpoint.
		return refused("not a valid URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return refused("scheme is not https")
	}
	if u.Opaque != "" || u.Host == "" {
		return refused("not an absolute URL with a host")
	}
	if u.User != nil {
		return refused("URL carries user info")
	}
	return p.CheckAddress(scheme, u.Hostname(), u.Port())
}

// CheckAddress is Check for what is dialled: the host (without brackets)
// and port ("" for the scheme's default) a connection for scheme goes to.
// Check calls it with the parts of the URL; the upstream transport calls it
// again with the address it is about to dial, so that nothing between the
// two (a redirect, a proxy, a parser disagreement) can send a request
// elsewhere.
func (p EndpointPolicy) CheckAddress(scheme, host, port string) error {
	scheme = strings.ToLower(scheme)
	if scheme != "https" && scheme != "http" {
		return refused("scheme is not https")
	}
	host = strings.ToLower(host)
	if !plausibleHost(host) {
		return refused("host is not a valid name or address")
	}
	if port == "" {
		port = defaultPort(scheme)
	}
	if _, ok := portNumber(port); !ok {
		return refused("port is not a number from 1 to 65535")
	}
	if !p.allowsHost(host) {
		return refused(fmt.Sprintf("host %q is not an allowed upstream host", host))
	}
	if !p.allows(scheme, host, port) {
		return refused(fmt.Sprintf("port %s of host %q is not allowed: list the host as host:%s in the upstream hosts to allow it",
			port, host, port))
	}
	if scheme == "http" && !isLoopbackName(host) {
		return refused("plain http is allowed only for a listed loopback host")
	}
	return nil
}

func refused(why string) error { return fmt.Errorf("%w: %s", ErrEndpointRefused, why) }

// allowsHost reports whether some entry names host or a parent of it,
// whatever its port: it only chooses between the two refusal messages.
func (p EndpointPolicy) allowsHost(host string) bool {
	for _, entry := range p.Hosts {
		if allowed, _, err := ParseHostEntry(entry); err == nil && underHost(host, allowed) {
			return true
		}
	}
	return false
}

// allows reports whether some entry allows host on port for scheme.
func (p EndpointPolicy) allows(scheme, host, port string) bool {
	for _, entry := range p.Hosts {
		allowed, allowedPort, err := ParseHostEntry(entry)
		if err != nil || !underHost(host, allowed) {
			continue
		}
		if allowedPort == "" {
			allowedPort = defaultPort(scheme)
		}
		if port == allowedPort {
			return true
		}
	}
	return false
}

// underHost reports whether host is allowed or one of its subdomains.
func underHost(host, allowed string) bool {
	return allowed != "" && (host == allowed || strings.HasSuffix(host, "."+allowed))
}

func isLoopbackName(host string) bool {
	return host == "127.0.0.1" || host == "::1" || host == "localhost"
}

// plausibleHost accepts DNS names and IP literals and nothing else: no zones,
// no percent-escapes, no empty labels.
func plausibleHost(host string) bool {
	if host == "" || len(host) > 253 {
		return false
	}
	if strings.Contains(host, ":") {
		// IPv6 literal (brackets already removed by Hostname).
		return strings.Trim(host, "0123456789abcdef:.") == ""
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		if strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}
