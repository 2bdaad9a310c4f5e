package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/kinescope-tools/tusproxy/config"
)

// proxyHeaders decides what a request says about the client behind it: its
// address (Kinescope's client_ip, the auth hook's client.ip, the per-address
// limits, the logs) and the origin it used (Location, same-origin CORS). It
// is the one place that reads forwarding headers.
//
// Exactly one forwarding header is believed, the one the operator named
// (TUSPROXY_CLIENT_IP_HEADER), and only when the direct peer is a trusted
// proxy. Believing several lets a client pick the one its proxy does not
// rewrite: nginx rewrites X-Forwarded-For but passes a client's own
// Forwarded untouched.
type proxyHeaders struct {
	header  string         // config.ClientIPXForwardedFor, ClientIPForwarded or ClientIPXRealIP
	trusted []netip.Prefix // IPv4 prefixes for IPv4 peers: peers are compared unmapped

	// publicScheme and publicHost come from TUSPROXY_PUBLIC_URL; when set
	// they are the origin, whatever any header says.
	publicScheme, publicHost string
}

func newProxyHeaders(cfg *config.Config) proxyHeaders {
	f := proxyHeaders{header: cfg.ClientIPHeader, trusted: cfg.TrustedProxies}
	if cfg.PublicURL != "" {
		// Validate has checked it is an absolute http(s) URL.
		if u, err := url.Parse(cfg.PublicURL); err == nil {
			f.publicScheme, f.publicHost = u.Scheme, u.Host
		}
	}
	return f
}

func (f proxyHeaders) isTrusted(a netip.Addr) bool {
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

// clientIP is the client's address without port: the peer itself unless
// the peer is a trusted proxy, else what the believed header says.
func (f proxyHeaders) clientIP(r *http.Request) netip.Addr {
	client, _ := f.resolve(r)
	return client
}

// resolve finds the client behind r. With the Forwarded header it also
// returns the element that named the client: it was written by a trusted
// proxy (the peer, or a hop the walk passed through as trusted), so its
// proto= and host= can be believed; elements left of it cannot.
func (f proxyHeaders) resolve(r *http.Request) (client netip.Addr, hop string) {
	peer := peerAddr(r)
	if !peer.IsValid() || !f.isTrusted(peer) {
		return peer, ""
	}
	switch f.header {
	case config.ClientIPForwarded:
		elements := headerList(r.Header, "Forwarded")
		chain := make([]string, len(elements))
		for i, element := range elements {
			chain[i] = forwardedParam(element, "for")
		}
		client, stop := f.walk(peer, chain)
		if stop >= 0 {
			hop = elements[stop]
		}
		return client, hop
	case config.ClientIPXRealIP:
		// One value, set (not appended) by the trusted proxy: two values
		// mean the proxy passed the client's own on, so neither is sure.
		values := r.Header.Values("X-Real-IP")
		if len(values) != 1 {
			return peer, ""
		}
		if a, ok := parseForwardedAddr(strings.TrimSpace(values[0])); ok {
			return a, ""
		}
		return peer, ""
	default:
		client, _ := f.walk(peer, headerList(r.Header, "X-Forwarded-For"))
		return client, ""
	}
}

// walk reads a chain of addresses that proxies appended, oldest first, from
// the right (the hop nearest to us): each trusted address vouches for the
// one left of it, so the client is the right-most address that is not a
// trusted proxy. An entry that does not parse ends the walk at the last
// trusted hop, since nothing left of it can be believed. It also returns
// the index the walk stopped at, -1 for an empty chain.
func (f proxyHeaders) walk(peer netip.Addr, chain []string) (netip.Addr, int) {
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseForwardedAddr(chain[i])
		if !ok {
			return client, i
		}
		client = a
		if !f.isTrusted(a) {
			return a, i
		}
	}
	// Every hop is a trusted proxy: the left-most is as far as we can see.
	if len(chain) == 0 {
		return client, -1
	}
	return client, 0
}

// headerList splits every value of a comma-separated header into its
// trimmed items, in order: several header lines count as one list
// (RFC 9110 section 5.3).
func headerList(h http.Header, name string) []string {
	var items []string
	for _, v := range h.Values(name) {
		for _, item := range strings.Split(v, ",") {
			items = append(items, strings.TrimSpace(item))
		}
	}
	return items
}

// lastItem is the right-most item of a comma-separated header: the one the
// nearest proxy wrote, "" when absent.
func lastItem(h http.Header, name string) string {
	items := headerList(h, name)
	if len(items) == 0 {
		return ""
	}
	return items[len(items)-1]
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
// Location and telling same-origin requests: TUSPROXY_PUBLIC_URL's when
// set; else the request's own, unless a trusted peer says otherwise in the
// believed header family. With Forwarded that is the proto= and host= of
// the element that named the client; with X-Forwarded-For or X-Real-IP it
// is the right-most X-Forwarded-Proto and X-Forwarded-Host, the values the
// trusted peer wrote (nginx's proxy_set_header replaces a client's own).
func (f proxyHeaders) origin(r *http.Request) (scheme, host string) {
	if f.publicHost != "" {
		return f.publicScheme, f.publicHost
	}
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	peer := peerAddr(r)
	if !peer.IsValid() || !f.isTrusted(peer) {
		return scheme, host
	}
	var proto, forwardedHost string
	if f.header == config.ClientIPForwarded {
		_, hop := f.resolve(r)
		proto, forwardedHost = forwardedParam(hop, "proto"), forwardedParam(hop, "host")
	} else {
		proto, forwardedHost = lastItem(r.Header, "X-Forwarded-Proto"), lastItem(r.Header, "X-Forwarded-Host")
	}
	if p := strings.ToLower(proto); p == "http" || p == "https" {
		scheme = p
	}
	if validHost(forwardedHost) {
		host = forwardedHost
	}
	return scheme, host
}

// validHost keeps header-supplied hosts from smuggling paths or spaces into
// the Location we build.
func validHost(h string) bool {
	return h != "" && !strings.ContainsAny(h, "/\\?#@ \t\r\n")
}

// limitKey is the address a client is counted under by every per-address
// limit. An IPv6 client is counted by its /64: that is the smallest prefix
// one subscriber gets (RFC 6177), and a host can take any address in it at
// will, so counting /128s lets one machine rotate its way past every limit.
// An IPv4 client (IPv4-mapped IPv6 included) is counted by its address.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

// clientKey is the address a request's client is counted under by every
// per-address limit.
func (f proxyHeaders) clientKey(r *http.Request) netip.Addr { return limitKey(f.clientIP(r)) }
