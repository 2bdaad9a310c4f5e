package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// hookServer is an operator's auth hook for tests: answer decides the reply
// to each call, and every call is recorded.
type hookServer struct {
	*httptest.Server
	calls  atomic.Int32
	mu     sync.Mutex
	last   map[string]any
	answer func(req map[string]any) (int, string)
}

func newHookServer(t *testing.T, answer func(req map[string]any) (int, string)) *hookServer {
	h := &hookServer{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.calls.Add(1)
		var req map[string]any
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("hook got non-JSON: %s", body)
		}
		h.mu.Lock()
		h.last = req
		h.mu.Unlock()
		status, reply := h.answer(req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) lastRequest() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// ownerByToken answers like a backend that knows two users by their
// Authorization header.
func ownerByToken(req map[string]any) (int, string) {
	client, _ := req["client"].(map[string]any)
	switch client["authorization"] {
	case "Bearer alice-session":
		if req["operation"] == "create" {
			return 200, `{"owner": "alice", "parent_id": "folder-alice", "title": "Chosen by the hook"}`
		}
		return 200, `{"owner": "alice"}`
	case "Bearer bob-session":
		return 200, `{"owner": "bob"}`
	default:
		return 401, `{"message": "log in first"}`
	}
}

func TestAuthHookDecidesCreation(t *testing.T) {
	hook := newHookServer(t, ownerByToken)
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL})
	resp := e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length":   "1000",
		"Upload-Metadata": meta("filename", "a.mp4", "parent_id", "client-chosen-folder"),
		"Authorization":   "Bearer alice-session",
		"Cookie":          "session=abc",
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation with a good session: %d", resp.StatusCode)
	}
	req := hook.lastRequest()
	client, _ := req["client"].(map[string]any)
	upload, _ := req["upload"].(map[string]any)
	metadata, _ := upload["metadata"].(map[string]any)
	if req["operation"] != "create" || client["authorization"] != "Bearer alice-session" || client["cookie"] != "session=abc" ||
		client["ip"] != "127.0.0.1" || upload["size"] != float64(1000) || metadata["filename"] != "a.mp4" {
		t.Errorf("hook request %v", req)
	}
	v := e.emu.Videos()[0]
	if v.ParentID != "folder-alice" || v.Title != "Chosen by the hook" {
		t.Errorf("the hook's parent_id/title were not used: %+v", v)
	}
	rec, _ := e.store.Get(t.Context(), resp.Header.Get("Location")[len(e.base):])
	if rec.Owner != "alice" {
		t.Errorf("owner %q, want alice", rec.Owner)
	}

	// Refusals pass on the hook's status and message, and call no Kinescope.
	before := e.emu.Stats().Init
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "log in first") {
		t.Errorf("creation without a session: %d %s", resp.StatusCode, body)
	}
	if e.emu.Stats().Init != before {
		t.Errorf("a refused creation called Kinescope")
	}
}

func TestClientCannotChooseParentWithoutAuth(t *testing.T) {
	e := newEnv(t, nil)
	e.create(10, meta("filename", "a.mp4", "parent_id", "someone-elses-folder"))
	if got := e.emu.Videos()[0].ParentID; got != "project-1" {
		t.Fatalf("parent_id %q: a client chose where its video goes", got)
	}
}

func TestAuthHookUnavailableIs503(t *testing.T) {
	for name, answer := range map[string]func(map[string]any) (int, string){
		"5xx":     func(map[string]any) (int, string) { return 500, "boom" },
		"garbage": func(map[string]any) (int, string) { return 200, "{not json" },
		"slow": func(map[string]any) (int, string) {
			time.Sleep(1500 * time.Millisecond)
			return 200, "{}"
		},
	} {
		t.Run(name, func(t *testing.T) {
			hook := newHookServer(t, answer)
			e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_HOOK_TIMEOUT": "500ms"})
			resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if len(e.emu.Videos()) != 0 {
				t.Errorf("Kinescope was called although the hook failed")
			}
		})
	}
}

