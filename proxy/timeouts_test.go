package proxy_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// stuckUpstream accepts connections, reads the request headers and then
// never reads another byte: an upstream that stops taking a PATCH body.
func stuckUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	t.Cleanup(func() {
		close(release)
		ln.Close()
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				<-release // until the test ends
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestUpstreamThatStopsReadingIsCut(t *testing.T) {
	stuck := stuckUpstream(t)
	e := newEnv(t, map[string]string{
		"TUSPROXY_UPSTREAM_IDLE_TIMEOUT": "300ms",
		"TUSPROXY_UPSTREAM_CHUNK_SIZE":   "64MiB",
		"TUSPROXY_UPSTREAM_TIMEOUT":      "1s",
		"TUSPROXY_UPSTREAM_HOSTS":        "{init}," + strings.TrimPrefix(stuck, "http://"),
	})
	e.emu.SetFaults(kinescopetest.Faults{InitEndpoint: func(ep string) string {
		return stuck + ep[strings.Index(ep, "/v2/"):]
	}})
	const size = 48 << 20 // far more than loopback socket buffers hold
	loc := e.create(size, "")
	e.emu.SetFaults(kinescopetest.Faults{})
	// The stuck upstream never lets go; without the idle timeout the PATCH
	// would hang until the client gives up.
	req := testkit.TusRequest(t, http.MethodPatch, loc, bytes.NewReader(make([]byte, size)),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("PATCH to an upstream that stopped reading never got an answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("PATCH to an upstream that stopped reading: %d, want 502 or 504", resp.StatusCode)
	}
}

func TestHookMaxSizeCapsOneUpload(t *testing.T) {
	hook := newHookServer(t, func(map[string]any) (int, string) { return 200, `{"max_size": 1000}` })
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL})
	if resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "1001"}, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the hook's max_size: %d, want 413", resp.StatusCode)
	}
	if resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "1000"}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("at the hook's max_size: %d", resp.StatusCode)
	}
	if n := len(e.emu.Videos()); n != 1 {
		t.Fatalf("%d videos, want 1", n)
	}
}
