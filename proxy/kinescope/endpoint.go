package kinescope

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrEndpointRefused is wrapped by every error EndpointPolicy.Check returns.
var ErrEndpointRefused = errors.New("kinescope endpoint refused")

// EndpointPolicy decides which upload endpoints the proxy may send bytes to.
// The endpoint comes from Kinescope's answer; checking it keeps a compromised
// or misconfigured init service (or emulator) from turning the proxy into a
// relay to arbitrary hosts.
type EndpointPolicy struct {
	// Hosts are the allowed host names or IP literals; a host also allows its
	// subdomains. Compared case-insensitively.
	Hosts []string
}

// Check accepts an absolute https URL whose host is one of Hosts or a
// subdomain of one at a label boundary ("evilkinescope.io" is not under
// "kinescope.io"), on any port, without userinfo. Plain http is accepted only
// for a loopback host (127.0.0.1, ::1, localhost) that is itself listed in
// Hosts, which is what the local emulator uses. Errors wrap
// ErrEndpointRefused and never contain the URL: its path is a bearer
// capability for the upload. They may name the host, which is not secret and
// is what an operator needs when Kinescope moves endpoints to a new domain.
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
	host := strings.ToLower(u.Hostname())
	if !plausibleHost(host) {
		return refused("host is not a valid name or address")
	}
	if !p.allows(host) {
		return refused(fmt.Sprintf("host %q is not an allowed upstream host", host))
	}
	if scheme == "http" && !isLoopbackName(host) {
		return refused("plain http is allowed only for a listed loopback host")
	}
	return nil
}

func refused(why string) error { return fmt.Errorf("%w: %s", ErrEndpointRefused, why) }

func (p EndpointPolicy) allows(host string) bool {
	for _, allowed := range p.Hosts {
		allowed = strings.ToLower(strings.TrimSpace(allowed))
		if allowed == "" {
			continue
		}
		if host == allowed || strings.HasSuffix(host, "."+allowed) {
			return true
		}
	}
	return false
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
