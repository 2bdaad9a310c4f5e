package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// The application's context: the auth hook's answer or a JWT's claim gives
// a JSON object that is stored with the upload's record, never sent to
// Kinescope.

const contextJWTSecret = "a-shared-secret-of-at-least-32-bytes!!"

// initRecorder stands between tusproxy and the emulator and keeps the body
// of every /v2/init, so a test can see exactly what Kinescope was sent. It
// forwards everything with the Host it was called at, so the emulator
// issues endpoints on the recorder's address and tusproxy's upstream hosts
// need no change.
type initRecorder struct {
	url    string
	target atomic.Pointer[url.URL]
	mu     sync.Mutex
	bodies []string
}

func newInitRecorder(t *testing.T) *initRecorder {
	rec := &initRecorder{}
	forward := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(rec.target.Load())
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/init" {
			body, _ := io.ReadAll(r.Body)
			rec.mu.Lock()
			rec.bodies = append(rec.bodies, string(body))
			rec.mu.Unlock()
			r.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL + "/v2/init"
	return rec
}

// to points the recorder at the emulator of e.
func (rec *initRecorder) to(t *testing.T, e *env) {
	u, err := url.Parse(e.emu.InitURL)
	if err != nil {
		t.Fatal(err)
	}
	rec.target.Store(&url.URL{Scheme: u.Scheme, Host: u.Host})
}

func (rec *initRecorder) inits() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.bodies...)
}

// contextHook is an auth hook that allows everything with the answer the
// test last stored in answer.
func contextHook(t *testing.T, answer *atomic.Value) *hookServer {
	return newHookServer(t, func(req map[string]any) (int, string) {
		return 200, answer.Load().(string)
	})
}

func (e *env) record(loc string) state.Record {
	e.t.Helper()
	rec, err := e.store.Get(e.t.Context(), testkit.UploadID(loc))
	if err != nil {
		e.t.Fatalf("store: %v", err)
	}
	return rec
}

func TestContextFromHookStoredNeverSentToKinescope(t *testing.T) {
	initRec := newInitRecorder(t)
	var answer atomic.Value
	answer.Store(`{"owner": "alice", "parent_id": "folder-9",
	  "context": { "order_id": "ord-7781", "lesson": {"n": 1.50, "tags": ["a", "<b>&"]}, "note": "Привет \u00e9" }}`)
	hook := contextHook(t, &answer)
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "KINESCOPE_INIT_URL": initRec.url})
	initRec.to(t, e)

	data := testkit.RandomBytes(1000)
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "1000", "Upload-Metadata": meta("filename", "a.mp4")}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	rec := e.record(loc)
	// Compact, but otherwise the hook's bytes: key order, number as
	// written, escapes and HTML characters untouched.
	const want = `{"order_id":"ord-7781","lesson":{"n":1.50,"tags":["a","<b>&"]},"note":"Привет \u00e9"}`
	if rec.Context != want {
		t.Errorf("stored context %s, want %s", rec.Context, want)
	}
	if rec.ParentID != "folder-9" || rec.ClientIP != "127.0.0.1" || rec.URL != loc || rec.Owner != "alice" {
		t.Errorf("record: parent %q, client ip %q, url %q (Location %q), owner %q", rec.ParentID, rec.ClientIP, rec.URL, loc, rec.Owner)
	}
	// The upload works as any other, and keeps its context to the end.
	if r := e.patch(loc, 0, data); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, rec.VideoID, data)
	if got := e.record(loc).Context; got != want {
		t.Errorf("context after the upload completed: %s", got)
	}

	// The context is the application's business: not in tusproxy's logs.
	if strings.Contains(e.logs.String(), "ord-7781") {
		t.Error("the context appears in the logs")
	}
	inits := initRec.inits()
	if len(inits) != 1 {
		t.Fatalf("%d inits recorded, want 1", len(inits))
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(inits[0]), &sent); err != nil {
		t.Fatalf("init body %s: %v", inits[0], err)
	}
	if sent["parent_id"] != "folder-9" || sent["filename"] != "a.mp4" {
		t.Errorf("init body %s: not the creation's", inits[0])
	}
	for _, leak := range []string{"context", "ord-7781", "order_id", "lesson"} {
		if strings.Contains(inits[0], leak) {
			t.Errorf("the init request sent to Kinescope carries %q: %s", leak, inits[0])
		}
	}
}