func TestUploadsBelongToTheirOwner(t *testing.T) {
	hook := newHookServer(t, ownerByToken)
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_CACHE_TTL": "1m"})
	alice := map[string]string{"Authorization": "Bearer alice-session"}
	bob := map[string]string{"Authorization": "Bearer bob-session"}
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": "Bearer alice-session"}, nil)
	loc := resp.Header.Get("Location")

	with := func(h map[string]string, extra ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			out[extra[i]] = extra[i+1]
		}
		return out
	}
	patchHeaders := []string{"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"}
	for _, tt := range []struct {
		name    string
		method  string
		headers map[string]string
		body    []byte
	}{
		{"HEAD as bob", http.MethodHead, bob, nil},
		{"PATCH as bob", http.MethodPatch, with(bob, patchHeaders...), []byte("bob's bytes")},
		{"DELETE as bob", http.MethodDelete, bob, nil},
		{"HEAD anonymous", http.MethodHead, nil, nil},
	} {
		if resp := e.do(tt.method, loc, tt.headers, tt.body); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404 (no oracle)", tt.name, resp.StatusCode)
		}
	}
	if v := e.video(loc); v.Offset != 0 || v.Terminated {
		t.Fatalf("a stranger changed the upload: %+v", v)
	}
	// The owner goes on; the hook's answer about alice is cached.
	calls := hook.calls.Load()
	for i := 0; i < 3; i++ {
		if resp := e.do(http.MethodHead, loc, alice, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD as alice: %d", resp.StatusCode)
		}
	}
	if got := hook.calls.Load() - calls; got != 1 {
		t.Errorf("hook called %d times for 3 HEADs by one credential, want 1 (cached)", got)
	}
	if resp := e.do(http.MethodPatch, loc, with(alice, patchHeaders...), testkit.RandomBytes(100)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH as alice: %d", resp.StatusCode)
	}
}

