package proxy

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
)

var clientIPHeaders = []string{config.ClientIPXForwardedFor, config.ClientIPForwarded, config.ClientIPXRealIP}

// FuzzClientIP drives the forwarding header parsing with arbitrary headers
// from a trusted peer, under each choice of believed header. Invariants: no
// panic; the answer is always a valid, unmapped address; it is the peer
// unless the believed header is present; and the headers not chosen change
// nothing, neither the address nor the origin.
func FuzzClientIP(f *testing.F) {
	f.Add(`for=192.0.2.60;proto=http;by=203.0.113.43`, "", "")
	f.Add(`for="[2001:db8:cafe::17]:4711", for=unknown`, "", "")
	f.Add(`for=_hidden, for=198.51.100.17`, "", "")
	f.Add("", "203.0.113.195, 70.41.3.18, 150.172.238.178", "")
	f.Add("", " , ,::ffff:10.0.0.1,", "")
	f.Add(`for="`, "1.2.3.4:80", "")
	f.Add(`for=7.7.7.7;host=evil.example;proto=https`, "6.6.6.6, 10.0.0.3", "7.7.7.7")
	f.Add("", "", "[2001:db8::1]:80")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}
	f.Fuzz(func(t *testing.T, forwarded, xff, realIP string) {
		all := map[string]string{"Forwarded": forwarded, "X-Forwarded-For": xff, "X-Real-IP": realIP,
			"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
		for _, header := range clientIPHeaders {
			fwd := proxyHeaders{header: header, trusted: trusted}
			r := request("127.0.0.1:1234", all)
			ip := fwd.clientIP(r)
			if !ip.IsValid() || ip.Is4In6() {
				t.Fatalf("%s: client IP %v for %q", header, ip, all)
			}
			believed := map[string]string{
				config.ClientIPXForwardedFor: xff, config.ClientIPForwarded: forwarded, config.ClientIPXRealIP: realIP,
			}[header]
			if ip.String() != "127.0.0.1" && believed == "" {
				t.Fatalf("%s: client IP %v though the believed header is empty", header, ip)
			}
			// Only the believed family counts.
			only := map[string]string{}
			switch header {
			case config.ClientIPForwarded:
				only["Forwarded"] = forwarded
			case config.ClientIPXRealIP:
				only["X-Real-IP"] = realIP
			default:
				only["X-Forwarded-For"] = xff
			}
			if header != config.ClientIPForwarded {
				only["X-Forwarded-Host"], only["X-Forwarded-Proto"] = "evil.example", "https"
			}
			r2 := request("127.0.0.1:1234", only)
			if got := fwd.clientIP(r2); got != ip {
				t.Fatalf("%s: headers not believed changed the client IP: %v, alone %v", header, ip, got)
			}
			scheme, host := fwd.origin(r)
			scheme2, host2 := fwd.origin(r2)
			if scheme != scheme2 || host != host2 {
				t.Fatalf("%s: headers not believed changed the origin: %s://%s, alone %s://%s", header, scheme, host, scheme2, host2)
			}
			if scheme != "http" && scheme != "https" {
				t.Fatalf("scheme %q", scheme)
			}
			if !validHost(host) && host != "" {
				t.Fatalf("host %q", host)
			}
		}
	})
}

func request(remote string, headers map[string]string) *http.Request {
	r := &http.Request{RemoteAddr: remote, Host: "tus.example", Header: http.Header{}}
	for k, v := range headers {
		if v != "" {
			r.Header.Set(k, v)
		}
	}
	return r
}