// TestContextHookWinsOverJWT: with both, the context follows the owner's
// rule: the hook's when it answers one, else the token's claim.
func TestContextHookWinsOverJWT(t *testing.T) {
	var answer atomic.Value
	hook := contextHook(t, &answer)
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_JWT_SECRET": contextJWTSecret})
	token := signHS256(t, contextJWTSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
		"context": json.RawMessage(`{"from":"jwt","z":1,"a":2}`)})
	for _, tt := range []struct {
		hook, want string
	}{
		{`{"context": {"from": "hook"}}`, `{"from":"hook"}`},
		{`{"context": {}}`, `{}`},
		{`{"owner": "alice"}`, `{"from":"jwt","z":1,"a":2}`},
		{`{"context": null}`, `{"from":"jwt","z":1,"a":2}`},
		{``, `{"from":"jwt","z":1,"a":2}`},
	} {
		answer.Store(tt.hook)
		resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": "Bearer " + token}, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("hook answering %s: %d", tt.hook, resp.StatusCode)
			continue
		}
		if got := e.record(resp.Header.Get("Location")).Context; got != tt.want {
			t.Errorf("hook answering %s: context %s, want %s", tt.hook, got, tt.want)
		}
	}
}

func TestContextFromJWT(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_SECRET": contextJWTSecret})
	sign := func(context any) string {
		claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
		if context != nil {
			claims["context"] = context
		}
		return "Bearer " + signHS256(t, contextJWTSecret, claims)
	}
	for _, tt := range []struct {
		name    string
		context any
		want    string
	}{
		{"object", json.RawMessage(`{"course":"c-1","ids":[3,1,2]}`), `{"course":"c-1","ids":[3,1,2]}`},
		{"none", nil, ""},
		{"null", json.RawMessage(`null`), ""},
	} {
		resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": sign(tt.context)}, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("%s: %d", tt.name, resp.StatusCode)
			continue
		}
		if got := e.record(resp.Header.Get("Location")).Context; got != tt.want {
			t.Errorf("%s: context %q, want %q", tt.name, got, tt.want)
		}
	}
}

// objectOf returns a JSON object of exactly n bytes, compact.
func objectOf(n int) string {
	const head = `{"pad":"`
	return head + strings.Repeat("x", n-len(head)-2) + `"}`
}