func signHS256(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTHS256(t *testing.T) {
	const secret = "a-shared-secret-of-at-least-32-bytes!!"
	e := newEnv(t, map[string]string{
		"TUSPROXY_JWT_SECRET": secret, "TUSPROXY_JWT_AUDIENCE": "uploads", "TUSPROXY_JWT_ISSUER": "https://app.example.com",
	})
	now := time.Now()
	good := jwt.MapClaims{"sub": "alice", "aud": "uploads", "iss": "https://app.example.com", "exp": now.Add(time.Hour).Unix(),
		"parent_id": "folder-from-claim", "max_size": 5000}
	bearer := func(c jwt.MapClaims) map[string]string {
		return map[string]string{"Upload-Length": "1000", "Authorization": "Bearer " + signHS256(t, secret, c)}
	}
	resp := e.do(http.MethodPost, e.base, bearer(good), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("valid token: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if v := e.emu.Videos()[0]; v.ParentID != "folder-from-claim" {
		t.Errorf("parent_id claim ignored: %q", v.ParentID)
	}
	mod := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for key, val := range good {
			c[key] = val
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	for _, tt := range []struct {
		name    string
		headers map[string]string
		status  int
		want    string
	}{
		{"no token", map[string]string{"Upload-Length": "10"}, 401, "Bearer"},
		{"expired", bearer(mod("exp", now.Add(-time.Hour).Unix())), 401, "expired"},
		{"not yet valid", bearer(mod("nbf", now.Add(time.Hour).Unix())), 401, "not valid yet"},
		{"no exp", bearer(mod("exp", nil)), 401, "exp"},
		{"wrong audience", bearer(mod("aud", "other")), 401, "audience"},
		{"wrong issuer", bearer(mod("iss", "https://evil.example")), 401, "issuer"},
		{"wrong secret", map[string]string{"Upload-Length": "10", "Authorization": "Bearer " + signHS256(t, "another-secret-of-at-least-32-bytes!!", good)}, 401, "signature"},
		{"over the claim's max_size", map[string]string{"Upload-Length": "5001", "Authorization": bearer(good)["Authorization"]}, 413, "maximum"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.doBody(http.MethodPost, e.base, tt.headers, nil)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%d %s, want %d mentioning %q", resp.StatusCode, body, tt.status, tt.want)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	// Within the leeway an expired token still passes.
	if resp := e.do(http.MethodHead, loc, map[string]string{"Authorization": bearer(mod("exp", now.Add(-10*time.Second).Unix()))["Authorization"]}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("token 10 s past exp with 30 s leeway: %d", resp.StatusCode)
	}
	// Another subject cannot touch alice's upload.
	if resp := e.do(http.MethodHead, loc, map[string]string{"Authorization": bearer(mod("sub", "mallory"))["Authorization"]}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD with another subject: %d, want 404", resp.StatusCode)
	}
	if len(e.emu.Videos()) != 1 {
		t.Errorf("refused creations reached Kinescope")
	}
}

func TestJWTPublicKeyAndJWKS(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemPath := filepath.Join(dir, "key.pem")
	os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b64 := func(n *big.Int, size int) string {
		return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, size)))
	}
	jwks := map[string]any{"keys": []map[string]any{
		{"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256", "x": b64(ecKey.X, 32), "y": b64(ecKey.Y, 32)},
		{"kty": "RSA", "kid": "rsa-1", "n": base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()), "e": "AQAB"},
	}}
	jwksPath := filepath.Join(dir, "jwks.json")
	raw, _ := json.Marshal(jwks)
	os.WriteFile(jwksPath, raw, 0o600)

	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	sign := func(method jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tt := range []struct {
		name   string
		vars   map[string]string
		auth   string
		status int
	}{
		{"RS256 with PEM key", map[string]string{"TUSPROXY_JWT_PUBLIC_KEY_FILE": pemPath}, sign(jwt.SigningMethodRS256, "", rsaKey), 201},
		{"RS256 signed by another key", map[string]string{"TUSPROXY_JWT_PUBLIC_KEY_FILE": pemPath}, sign(jwt.SigningMethodRS256, "", otherRSA), 401},
		{"HS256 with a public key as secret", map[string]string{"TUSPROXY_JWT_PUBLIC_KEY_FILE": pemPath}, "Bearer " + signHS256(t, string(der), claims), 401},
		{"ES256 from JWKS", map[string]string{"TUSPROXY_JWT_JWKS_FILE": jwksPath}, sign(jwt.SigningMethodES256, "ec-1", ecKey), 201},
		{"RS256 from JWKS", map[string]string{"TUSPROXY_JWT_JWKS_FILE": jwksPath}, sign(jwt.SigningMethodRS256, "rsa-1", rsaKey), 201},
		{"unknown kid", map[string]string{"TUSPROXY_JWT_JWKS_FILE": jwksPath}, sign(jwt.SigningMethodES256, "ec-9", ecKey), 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.vars)
			resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": tt.auth}, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// doFrom is env.do from another loopback source address, so tusproxy sees
// another client IP without any forwarding header.
func doFrom(t *testing.T, localIP, method, url string, headers map[string]string) *http.Response {
	t.Helper()
	client := clientFrom(t, localIP)
	defer client.CloseIdleConnections()
	resp, _ := testkit.Send(t, client, newRequest(t, method, url, headers, nil))
	return resp
}

// A cached HEAD answer must not decide a DELETE: the hook is asked about
// each operation, and its refusal holds.
func TestAuthHookCacheIsPerOperation(t *testing.T) {
	hook := newHookServer(t, func(req map[string]any) (int, string) {
		if req["operation"] == "delete" {
			return 403, `{"message": "uploads cannot be deleted here"}`
		}
		return ownerByToken(req)
	})
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_CACHE_TTL": "1m"})
	alice := map[string]string{"Authorization": "Bearer alice-session"}
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": "Bearer alice-session"}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if resp := e.do(http.MethodHead, loc, alice, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD as alice: %d", resp.StatusCode)
	}
	calls := hook.calls.Load()
	if resp := e.do(http.MethodDelete, loc, alice, nil); resp.StatusCode == http.StatusNoContent {
		t.Fatalf("DELETE went through although the hook refuses every delete")
	}
	if hook.calls.Load() != calls+1 || hook.lastRequest()["operation"] != "delete" {
		t.Errorf("the hook was not asked about the DELETE (calls %d → %d, last %v)", calls, hook.calls.Load(), hook.lastRequest())
	}
	if v := e.video(loc); v.Terminated {
		t.Fatalf("the upload was terminated")
	}
	// The HEAD answer is still cached for HEAD.
	calls = hook.calls.Load()
	if resp := e.do(http.MethodHead, loc, alice, nil); resp.StatusCode != http.StatusOK || hook.calls.Load() != calls {
		t.Errorf("second HEAD: %d, hook calls %d → %d, want 200 from the cache", resp.StatusCode, calls, hook.calls.Load())
	}
}

// A hook may opt into caching an answer for every request of a credential.
func TestAuthHookMayCachePerCredential(t *testing.T) {
	hook := newHookServer(t, func(req map[string]any) (int, string) {
		if status, body := ownerByToken(req); status != 200 || req["operation"] == "create" {
			return status, body
		}
		return 200, `{"owner": "alice", "cache": "credential"}`
	})
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_CACHE_TTL": "1m"})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": "Bearer alice-session"}, nil)
	loc := resp.Header.Get("Location")
	calls := hook.calls.Load()
	alice := map[string]string{"Authorization": "Bearer alice-session"}
	if resp := e.do(http.MethodHead, loc, alice, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	patch := map[string]string{"Authorization": "Bearer alice-session", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
	if resp := e.do(http.MethodPatch, loc, patch, testkit.RandomBytes(100)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	if resp := doFrom(t, "127.0.0.2", http.MethodHead, loc, alice); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD from another address: %d", resp.StatusCode)
	}
	if got := hook.calls.Load() - calls; got != 1 {
		t.Errorf("hook asked %d times for HEAD, PATCH and HEAD from elsewhere with \"cache\": \"credential\", want 1", got)
	}
}

// A hook that decides by client address for callers without credentials
// is asked again when the address changes.
func TestAuthHookCacheIsPerClientAddress(t *testing.T) {
	hook := newHookServer(t, func(req map[string]any) (int, string) {
		client, _ := req["client"].(map[string]any)
		if client["ip"] != "127.0.0.1" {
			return 403, `{"message": "only from the office"}`
		}
		return 200, `{"owner": "office"}`
	})
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL, "TUSPROXY_AUTH_CACHE_TTL": "1m"})
	loc := e.create(100, "")
	if resp := e.do(http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD from the office: %d", resp.StatusCode)
	}
	calls := hook.calls.Load()
	if resp := doFrom(t, "127.0.0.2", http.MethodHead, loc, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD from another address: %d, want 404 (the hook refuses it)", resp.StatusCode)
	}
	client, _ := hook.lastRequest()["client"].(map[string]any)
	if hook.calls.Load() != calls+1 || client["ip"] != "127.0.0.2" {
		t.Errorf("the hook was not asked about the other address (calls %d → %d, last client %v)", calls, hook.calls.Load(), client)
	}
}

