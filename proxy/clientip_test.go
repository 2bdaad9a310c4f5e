package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Every request below carries all three forwarding headers, each naming
// another address, as a client behind a proxy that rewrites only one of
// them could send. Only the header chosen counts, for Kinescope's
// client_ip, the auth hook's client.ip and Location alike.
func TestOneForwardingHeaderBelieved(t *testing.T) {
	headers := map[string]string{
		"Upload-Length":     "10",
		"Authorization":     "Bearer alice-session",
		"X-Forwarded-For":   "6.6.6.6, 203.0.113.10",
		"Forwarded":         "for=7.7.7.7;host=evil.example;proto=https, for=203.0.113.20;host=fw.example;proto=http",
		"X-Real-IP":         "203.0.113.30",
		"X-Forwarded-Host":  "evil.example, up.example",
		"X-Forwarded-Proto": "https",
	}
	for _, tt := range []struct {
		header, wantIP, wantOrigin string
	}{
		{"", "203.0.113.10", "https://up.example"}, // the default: x-forwarded-for
		{"x-forwarded-for", "203.0.113.10", "https://up.example"},
		{"forwarded", "203.0.113.20", "http://fw.example"},
		{"x-real-ip", "203.0.113.30", "https://up.example"},
	} {
		t.Run("header="+tt.header, func(t *testing.T) {
			hook := newHookServer(t, ownerByToken)
			vars := map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.1", "TUSPROXY_AUTH_HOOK_URL": hook.URL}
			if tt.header != "" {
				vars["TUSPROXY_CLIENT_IP_HEADER"] = tt.header
			}
			e := newEnv(t, vars)
			resp := e.do(http.MethodPost, e.base, headers, nil)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("create: %d", resp.StatusCode)
			}
			if ip := e.emu.Videos()[0].ClientIP; ip != tt.wantIP {
				t.Errorf("Kinescope got client_ip %q, want %q", ip, tt.wantIP)
			}
			client, _ := hook.lastRequest()["client"].(map[string]any)
			if ip := client["ip"]; ip != tt.wantIP {
				t.Errorf("the auth hook got client.ip %v, want %q", ip, tt.wantIP)
			}
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, tt.wantOrigin+"/files/") {
				t.Errorf("Location %q, want it on %s", loc, tt.wantOrigin)
			}
		})
	}
}

// A client behind the README's nginx (which rewrites X-Forwarded-For only)
// rotates the headers tusproxy does not read: the creation rate still
// counts its one address.
func TestForgedHeadersDoNotEscapeCreateRate(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.1", "TUSPROXY_CREATE_RATE": "3"})
	var created int
	for i := 1; i <= 6; i++ {
		resp := e.do(http.MethodPost, e.base, map[string]string{
			"Upload-Length":   "10",
			"Forwarded":       fmt.Sprintf("for=7.7.7.%d", i),
			"X-Real-IP":       fmt.Sprintf("8.8.8.%d", i),
			"X-Forwarded-For": "198.51.100.1",
		}, nil)
		if resp.StatusCode == http.StatusCreated {
			created++
		}
	}
	if created != 3 {
		t.Errorf("%d creations passed at a rate of 3", created)
	}
	for _, v := range e.emu.Videos() {
		if v.ClientIP != "198.51.100.1" {
			t.Errorf("client_ip %q, want 198.51.100.1 from X-Forwarded-For", v.ClientIP)
		}
	}
}

// One host rotating through the addresses of its /64 is one client to the
// per-address limits; IPv4 (mapped or not) is counted by the address.
func TestCreateRateKeysIPv6ByPrefix64(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.1", "TUSPROXY_CREATE_RATE": "3"})
	create := func(client string) int {
		return e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "X-Forwarded-For": client}, nil).StatusCode
	}
	var created int
	for i := 1; i <= 6; i++ {
		if create(fmt.Sprintf("2001:db8:1:2::%x", i*0x1111)) == http.StatusCreated {
			created++
		}
	}
	if created != 3 {
		t.Errorf("6 addresses of one /64: %d creations passed at a rate of 3", created)
	}
	if status := create("2001:db8:1:3::1"); status != http.StatusCreated {
		t.Errorf("another /64: %d", status)
	}
	for i := 0; i < 3; i++ {
		create("203.0.113.9")
	}
	if status := create("::ffff:203.0.113.9"); status != http.StatusTooManyRequests {
		t.Errorf("IPv4-mapped form of a limited IPv4 address: %d, want 429", status)
	}
	if status := create("203.0.113.10"); status != http.StatusCreated {
		t.Errorf("the next IPv4 address: %d", status)
	}
}
