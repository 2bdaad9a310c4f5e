package proxy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestCreateCallsKinescopeInit(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("я", 150) // 150 runes, 300 bytes
	resp := e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length":   "12345",
		"Upload-Metadata": meta("filename", "holiday.mp4", "title", long, "description", "from the beach", "filetype", "video/mp4"),
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, e.base) || len(loc) != len(e.base)+32 {
		t.Fatalf("Location %q: want tusproxy's origin, base path and a 32-character id", loc)
	}
	if resp.Header.Get("Upload-Expires") == "" || resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Errorf("creation answer lacks Upload-Expires or Tus-Resumable: %v", resp.Header)
	}
	videos := e.emu.Videos()
	if len(videos) != 1 {
		t.Fatalf("emulator has %d videos, want 1", len(videos))
	}
	v := videos[0]
	if v.ParentID != "project-1" || v.Type != "video" || v.Filename != "holiday.mp4" ||
		v.Description != "from the beach" || v.Filesize != 12345 || v.ClientIP != "127.0.0.1" {
		t.Errorf("init request fields: %+v", v)
	}
	if got := []rune(v.Title); len(got) != 140 || string(got) != string([]rune(long)[:140]) {
		t.Errorf("title not cut to 140 characters: %d runes", len(got))
	}
	if strings.Contains(loc, v.UploadID) {
		t.Errorf("Location reveals the Kinescope endpoint")
	}
	// Title falls back to the file name.
	e.create(10, meta("filename", "only-name.mov"))
	if v := e.emu.Videos()[1]; v.Title != "only-name.mov" {
		t.Errorf("title %q, want the filename", v.Title)
	}
}

func TestCreateLocationUsesPublicURL(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_PUBLIC_URL": "https://uploads.example.com/"})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://uploads.example.com/files/") {
		t.Fatalf("Location %q does not use TUSPROXY_PUBLIC_URL", loc)
	}
}

func TestForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	headers := map[string]string{
		"Upload-Length":     "10",
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.2",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "videos.example.org",
	}
	// Untrusted peer: the headers are ignored.
	e := newEnv(t, nil)
	resp := e.do(http.MethodPost, e.base, headers, nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, e.base) {
		t.Errorf("untrusted X-Forwarded-Host changed Location: %q", loc)
	}
	if ip := e.emu.Videos()[0].ClientIP; ip != "127.0.0.1" {
		t.Errorf("untrusted X-Forwarded-For used: client_ip %q", ip)
	}
	// Trusted peer (loopback) and a trusted hop inside the chain.
	e = newEnv(t, map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.0/8,198.51.100.0/24"})
	resp = e.do(http.MethodPost, e.base, headers, nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://videos.example.org/files/") {
		t.Errorf("trusted X-Forwarded-* ignored: Location %q", loc)
	}
	if ip := e.emu.Videos()[0].ClientIP; ip != "203.0.113.7" {
		t.Errorf("client_ip %q, want 203.0.113.7", ip)
	}
	// RFC 7239 Forwarded, when it is the header chosen.
	e = newEnv(t, map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.0/8,198.51.100.0/24", "TUSPROXY_CLIENT_IP_HEADER": "forwarded"})
	resp = e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length": "10",
		"Forwarded":     `for="[2001:db8::9]:4711";proto=https;host=fw.example.org, for=198.51.100.9`,
	}, nil)
	if ip := e.emu.Videos()[0].ClientIP; ip != "2001:db8::9" {
		t.Errorf("client_ip from Forwarded %q, want 2001:db8::9", ip)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://fw.example.org/files/") {
		t.Errorf("Forwarded host/proto ignored: %q", loc)
	}
}

