package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// The nginx blocks the README and deploy/ tell operators to use, run under
// real nginx in front of tusproxy and attacked the way a client on the
// internet would: forged Forwarded, X-Real-IP and X-Forwarded-* headers.
// The blocks are read from the files themselves, so the documentation and
// this test cannot drift apart.

// nginxBlocks are the configurations under test: a location block taken
// from a file.
var nginxBlocks = []struct {
	name, file string
	extract    func(text string) (string, error)
}{
	{"README", "../README.md", readmeNginxLocation},
	{"deploy", "../deploy/nginx.conf", func(text string) (string, error) { return locationBlock(text, "/") }},
}

// attackHeaders each try to make tusproxy believe another client address or
// another origin than nginx saw.
var attackHeaders = []map[string]string{
	{"Forwarded": "for=7.7.7.7"},
	{"X-Real-IP": "7.7.7.7"},
	{"X-Forwarded-For": "6.6.6.6"},
	{"Forwarded": "host=evil.example;proto=https"},
	{"Forwarded": "for=7.7.7.7;host=evil.example;proto=https", "X-Real-IP": "7.7.7.7", "X-Forwarded-For": "6.6.6.6, 7.7.7.7"},
	{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
}

// clientAddr is where the test's client connects to nginx from: a loopback
// address other than nginx's own (127.0.0.1, the one trusted proxy), so a
// forged header that got believed would show.
const clientAddr = "127.0.0.2"

func TestNginxBlocksStopForgedClientAddresses(t *testing.T) {
	nginx := nginxBinary(t)
	for _, block := range nginxBlocks {
		t.Run(block.name, func(t *testing.T) {
			location := readBlock(t, block.file, block.extract)
			hook := newHookServer(t, ownerByToken)
			e := newEnv(t, map[string]string{
				"TUSPROXY_TRUSTED_PROXIES": "127.0.0.1",
				"TUSPROXY_AUTH_HOOK_URL":   hook.URL,
				"TUSPROXY_AUTH_CACHE_TTL":  "0", // every creation asks the hook
			})
			front := startNginx(t, nginx, location, e.srv.Listener.Addr().String())
			client := clientFrom(t, clientAddr)

			create := func(headers map[string]string) *http.Response {
				t.Helper()
				req := testkit.TusRequest(t, http.MethodPost, front+e.cfg.BasePath, nil,
					"Upload-Length", "10", "Authorization", "Bearer alice-session")
				for k, v := range headers {
					req.Header.Set(k, v)
				}
				resp, _ := testkit.Send(t, client, req)
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("POST through nginx with %v: %d", headers, resp.StatusCode)
				}
				return resp
			}
			origin := func(loc string) string {
				u, err := url.Parse(loc)
				if err != nil || u.Host == "" {
					t.Fatalf("Location %q is not an absolute URL", loc)
				}
				return u.Scheme + "://" + u.Host
			}

			honest := origin(create(nil).Header.Get("Location"))
			for _, attack := range attackHeaders {
				loc := create(attack).Header.Get("Location")
				if got := origin(loc); got != honest || strings.Contains(loc, "evil") {
					t.Errorf("%v: Location %q, want it on %s as without the header", attack, loc, honest)
				}
				if ip := e.video(loc).ClientIP; ip != clientAddr {
					t.Errorf("%v: Kinescope got client_ip %q, want %s", attack, ip, clientAddr)
				}
				c, _ := hook.lastRequest()["client"].(map[string]any)
				if ip := c["ip"]; ip != clientAddr {
					t.Errorf("%v: the auth hook got client.ip %v, want %s", attack, ip, clientAddr)
				}
			}
		})
	}
}

func TestNginxBlocksKeepTheCreateRate(t *testing.T) {
	nginx := nginxBinary(t)
	for _, block := range nginxBlocks {
		t.Run(block.name, func(t *testing.T) {
			location := readBlock(t, block.file, block.extract)
			e := newEnv(t, map[string]string{"TUSPROXY_TRUSTED_PROXIES": "127.0.0.1", "TUSPROXY_CREATE_RATE": "3"})
			front := startNginx(t, nginx, location, e.srv.Listener.Addr().String())
			client := clientFrom(t, clientAddr)
			var statuses []int
			for i := 1; i <= 4; i++ {
				// A new forged address in every header, each creation.
				resp, _ := testkit.Tus(t, client, http.MethodPost, front+e.cfg.BasePath, nil,
					"Upload-Length", "10",
					"Forwarded", fmt.Sprintf("for=7.7.7.%d", i),
					"X-Real-IP", fmt.Sprintf("8.8.8.%d", i),
					"X-Forwarded-For", fmt.Sprintf("6.6.6.%d", i))
				statuses = append(statuses, resp.StatusCode)
			}
			want := []int{http.StatusCreated, http.StatusCreated, http.StatusCreated, http.StatusTooManyRequests}
			if fmt.Sprint(statuses) != fmt.Sprint(want) {
				t.Errorf("4 creations at a rate of 3 with rotating forged headers: %v, want %v", statuses, want)
			}
			for _, v := range e.emu.Videos() {
				if v.ClientIP != clientAddr {
					t.Errorf("Kinescope got client_ip %q, want %s", v.ClientIP, clientAddr)
				}
			}
		})
	}
}