func TestClientIPChain(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		header, remote, forwarded, xff, realIP, want string
	}{
		{"x-forwarded-for", "203.0.113.1:5", "", "198.51.100.1", "", "203.0.113.1"},                  // untrusted peer: headers ignored
		{"x-forwarded-for", "10.0.0.2:5", "", "198.51.100.1, 10.0.0.3", "", "198.51.100.1"},          // skip trusted hops from the right
		{"x-forwarded-for", "10.0.0.2:5", "", "6.6.6.6, 198.51.100.1", "", "198.51.100.1"},           // a spoofed left part is not believed
		{"x-forwarded-for", "10.0.0.2:5", `for=7.7.7.7`, "198.51.100.1", "7.7.7.7", "198.51.100.1"},  // Forwarded and X-Real-IP ignored
		{"x-forwarded-for", "10.0.0.2:5", `for=7.7.7.7`, "", "7.7.7.7", "10.0.0.2"},                  // ...even without X-Forwarded-For
		{"x-forwarded-for", "10.0.0.2:5", "", "10.0.0.9", "", "10.0.0.9"},                            // all trusted: the leftmost
		{"x-forwarded-for", "10.0.0.2:5", "", "6.6.6.6, garbage, 10.0.0.9", "", "10.0.0.9"},          // unparseable: stop at the last trusted hop
		{"x-forwarded-for", "[::ffff:10.0.0.2]:5", "", "198.51.100.1", "", "198.51.100.1"},           // IPv4-mapped peer
		{"forwarded", "10.0.0.2:5", `for=198.51.100.7, for=10.1.1.1`, "9.9.9.9", "", "198.51.100.7"}, // Forwarded chosen
		{"forwarded", "10.0.0.2:5", `for=6.6.6.6, for=198.51.100.7`, "", "", "198.51.100.7"},         // a spoofed left element is not believed
		{"forwarded", "10.0.0.2:5", "", "198.51.100.1", "7.7.7.7", "10.0.0.2"},                       // X-Forwarded-For ignored
		{"forwarded", "10.0.0.2:5", `for=unknown`, "", "", "10.0.0.2"},                               // unparseable: stop at the last trusted hop
		{"x-real-ip", "10.0.0.2:5", `for=7.7.7.7`, "6.6.6.6", "198.51.100.4", "198.51.100.4"},        // X-Real-IP chosen
		{"x-real-ip", "10.0.0.2:5", "", "", "[2001:db8::4]:80", "2001:db8::4"},                       // with a port
		{"x-real-ip", "10.0.0.2:5", "", "", "6.6.6.6, 198.51.100.4", "10.0.0.2"},                     // a list is not a single value
		{"x-real-ip", "203.0.113.1:5", "", "", "198.51.100.4", "203.0.113.1"},                        // untrusted peer
	} {
		fwd := proxyHeaders{header: tt.header, trusted: trusted}
		r := request(tt.remote, map[string]string{"Forwarded": tt.forwarded, "X-Forwarded-For": tt.xff, "X-Real-IP": tt.realIP})
		if got := fwd.clientIP(r).String(); got != tt.want {
			t.Errorf("%+v: got %s", tt, got)
		}
	}
	// Two X-Real-IP lines: the proxy appended instead of replacing, so
	// the client's own may be among them.
	r := request("10.0.0.2:5", nil)
	r.Header.Add("X-Real-IP", "6.6.6.6")
	r.Header.Add("X-Real-IP", "198.51.100.4")
	if got := (proxyHeaders{header: config.ClientIPXRealIP, trusted: trusted}).clientIP(r).String(); got != "10.0.0.2" {
		t.Errorf("two X-Real-IP lines: got %s, want the peer", got)
	}
}

func TestOriginFromTheTrustedHopOnly(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		header, remote string
		headers        map[string]string
		public         string
		want           string
	}{
		// A client's own Forwarded behind a proxy that only writes
		// X-Forwarded-*: ignored.
		{"x-forwarded-for", "10.0.0.2:5", map[string]string{"Forwarded": "host=evil.example;proto=https"}, "", "http://tus.example"},
		// X-Forwarded-Host/Proto: the right-most value, the peer's.
		{"x-forwarded-for", "10.0.0.2:5", map[string]string{"X-Forwarded-Host": "evil.example, up.example", "X-Forwarded-Proto": "https"}, "", "https://up.example"},
		{"x-forwarded-for", "203.0.113.1:5", map[string]string{"X-Forwarded-Host": "evil.example"}, "", "http://tus.example"},
		{"x-real-ip", "10.0.0.2:5", map[string]string{"X-Forwarded-Host": "up.example", "Forwarded": "host=evil.example"}, "", "http://up.example"},
		// Forwarded: the element that named the client, not the client's
		// own element left of it.
		{"forwarded", "10.0.0.2:5", map[string]string{"Forwarded": "for=6.6.6.6;host=evil.example;proto=https, for=198.51.100.7;host=up.example;proto=https",
			"X-Forwarded-Host": "evil.example"}, "", "https://up.example"},
		{"forwarded", "10.0.0.2:5", map[string]string{"Forwarded": "for=198.51.100.7;host=up.example, for=10.0.0.5;host=inner.example"}, "", "http://up.example"},
		{"forwarded", "10.0.0.2:5", map[string]string{"Forwarded": "host=evil.example;proto=https, for=198.51.100.7"}, "", "http://tus.example"},
		// TUSPROXY_PUBLIC_URL wins over everything.
		{"x-forwarded-for", "10.0.0.2:5", map[string]string{"X-Forwarded-Host": "up.example"}, "https://public.example/media", "https://public.example"},
	} {
		cfg := &config.Config{ClientIPHeader: tt.header, TrustedProxies: trusted, PublicURL: tt.public}
		scheme, host := newProxyHeaders(cfg).origin(request(tt.remote, tt.headers))
		if got := scheme + "://" + host; got != tt.want {
			t.Errorf("%s %v: origin %s, want %s", tt.header, tt.headers, got, tt.want)
		}
	}
}

func TestLimitsKeyIPv6ByPrefix64(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"fe80::1%eth0", "fe80::"},
	} {
		if got := limitKey(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("limitKey(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	// The PATCH cap counts one /64 as one client.
	l := newStreams(1, 0, &sharedLimits{}) // no Limiter: this replica counts
	start := func(addr netip.Addr) (func(), error) {
		return l.start(context.Background(), limitKey(addr), new(bodyReader), time.Now())
	}
	release, err := start(netip.MustParseAddr("2001:db8:1:2::1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start(netip.MustParseAddr("2001:db8:1:2::2")); err != errTooManyPatches {
		t.Errorf("second PATCH from the same /64: %v, want errTooManyPatches", err)
	}
	if r, err := start(netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Errorf("PATCH from another /64: %v", err)
	} else {
		r()
	}
	release()
	if r, err := start(netip.MustParseAddr("2001:db8:1:2::2")); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		r()
	}
}
