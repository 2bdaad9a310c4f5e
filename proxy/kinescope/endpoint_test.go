package kinescope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
)

func TestEndpointPolicy(t *testing.T) {
	production := kinescope.EndpointPolicy{Hosts: []string{"kinescope.io"}}
	withLoopback := kinescope.EndpointPolicy{Hosts: []string{"kinescope.io", "127.0.0.1", "::1", "LocalHost"}}
	withPorts := kinescope.EndpointPolicy{Hosts: []string{"kinescope.io:8443", "127.0.0.1:9000", "[::1]:9000"}}
	tests := []struct {
		name     string
		policy   kinescope.EndpointPolicy
		endpoint string
		ok       bool
	}{
		{"https on the listed host", production, "https://kinescope.io/v2/upload/abc", true},
		{"https on a subdomain", production, "https://eu.uploader.kinescope.io/v2/upload/abc?sig=1", true},
		{"https on another port", production, "https://uploader.kinescope.io:8443/v2/upload/abc", false},
		{"https on a local service's port", production, "https://uploader.kinescope.io:6379/", false},
		{"https on the default port written out", production, "https://uploader.kinescope.io:443/v2/upload/abc", true},
		{"https on port 80", production, "https://uploader.kinescope.io:80/x", false},
		{"https with an empty port", production, "https://uploader.kinescope.io:/x", true},
		{"port with a leading zero", production, "https://uploader.kinescope.io:0443/x", false},
		{"port zero", withPorts, "https://kinescope.io:0/x", false},
		{"port out of range", withPorts, "https://kinescope.io:70000/x", false},
		{"listed port", withPorts, "https://eu.kinescope.io:8443/x", true},
		{"listed port does not allow the default one", withPorts, "https://kinescope.io/x", false},
		{"unlisted port next to a listed one", withPorts, "https://kinescope.io:8444/x", false},
		{"host and host:port both listed", kinescope.EndpointPolicy{Hosts: []string{"kinescope.io", "kinescope.io:8443"}}, "https://kinescope.io/x", true},
		{"listed loopback port over http", withPorts, "http://127.0.0.1:9000/x", true},
		{"other loopback port over http", withPorts, "http://127.0.0.1:6379/x", false},
		{"listed IPv6 port", withPorts, "http://[::1]:9000/x", true},
		{"other IPv6 port", withPorts, "http://[::1]:9001/x", false},
		{"malformed entry allows nothing", kinescope.EndpointPolicy{Hosts: []string{"kinescope.io:http"}}, "https://kinescope.io/x", false},
		{"bracketed name entry allows nothing", kinescope.EndpointPolicy{Hosts: []string{"[kinescope.io]:443"}}, "https://kinescope.io/x", false},
		{"host compared case-insensitively", production, "HTTPS://Uploader.Kinescope.IO/x", true},
		{"listed host compared case-insensitively", kinescope.EndpointPolicy{Hosts: []string{" Kinescope.IO "}}, "https://kinescope.io/x", true},
		{"evil suffix is not a subdomain", production, "https://evilkinescope.io/v2/upload/abc", false},
		{"listed host as a prefix", production, "https://kinescope.io.evil.com/x", false},
		{"unlisted host", production, "https://example.com/x", false},
		{"trailing dot", production, "https://kinescope.io./x", false},
		{"plain http on kinescope", production, "http://uploader.kinescope.io/x", false},
		{"plain http on 127.0.0.1 unless listed", production, "http://127.0.0.1:9000/x", false},
		{"plain http on listed 127.0.0.1", withLoopback, "http://127.0.0.1/v2/upload/abc", true},
		{"plain http on listed 127.0.0.1, another port", withLoopback, "http://127.0.0.1:9000/v2/upload/abc", false},
		{"plain http on listed ::1", withLoopback, "http://[::1]/x", true},
		{"plain http on listed localhost", withLoopback, "http://localhost:80/x", true},
		{"plain http on a listed non-loopback host", kinescope.EndpointPolicy{Hosts: []string{"10.0.0.5"}}, "http://10.0.0.5/x", false},
		{"https on listed 127.0.0.1", withLoopback, "https://127.0.0.1/x", true},
		{"127.0.0.2 is not listed", withLoopback, "http://127.0.0.2:9000/x", false},
		{"userinfo", production, "https://user:pass@uploader.kinescope.io/x", false},
		{"userinfo without password", production, "https://user@uploader.kinescope.io/x", false},
		{"userinfo hiding the real host", production, "https://kinescope.io@evil.com/x", false},
		{"other scheme", production, "ftp://kinescope.io/x", false},
		{"relative", production, "/v2/upload/abc", false},
		{"scheme-relative", production, "//kinescope.io/x", false},
		{"opaque", production, "https:kinescope.io/x", false},
		{"empty", production, "", false},
		{"garbage", production, "::not a url::", false},
		{"space in URL", production, "https://kinescope.io/a b", false},
		{"backslash", production, `https://evil.com\@kinescope.io/x`, false},
		{"percent-escaped host", production, "https://evil.com%2ekinescope.io/x", false},
		{"IPv6 zone", withLoopback, "http://[::1%25lo]:9000/x", false},
		{"bad port", production, "https://kinescope.io:http/x", false},
		{"empty listed host allows nothing", kinescope.EndpointPolicy{Hosts: []string{""}}, "https://kinescope.io/x", false},
		{"no hosts", kinescope.EndpointPolicy{}, "https://kinescope.io/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.endpoint)
			if tt.ok {
				if err != nil {
					t.Errorf("Check(%q) = %v, want nil", tt.endpoint, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q) = nil, want refusal", tt.endpoint)
			}
			if !errors.Is(err, kinescope.ErrEndpointRefused) {
				t.Errorf("Check(%q) = %v, does not wrap ErrEndpointRefused", tt.endpoint, err)
			}
			if tt.endpoint != "" && strings.Contains(err.Error(), tt.endpoint) {
				t.Errorf("error %q contains the endpoint", err)
			}
			if strings.Contains(err.Error(), "/x") || strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "pass") {
				t.Errorf("error %q contains part of the endpoint's path or credentials", err)
			}
		})
	}
}