// nginxBinary finds nginx, or skips the test unless TUSPROXY_NGINX_REQUIRED
// says a run must not pass by skipping it (.ci/test sets it).
func nginxBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("TUSPROXY_NGINX_REQUIRED") == "1" {
		t.Fatal("nginx is not installed and TUSPROXY_NGINX_REQUIRED=1 (apt-get install nginx)")
	}
	t.Skip("nginx is not installed (apt-get install nginx); set TUSPROXY_NGINX_REQUIRED=1 to fail instead")
	return ""
}

func readBlock(t *testing.T, file string, extract func(string) (string, error)) string {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, err := extract(string(text))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return block
}

// readmeNginxLocation is the location block of the nginx code block in the
// README's "Behind nginx" section.
func readmeNginxLocation(readme string) (string, error) {
	start := strings.Index(readme, "\n## Behind nginx\n")
	if start < 0 {
		return "", fmt.Errorf(`no "## Behind nginx" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	open := strings.Index(section, "```nginx\n")
	if open < 0 {
		return "", fmt.Errorf("no ```nginx block in the Behind nginx section")
	}
	code := section[open+len("```nginx\n"):]
	code, _, ok := strings.Cut(code, "```")
	if !ok {
		return "", fmt.Errorf("unterminated ```nginx block")
	}
	return locationBlock(code, "")
}

var locationStart = regexp.MustCompile(`(?m)^\s*location\s+(\S+)\s*\{`)

// locationBlock returns the first "location <path> { ... }" of an nginx
// configuration (any path when path is ""), braces matched outside comments
// and quoted strings.
func locationBlock(conf, path string) (string, error) {
	for _, m := range locationStart.FindAllStringSubmatchIndex(conf, -1) {
		if path != "" && conf[m[2]:m[3]] != path {
			continue
		}
		depth, quote, comment := 0, byte(0), false
		for i := m[1] - 1; i < len(conf); i++ {
			c := conf[i]
			switch {
			case comment:
				comment = c != '\n'
			case quote != 0:
				if c == '\\' {
					i++
				} else if c == quote {
					quote = 0
				}
			case c == '#':
				comment = true
			case c == '"' || c == '\'':
				quote = c
			case c == '{':
				depth++
			case c == '}':
				if depth--; depth == 0 {
					return conf[m[0]:i+1] + "\n", nil
				}
			}
		}
		return "", fmt.Errorf("location %s has no closing brace", conf[m[2]:m[3]])
	}
	return "", fmt.Errorf("no location %q block", path)
}

var proxyPass = regexp.MustCompile(`proxy_pass\s+http://[^;/\s]+`)

// startNginx runs nginx in the foreground with location inside a minimal
// server on a free loopback port, its proxy_pass pointed at upstream
// (host:port), every path it writes under t.TempDir(). It returns nginx's
// base URL and stops nginx when the test ends.
func startNginx(t *testing.T, nginx, location, upstream string) string {
	t.Helper()
	if n := len(proxyPass.FindAllString(location, -1)); n != 1 {
		t.Fatalf("the location block has %d proxy_pass http:// lines, want 1:\n%s", n, location)
	}
	location = proxyPass.ReplaceAllString(location, "proxy_pass http://tusproxy_under_test")
	dir := t.TempDir()
	listen := testkit.FreeAddr(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream tusproxy_under_test {
        server %[2]s;
        keepalive 8;
    }
    server {
        listen %[3]s;
%[4]s
    }
}
`, dir, upstream, listen, location)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	var output testkit.SyncBuffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return output.String() + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nginx exited (%v):\n%s\nconfiguration:\n%s", err, errorLog(), conf)
		case <-ctx.Done():
			t.Fatalf("nginx did not listen on %s:\n%s", listen, errorLog())
		case <-time.After(20 * time.Millisecond):
		}
		if conn, err := net.Dial("tcp", listen); err == nil {
			conn.Close()
			return "http://" + listen
		}
	}
}

// clientFrom is an HTTP client whose connections come from the local
// address ip.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	probe, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("cannot use %s as a client address: %v", ip, err)
	}
	probe.Close()
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Timeout: 10 * time.Second}
}
