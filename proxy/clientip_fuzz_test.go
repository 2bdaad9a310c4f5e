package proxy

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzClientIP drives the Forwarded / X-Forwarded-For parsing with arbitrary
// headers from a trusted peer. Invariants: no panic; the answer is always a
// valid address; it is the peer itself or an address written in a header.
func FuzzClientIP(f *testing.F) {
	f.Add(`for=192.0.2.60;proto=http;by=203.0.113.43`, "")
	f.Add(`for="[2001:db8:cafe::17]:4711", for=unknown`, "")
	f.Add(`for=_hidden, for=198.51.100.17`, "")
	f.Add("", "203.0.113.195, 70.41.3.18, 150.172.238.178")
	f.Add("", " , ,::ffff:10.0.0.1,")
	f.Add(`for="`, "1.2.3.4:80")
	fwd := forwarding{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}}
	f.Fuzz(func(t *testing.T, forwarded, xff string) {
		r := &http.Request{RemoteAddr: "127.0.0.1:1234", Header: http.Header{}}
		if forwarded != "" {
			r.Header.Set("Forwarded", forwarded)
		}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		ip := fwd.clientIP(r)
		if !ip.IsValid() {
			t.Fatalf("invalid client IP for Forwarded %q X-Forwarded-For %q", forwarded, xff)
		}
		if ip.Is4In6() {
			t.Fatalf("client IP %v not unmapped", ip)
		}
		scheme, host := fwd.origin(r)
		if scheme != "http" && scheme != "https" {
			t.Fatalf("scheme %q", scheme)
		}
		if !validHost(host) && host != "" {
			t.Fatalf("host %q", host)
		}
	})
}

func TestClientIPChain(t *testing.T) {
	fwd := forwarding{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tt := range []struct {
		remote, forwarded, xff, want string
	}{
		{"203.0.113.1:5", "", "198.51.100.1", "203.0.113.1"},                        // untrusted peer: headers ignored
		{"10.0.0.2:5", "", "198.51.100.1, 10.0.0.3", "198.51.100.1"},                // skip trusted hops from the right
		{"10.0.0.2:5", "", "6.6.6.6, 198.51.100.1", "198.51.100.1"},                 // a spoofed left part is not believed
		{"10.0.0.2:5", `for=198.51.100.7, for=10.1.1.1`, "9.9.9.9", "198.51.100.7"}, // Forwarded wins over X-Forwarded-For
		{"10.0.0.2:5", `for=unknown`, "", "10.0.0.2"},                               // unparseable: stop at the last trusted hop
		{"10.0.0.2:5", "", "10.0.0.9", "10.0.0.9"},                                  // all trusted: the leftmost
		{"[::ffff:10.0.0.2]:5", "", "198.51.100.1", "198.51.100.1"},                 // IPv4-mapped peer
	} {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if tt.forwarded != "" {
			r.Header.Set("Forwarded", tt.forwarded)
		}
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := fwd.clientIP(r).String(); got != tt.want {
			t.Errorf("%+v: got %s", tt, got)
		}
	}
}