func TestEndpointPolicyCheckAddress(t *testing.T) {
	policy := kinescope.EndpointPolicy{Hosts: []string{"kinescope.io", "127.0.0.1:9000", "[::1]:9000"}}
	tests := []struct {
		scheme, host, port string
		ok                 bool
	}{
		{"https", "uploader.kinescope.io", "443", true},
		{"https", "uploader.kinescope.io", "", true},
		{"https", "uploader.kinescope.io", "6379", false},
		{"http", "uploader.kinescope.io", "80", false}, // plain http off loopback
		{"http", "127.0.0.1", "9000", true},
		{"http", "127.0.0.1", "6379", false},
		{"http", "::1", "9000", true},
		{"http", "169.254.169.254", "80", false},
		{"ftp", "uploader.kinescope.io", "443", false},
		{"https", "uploader.kinescope.io", "+443", false},
	}
	for _, tt := range tests {
		err := policy.CheckAddress(tt.scheme, tt.host, tt.port)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAddress(%q, %q, %q) = %v, want ok %v", tt.scheme, tt.host, tt.port, err, tt.ok)
		}
		if err != nil && !errors.Is(err, kinescope.ErrEndpointRefused) {
			t.Errorf("CheckAddress(%q, %q, %q) = %v, does not wrap ErrEndpointRefused", tt.scheme, tt.host, tt.port, err)
		}
	}
}

func TestParseHostEntry(t *testing.T) {
	tests := []struct {
		entry, host, port string
		ok                bool
	}{
		{"kinescope.io", "kinescope.io", "", true},
		{" Kinescope.IO ", "kinescope.io", "", true},
		{"kinescope.io:8443", "kinescope.io", "8443", true},
		{"127.0.0.1", "127.0.0.1", "", true},
		{"127.0.0.1:9000", "127.0.0.1", "9000", true},
		{"::1", "::1", "", true},
		{"[::1]", "::1", "", true},
		{"[::1]:8443", "::1", "8443", true},
		{"", "", "", false},
		{"kinescope.io:", "", "", false},
		{"kinescope.io:0", "", "", false},
		{"kinescope.io:65536", "", "", false},
		{"kinescope.io:0443", "", "", false},
		{"kinescope.io:https", "", "", false},
		{":443", "", "", false},
		{"[::1]:", "", "", false},
		{"[kinescope.io]:443", "", "", false},
		{"[127.0.0.1]:443", "", "", false},
		{"a:b:c", "", "", false},
		{"kinescope.io:443:443", "", "", false},
	}
	for _, tt := range tests {
		host, port, err := kinescope.ParseHostEntry(tt.entry)
		if (err == nil) != tt.ok {
			t.Errorf("ParseHostEntry(%q) error = %v, want ok %v", tt.entry, err, tt.ok)
			continue
		}
		if tt.ok && (host != tt.host || port != tt.port) {
			t.Errorf("ParseHostEntry(%q) = %q, %q; want %q, %q", tt.entry, host, port, tt.host, tt.port)
		}
	}
}
