package proxy_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// logLines are the env's log lines whose msg is msg, decoded.
func (e *env) logLines(msg string) []map[string]any {
	e.t.Helper()
	var lines []map[string]any
	for _, raw := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(raw), &line); err != nil {
			e.t.Fatalf("log line %q: %v", raw, err)
		}
		if line["msg"] == msg {
			lines = append(lines, line)
		}
	}
	return lines
}

// Every answer names its request in X-Request-ID, and the request's log line
// carries the same id. A sender's own id is kept when it is a short token;
// anything else (too long, or with characters that could forge a log field)
// is replaced by a fresh random id and never logged.
func TestRequestIDs(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name string
		sent string // X-Request-ID sent; "" none
		kept bool
	}{
		{"nginx's id", "2f1e0c9ab3d44c51a6b7c8d9e0f1a2b3", true},
		{"a client's token", "web-7.upload_3:retry-2", true},
		{"none", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"a forged log field", `x","level":"ERROR`, false},
		{"spaces", "a b", false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "X-Request-ID": tt.sent}, nil)
			id := resp.Header.Get("X-Request-ID")
			switch {
			case tt.kept && id != tt.sent:
				t.Errorf("X-Request-ID %q, want the sender's %q", id, tt.sent)
			case !tt.kept && (len(id) != 26 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != ""):
				t.Errorf("X-Request-ID %q, want 128 random bits (26 base32 characters)", id)
			}
			if seen[id] {
				t.Errorf("X-Request-ID %q answered twice", id)
			}
			seen[id] = true
			logged := 0
			for _, line := range e.logLines("request") {
				if line["request_id"] == id {
					logged++
				}
			}
			if logged != 1 {
				t.Errorf("%d request lines with request_id %q, want 1", logged, id)
			}
			if !tt.kept && tt.sent != "" && strings.Contains(e.logs.String(), tt.sent) {
				t.Errorf("a refused X-Request-ID reached the logs")
			}
		})
	}
}

// panicOn panics with value when it observes kind.
type panicOn struct {
	kind  upload.EventKind
	value any
}

func (p panicOn) Observe(e upload.Event) {
	if e.Kind == p.kind {
		panic(p.value)
	}
}

// A handler panic answers answer()'s 500 (JSON, a code, the tus header,
// the request id), never the panic's text, and is logged with its stack
// and the request id.
func TestHandlerPanicAnswers500WithoutItsText(t *testing.T) {
	const secret = "panic text that may hold internal detail"
	e := newEnvWith(t, nil, proxy.Deps{Observers: []upload.Observer{panicOn{upload.Created, secret}}})
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, `"internal_error"`) || strings.Contains(body, secret) {
		t.Fatalf("panic answered %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Errorf("the 500 lacks Tus-Resumable")
	}
	id := resp.Header.Get("X-Request-ID")
	panics := e.logLines("handler panic")
	if len(panics) != 1 {
		t.Fatalf("%d handler panic lines, want 1", len(panics))
	}
	line := panics[0]
	if line["panic"] != secret || line["request_id"] != id || !strings.Contains(line["stack"].(string), "goroutine") {
		t.Errorf("handler panic line %v lacks the panic, the request id %q or the stack", line, id)
	}
}

// http.ErrAbortHandler is how a handler asks net/http to cut the
// connection: it passes through the recovery, the client gets no answer, and
// no panic is logged.
func TestAbortHandlerCutsTheConnection(t *testing.T) {
	e := newEnvWith(t, nil, proxy.Deps{Observers: []upload.Observer{panicOn{upload.Created, http.ErrAbortHandler}}})
	resp, err := http.DefaultClient.Do(newRequest(t, http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("an aborted handler answered %d", resp.StatusCode)
	}
	if lines := e.logLines("handler panic"); len(lines) != 0 {
		t.Errorf("an abort was logged as a panic: %v", lines)
	}
}