// TestContextRefused: a context that is not a JSON object or larger than
// 4 KiB (compact) is refused at creation, before Kinescope is asked: from a
// token with 401 (the application must mint another), from the hook with
// 502 auth_hook_bad_answer and a log line for the operator.
func TestContextRefused(t *testing.T) {
	largest := objectOf(4096)
	// Whitespace does not count: this is the largest object, indented.
	loose := strings.Replace(largest, `{"pad":`, "{\n  \"pad\" :  ", 1) + "\n"
	for _, tt := range []struct {
		name    string
		context string // the hook's answer field, or the claim
		status  int
		code    string
		message string
	}{
		{"4 KiB", largest, 201, "", ""},
		{"4 KiB with whitespace", loose, 201, "", ""},
		{"4 KiB and one byte", objectOf(4097), 0, "", "4097 bytes"},
		{"array", `[1,2]`, 0, "", "not a JSON object"},
		{"string", `"order-1"`, 0, "", "not a JSON object"},
		{"number", `42`, 0, "", "not a JSON object"},
	} {
		for _, from := range []string{"hook", "jwt"} {
			t.Run(tt.name+" from "+from, func(t *testing.T) {
				var answer atomic.Value
				answer.Store(`{}`)
				hook := contextHook(t, &answer)
				vars := map[string]string{"TUSPROXY_JWT_SECRET": contextJWTSecret}
				claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
				if from == "hook" {
					vars = map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL}
					answer.Store(`{"context": ` + tt.context + `}`)
				} else {
					claims["context"] = json.RawMessage(tt.context)
				}
				e := newEnv(t, vars)
				headers := map[string]string{"Upload-Length": "10"}
				if from == "jwt" {
					headers["Authorization"] = "Bearer " + signHS256(t, contextJWTSecret, claims)
				}
				resp, body := e.doBody(http.MethodPost, e.base, headers, nil)
				status, code := tt.status, tt.code
				if status == 0 && from == "hook" {
					status, code = http.StatusBadGateway, "auth_hook_bad_answer"
				} else if status == 0 {
					status, code = http.StatusUnauthorized, "auth_required"
				}
				if resp.StatusCode != status || !strings.Contains(body, code) || !strings.Contains(body, tt.message) {
					t.Fatalf("%d %s, want %d %s naming %q", resp.StatusCode, body, status, code, tt.message)
				}
				if status == http.StatusCreated {
					if got := e.record(resp.Header.Get("Location")).Context; got != largest {
						t.Errorf("stored %d bytes, want the 4096 of the object, compact", len(got))
					}
					return
				}
				if from == "jwt" && !strings.Contains(body, "context claim") {
					t.Errorf("the 401 does not say the context claim is at fault: %s", body)
				}
				if from == "hook" && resp.Header.Get("Retry-After") != "" {
					t.Errorf("Retry-After %q: retrying cannot fix the hook", resp.Header.Get("Retry-After"))
				}
				if from == "hook" && !strings.Contains(e.logs.String(), "the auth hook allowed a creation with a context tusproxy refuses") {
					t.Errorf("no log line tells the operator: %s", e.logs.String())
				}
				if n := e.emu.Stats().Init; n != 0 {
					t.Errorf("%d inits: Kinescope was called for a refused creation", n)
				}
			})
		}
	}
}

// TestContextOnlyAtCreation: the context is read from the answer to a
// creation only. A hook that answers the same fields to every operation
// (even a context tusproxy would refuse at creation) does not disturb a
// HEAD or PATCH, nor change the stored context.
func TestContextOnlyAtCreation(t *testing.T) {
	hook := newHookServer(t, func(req map[string]any) (int, string) {
		if req["operation"] == "create" {
			return 200, `{"owner": "alice", "context": {"n": 1}}`
		}
		return 200, `{"owner": "alice", "context": ` + objectOf(5000) + `}`
	})
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_CACHE_TTL": "0"})
	loc := e.create(10, "")
	if resp := e.do(http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
	if resp := e.patch(loc, 0, testkit.RandomBytes(10)); resp.StatusCode != http.StatusNoContent {
		t.Errorf("PATCH: %d", resp.StatusCode)
	}
	if got := e.record(loc).Context; got != `{"n":1}` {
		t.Errorf("context %s, want the creation's", got)
	}
}

// TestContextTokenCheckedEvenWhenHookGivesOne: each source is checked; a
// token with an unusable context is refused before the hook is asked.
func TestContextTokenCheckedEvenWhenHookGivesOne(t *testing.T) {
	hook := newHookServer(t, func(map[string]any) (int, string) { return 200, `{"context": {"from": "hook"}}` })
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_JWT_SECRET": contextJWTSecret})
	token := signHS256(t, contextJWTSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
		"context": "not an object"})
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": "Bearer " + token}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "context claim is not a JSON object") {
		t.Errorf("%d %s, want 401 about the context claim", resp.StatusCode, body)
	}
	if n := hook.calls.Load(); n != 0 {
		t.Errorf("the hook was asked %d times about a token tusproxy refuses", n)
	}
}
