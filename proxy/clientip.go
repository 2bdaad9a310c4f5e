package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwarding decides what a request says about the client behind it. Headers
// set by proxies (Forwarded, X-Forwarded-For, X-Forwarded-Proto/Host) are
// believed only when the direct peer is one of the trusted proxies: anyone
// else could write them.
type forwarding struct {
	trusted []netip.Prefix
}

func (f forwarding) isTrusted(a netip.Addr) bool {
	for _, p := range f.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the direct peer, without port.
func peerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(strings.Trim(host, "[]"))
	return a.Unmap()
}

// clientIP is the client's address without port. With a trusted peer it walks
// the forwarded chain from the right (the hop nearest to us) and returns the
// first address that is not a trusted proxy; an entry it cannot parse ends
// the walk, since nothing left of it can be believed.
func (f forwarding) clientIP(r *http.Request) netip.Addr {
	peer := peerAddr(r)
	if !peer.IsValid() || !f.isTrusted(peer) {
		return peer
	}
	chain, ok := forwardedFor(r.Header)
	if !ok {
		return peer
	}
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseForwardedAddr(chain[i])
		if !ok {
			return client
		}
		client = a
		if !f.isTrusted(a) {
			return a
		}
	}
	return client
}

// forwardedFor lists the client addresses a request's proxies recorded,
// oldest first: the "for" parameters of Forwarded (RFC 7239) when present,
// else X-Forwarded-For.
func forwardedFor(h http.Header) ([]string, bool) {
	if values := h.Values("Forwarded"); len(values) > 0 {
		var chain []string
		for _, v := range values {
			for _, element := range strings.Split(v, ",") {
				chain = append(chain, forwardedParam(element, "for"))
			}
		}
		return chain, true
	}
	if values := h.Values("X-Forwarded-For"); len(values) > 0 {
		var chain []string
		for _, v := range values {
			for _, part := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(part))
			}
		}
		return chain, true
	}
	return nil, false
}

// forwardedParam returns the value of one parameter of a Forwarded element
// (RFC 7239 section 4), unquoted; "" when absent.
func forwardedParam(element, name string) string {
	for _, pair := range strings.Split(element, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// parseForwardedAddr accepts "192.0.2.1", "192.0.2.1:80", "[2001:db8::1]" and
// "[2001:db8::1]:80". Obfuscated identifiers and "unknown" are refused.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// origin is the scheme and host the client used to reach us, for building
// Location. Forwarded proto/host are believed only from trusted proxies.
func (f forwarding) origin(r *http.Request) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	peer := peerAddr(r)
	if !peer.IsValid() || !f.isTrusted(peer) {
		return scheme, host
	}
	if values := r.Header.Values("Forwarded"); len(values) > 0 {
		// The first element was written by the proxy nearest the client.
		first, _, _ := strings.Cut(values[0], ",")
		if p := strings.ToLower(forwardedParam(first, "proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := forwardedParam(first, "host"); validHost(h) {
			host = h
		}
		return scheme, host
	}
	if p := strings.ToLower(strings.TrimSpace(firstField(r.Header.Get("X-Forwarded-Proto")))); p == "http" || p == "https" {
		scheme = p
	}
	if h := strings.TrimSpace(firstField(r.Header.Get("X-Forwarded-Host"))); validHost(h) {
		host = h
	}
	return scheme, host
}

func firstField(s string) string {
	first, _, _ := strings.Cut(s, ",")
	return first
}

// validHost keeps header-supplied hosts from smuggling paths or spaces into
// the Location we build.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/\\?#@ \t\r\n")
}