func TestCreateWithUpload(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(600_000)
	resp := e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length": itoa(int64(len(data))), "Content-Type": "application/offset+octet-stream",
	}, data[:250_000])
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Upload-Offset"); got != "250000" {
		t.Fatalf("Upload-Offset %q, want 250000", got)
	}
	loc := resp.Header.Get("Location")
	if r := e.patch(loc, 250_000, data[250_000:]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestCreateWithUploadUpstreamFailureKeepsLocation(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "4MiB"})
	data := testkit.RandomBytes(500_000)
	e.emu.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 100_000})
	resp := e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length": itoa(int64(len(data))), "Content-Type": "application/offset+octet-stream",
	}, data)
	e.emu.SetFaults(kinescopetest.Faults{})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") == "" {
		t.Fatalf("status %d, Location %q: the upload exists and the client must learn its URL", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := resp.Header.Get("Upload-Offset"); got != "100000" {
		t.Fatalf("Upload-Offset %q, want the 100000 bytes the upstream kept", got)
	}
	loc := resp.Header.Get("Location")
	if r := e.patch(loc, 100_000, data[100_000:]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("resume: %d", r.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestCreateBadInput(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_MAX_SIZE": "1MiB"})
	octet := "application/offset+octet-stream"
	tests := []struct {
		name    string
		headers map[string]string
		body    []byte
		status  int
		want    string
	}{
		{"missing Tus-Resumable", map[string]string{"Tus-Resumable": "", "Upload-Length": "10"}, nil, 412, "Tus-Resumable"},
		{"wrong Tus-Resumable", map[string]string{"Tus-Resumable": "2.0.0", "Upload-Length": "10"}, nil, 412, "Tus-Resumable"},
		{"missing Upload-Length", map[string]string{}, nil, 400, "Upload-Length"},
		{"negative Upload-Length", map[string]string{"Upload-Length": "-5"}, nil, 400, "Upload-Length"},
		{"non-numeric Upload-Length", map[string]string{"Upload-Length": "ten"}, nil, 400, "Upload-Length"},
		{"zero Upload-Length", map[string]string{"Upload-Length": "0"}, nil, 400, "greater than 0"},
		{"Upload-Length too large", map[string]string{"Upload-Length": "1048577"}, nil, 413, "maximum"},
		{"Upload-Length overflows", map[string]string{"Upload-Length": "99999999999999999999999"}, nil, 400, "Upload-Length"},
		{"Upload-Defer-Length", map[string]string{"Upload-Defer-Length": "1"}, nil, 400, "Upload-Defer-Length"},
		{"Upload-Concat partial", map[string]string{"Upload-Length": "10", "Upload-Concat": "partial"}, nil, 400, "parallelUploads"},
		{"Upload-Concat final", map[string]string{"Upload-Concat": "final;/files/a /files/b"}, nil, 400, "Upload-Concat"},
		{"metadata bad base64", map[string]string{"Upload-Length": "10", "Upload-Metadata": "filename !!!"}, nil, 400, "base64"},
		{"metadata duplicate key", map[string]string{"Upload-Length": "10", "Upload-Metadata": meta("a", "1", "a", "2")}, nil, 400, "duplicate"},
		{"metadata key with space", map[string]string{"Upload-Length": "10", "Upload-Metadata": "file name YQ== x"}, nil, 400, "Upload-Metadata"},
		{"body with wrong content type", map[string]string{"Upload-Length": "10", "Content-Type": "text/plain"}, []byte("hello"), 415, "Content-Type"},
		{"body longer than Upload-Length", map[string]string{"Upload-Length": "3", "Content-Type": octet}, []byte("hello"), 413, "Upload-Length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.emu.Stats().Init
			resp, body := e.doBody(http.MethodPost, e.base, tt.headers, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not mention %q", body, tt.want)
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("refused creation has a Location")
			}
			if tt.status == 412 && resp.Header.Get("Tus-Version") != "1.0.0" {
				t.Errorf("412 without Tus-Version")
			}
			if after := e.emu.Stats().Init; after != before {
				t.Errorf("a refused request called Kinescope /v2/init")
			}
		})
	}
	if n := len(e.emu.Videos()); n != 0 {
		t.Errorf("refused requests created %d Kinescope videos", n)
	}
}

func TestCreateKinescopeFailures(t *testing.T) {
	tests := []struct {
		name       string
		faults     kinescopetest.Faults
		status     int
		want       string
		retryAfter bool
	}{
		{"401 credentials", kinescopetest.Faults{InitStatus: 401}, 502, "credentials", false},
		{"403 access denied", kinescopetest.Faults{InitStatus: 403}, 502, "credentials", false},
		{"402 limit", kinescopetest.Faults{InitStatus: 402, InitBody: `{"error":{"code":100106,"message":"Limit reached","detail":"storage quota exceeded"}}`}, 403, "refused the upload", false},
		{"400 bad request", kinescopetest.Faults{InitStatus: 400, InitBody: `{"error":{"code":400101,"message":"filesize is too big"}}`}, 400, "rejected the upload", false},
		{"429 rate limited", kinescopetest.Faults{InitStatus: 429}, 503, "retry", true},
		{"500", kinescopetest.Faults{InitStatus: 500}, 503, "unavailable", true},
		{"garbage JSON", kinescopetest.Faults{InitStatus: 201, InitBody: `{"data": {"id": `}, 502, "Kinescope", false},
		{"no endpoint", kinescopetest.Faults{InitStatus: 201, InitBody: `{"data": {"id": "v1"}}`}, 502, "Kinescope", false},
		{"nothing at all", kinescopetest.Faults{InitDrop: true}, 503, "unavailable", true},
		{"timeout", kinescopetest.Faults{InitDelay: 4 * time.Second}, 504, "in time", true},
		{"non-https endpoint", kinescopetest.Faults{InitEndpoint: func(ep string) string {
			return strings.Replace(ep, "http://127.0.0.1", "http://localhost", 1)
		}}, 502, "not allowed", false},
		{"foreign host endpoint", kinescopetest.Faults{InitEndpoint: func(ep string) string {
			return "https://evil.example.com/v2/upload/x"
		}}, 502, "not allowed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.emu.SetFaults(tt.faults)
			resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "100"}, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not mention %q", body, tt.want)
			}
			if got := resp.Header.Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After present %v, want %v", got, tt.retryAfter)
			}
			if strings.Contains(body, testToken) || strings.Contains(body, e.emu.URL) {
				t.Errorf("answer leaks the token or the upstream: %s", body)
			}
			if resp.Header.Get("Location") != "" {
				t.Errorf("failed creation answered a Location")
			}
		})
	}
}