func TestJWTWithoutSubjectIsRefused(t *testing.T) {
	const secret = "a-shared-secret-of-at-least-32-bytes!!"
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_SECRET": secret})
	for name, claims := range map[string]jwt.MapClaims{
		"no sub":    {"exp": time.Now().Add(time.Hour).Unix()},
		"empty sub": {"sub": "", "exp": time.Now().Add(time.Hour).Unix()},
		"blank sub": {"sub": "  ", "exp": time.Now().Add(time.Hour).Unix()},
	} {
		resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": "Bearer " + signHS256(t, secret, claims)}, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "sub") {
			t.Errorf("%s: %d %s, want 401 naming sub", name, resp.StatusCode, body)
		}
	}
	if n := len(e.emu.Videos()); n != 0 {
		t.Errorf("%d videos created with tokens naming nobody", n)
	}
}

// In JWT mode every request needs a valid token; the 401 is the same
// whether the upload exists or not.
func TestJWTEveryRequestNeedsAToken(t *testing.T) {
	const secret = "a-shared-secret-of-at-least-32-bytes!!"
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_SECRET": secret})
	token := "Bearer " + signHS256(t, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": token}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	patch := map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
	for _, tt := range []struct {
		method, url string
		headers     map[string]string
		body        []byte
	}{
		{http.MethodHead, loc, nil, nil},
		{http.MethodPatch, loc, patch, []byte("no token")},
		{http.MethodDelete, loc, nil, nil},
		{http.MethodHead, e.base + "0123456789abcdef0123456789abcdef", nil, nil},
	} {
		if resp := e.do(tt.method, tt.url, tt.headers, tt.body); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without a token: %d, want 401 with WWW-Authenticate", tt.method, tt.url, resp.StatusCode)
		}
	}
	if v := e.video(loc); v.Offset != 0 || v.Terminated {
		t.Fatalf("a request without a token changed the upload: %+v", v)
	}
	if resp := e.do(http.MethodHead, loc, map[string]string{"Authorization": token}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD with the creator's token: %d", resp.StatusCode)
	}
}

// With JWT and a hook, the token authenticates and the hook's owner is the
// identity, at creation and on every later request alike.
func TestJWTAndHookAgreeOnTheOwner(t *testing.T) {
	const secret = "a-shared-secret-of-at-least-32-bytes!!"
	sign := func(sub string) string {
		return "Bearer " + signHS256(t, secret, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	}
	alice, mallory := sign("alice"), sign("mallory")
	hook := newHookServer(t, func(req map[string]any) (int, string) {
		client, _ := req["client"].(map[string]any)
		switch client["authorization"] {
		case alice:
			return 200, `{"owner": "user-42"}`
		case mallory:
			return 200, `{"owner": "user-666"}`
		}
		return 401, `{"message": "who are you?"}`
	})
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_SECRET": secret, "TUSPROXY_AUTH_HOOK_URL": hook.URL})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": alice}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creation: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if rec, _ := e.store.Get(t.Context(), loc[len(e.base):]); rec.Owner != "user-42" {
		t.Errorf("owner %q, want the hook's user-42", rec.Owner)
	}
	patch := func(token string) map[string]string {
		return map[string]string{"Authorization": token, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
	}
	for _, method := range []string{http.MethodHead, http.MethodPatch, http.MethodDelete} {
		if resp := e.do(method, loc, patch(mallory), []byte("x")); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s by another user: %d, want 404", method, resp.StatusCode)
		}
	}
	if resp := e.do(http.MethodHead, loc, map[string]string{"Authorization": alice}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD by the creator: %d", resp.StatusCode)
	}
	if resp := e.do(http.MethodPatch, loc, patch(alice), testkit.RandomBytes(100)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH by the creator: %d", resp.StatusCode)
	}
	loc2 := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Authorization": alice}, nil).Header.Get("Location")
	if resp := e.do(http.MethodDelete, loc2, map[string]string{"Authorization": alice}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE by the creator: %d", resp.StatusCode)
	}
}
