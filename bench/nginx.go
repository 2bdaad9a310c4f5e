package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// nginxEnv names the nginx binary; default nginxDefault or nginx on PATH.
// nginxRequiredEnv=1 makes a missing nginx an error instead of a note.
const (
	nginxEnv         = "TUSBENCH_NGINX"
	nginxDefault     = "/usr/sbin/nginx"
	nginxRequiredEnv = "TUSBENCH_NGINX_REQUIRED"
)

// findNginx returns the nginx binary, or "" and why there is none.
func findNginx(getenv func(string) string) (string, string) {
	if bin := getenv(nginxEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Sprintf("%s=%s: %v", nginxEnv, bin, err)
		}
		return bin, ""
	}
	if _, err := os.Stat(nginxDefault); err == nil {
		return nginxDefault, ""
	}
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin, ""
	}
	return "", fmt.Sprintf("no nginx at %s or on PATH (set %s, or install Debian's nginx)", nginxDefault, nginxEnv)
}

// nginxWorkers is worker_processes: 2, what "auto" gives on the 2-core
// machine the benchmark is written for, and the cores the Go hops may use
// (GOMAXPROCS is the number of cores). With one worker nginx could never
// use more than one core while tusproxy and the reverse proxy use two, and
// in the single-stream workloads one worker handles the stream anyway.
const nginxWorkers = 2

// nginxConfig is the configuration of an nginx peer: the least tuning an
// operator streaming tus uploads through nginx does (request bodies are not
// buffered, HTTP/1.1 with keep-alive to the upstream, no body size limit),
// and nothing else changed from Debian's defaults.
var nginxConfig = template.Must(template.New("nginx.conf").Parse(`# Written by the tusproxy bench; see bench/nginx.go.
daemon off;
master_process on;
worker_processes {{.Workers}};
worker_rlimit_nofile {{.Files}};
{{if .Root}}user root;
{{end}}error_log stderr warn;
pid {{.Dir}}/nginx.pid;

events {
	worker_connections {{.Connections}};
}

http {
	access_log off;
	client_body_temp_path {{.Dir}}/client_body;
	proxy_temp_path {{.Dir}}/proxy;
	fastcgi_temp_path {{.Dir}}/fastcgi;
	uwsgi_temp_path {{.Dir}}/uwsgi;
	scgi_temp_path {{.Dir}}/scgi;

	upstream emulator {
		server {{.Upstream}};
		keepalive {{.Keepalive}};
	}

	server {
		listen {{.Listen}};
		client_max_body_size 0;
		client_body_buffer_size {{.BodyBuffer}};

		location / {
			proxy_pass {{.Scheme}}://emulator;
			proxy_request_buffering off;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			# The emulator names itself, from Host, in the endpoints it issues.
			proxy_set_header Host {{.Upstream}};
{{if .CAFile}}			proxy_ssl_trusted_certificate {{.CAFile}};
			proxy_ssl_verify on;
			proxy_ssl_server_name on;
			proxy_ssl_name {{.ServerName}};
			proxy_ssl_session_reuse on;
{{end}}		}
	}
}
`))

// nginxKeepalive is the upstream block's idle connection cache, the same
// 256 the reverse proxy keeps.
const nginxKeepalive = 256

// startNginx starts nginx as a peer in front of upstream (the emulator's
// base URL) with the given client_body_buffer_size, its configuration,
// pid file and temporary directories in a directory of its own under dir.
// caFile is the CA to verify the upstream with; "" for plain HTTP. files is
// the most connections it must hold at once (client and upstream sides).
func startNginx(bin, dir, name, bodyBuffer, upstream, caFile string, files int) (*child, string, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	prefix := filepath.Join(dir, name)
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, "", err
	}
	// worker_rlimit_nofile above the hard limit would only make each
	// worker log that it could not set it.
	rlimit := files + 1024
	var limit syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit) == nil {
		rlimit = min(rlimit, int(limit.Max))
	}
	var conf strings.Builder
	err = nginxConfig.Execute(&conf, map[string]any{
		"Workers": nginxWorkers, "Files": rlimit, "Connections": files + 512,
		// nginx started by root switches its workers to nobody, who could
		// not write the temporary directories.
		"Root": os.Geteuid() == 0, "Dir": prefix,
		"Upstream": u.Host, "Keepalive": nginxKeepalive, "Listen": addr, "BodyBuffer": bodyBuffer,
		"Scheme": u.Scheme, "CAFile": caFile, "ServerName": tlsServerName,
	})
	if err != nil {
		return nil, "", err
	}
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o644); err != nil {
		return nil, "", err
	}
	// -e: the error log before the configuration is read, which would
	// otherwise be /var/log/nginx/error.log.
	c, stdout, err := startChild(name, bin, []string{"-p", prefix + "/", "-c", confFile, "-e", "stderr"}, nil)
	if err != nil {
		return nil, "", err
	}
	c.tree = true
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	baseURL := "http://" + addr
	// Ready once a request goes through to the emulator: any answer but a
	// gateway error (with TLS, 502 is also what a failed verification
	// gives).
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(baseURL + videoPath + "?filename=nginx-ready-check")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
				client.CloseIdleConnections()
				return c, baseURL, nil
			}
		}
		if !c.running() {
			return nil, "", fmt.Errorf("%s exited at start: %v: %s", name, c.err, c.stderr.String())
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, "", fmt.Errorf("%s did not pass a request to the emulator within 30s: %v: %s", name, err, c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
