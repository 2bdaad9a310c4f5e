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
	tests := []struct {
		name     string
		policy   kinescope.EndpointPolicy
		endpoint string
		ok       bool
	}{
		{"https on the listed host", production, "https://kinescope.io/v2/upload/abc", true},
		{"https on a subdomain", production, "https://eu.uploader.kinescope.io/v2/upload/abc?sig=1", true},
		{"https with a port", production, "https://uploader.kinescope.io:8443/v2/upload/abc", true},
		{"host compared case-insensitively", production, "HTTPS://Uploader.Kinescope.IO/x", true},
		{"listed host compared case-insensitively", kinescope.EndpointPolicy{Hosts: []string{" Kinescope.IO "}}, "https://kinescope.io/x", true},
		{"evil suffix is not a subdomain", production, "https://evilkinescope.io/v2/upload/abc", false},
		{"listed host as a prefix", production, "https://kinescope.io.evil.com/x", false},
		{"unlisted host", production, "https://example.com/x", false},
		{"trailing dot", production, "https://kinescope.io./x", false},
		{"plain http on kinescope", production, "http://uploader.kinescope.io/x", false},
		{"plain http on 127.0.0.1 unless listed", production, "http://127.0.0.1:9000/x", false},
		{"plain http on listed 127.0.0.1", withLoopback, "http://127.0.0.1:9000/v2/upload/abc", true},
		{"plain http on listed ::1", withLoopback, "http://[::1]:9000/x", true},
		{"plain http on listed localhost", withLoopback, "http://localhost:9000/x", true},
		{"plain http on a listed non-loopback host", kinescope.EndpointPolicy{Hosts: []string{"10.0.0.5"}}, "http://10.0.0.5/x", false},
		{"https on listed 127.0.0.1", withLoopback, "https://127.0.0.1:9443/x", true},
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
