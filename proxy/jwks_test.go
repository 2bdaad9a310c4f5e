package proxy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// jwksServer is an identity provider's JWKS endpoint: it answers what the
// test last set, and counts the fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	status  int
	body    []byte
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{}
	s.publish(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// publish makes the server answer a key set of keys.
func (s *jwksServer) publish(keys ...map[string]any) {
	raw, _ := json.Marshal(map[string]any{"keys": keys})
	s.answer(http.StatusOK, raw)
}

func (s *jwksServer) answer(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// signingKey is an RSA key pair with its kid, as a provider holds it.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

func newSigningKey(t *testing.T, kid string) signingKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, key: key}
}

// jwk is the public JWK of k, with members overridden or added by extra.
func (k signingKey) jwk(extra ...string) map[string]any {
	m := map[string]any{
		"kty": "RSA", "kid": k.kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.key.E)).Bytes()),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// bearer is an Authorization header with an RS256 token for alice signed by
// k; kid is the token's kid header, none when "".
func (k signingKey) bearer(t *testing.T, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// accepts reports whether tusproxy accepts authorization: a HEAD of an
// upload that does not exist is 404 with a valid token and 401 without.
func (e *env) accepts(authorization string) bool {
	e.t.Helper()
	resp := e.do(http.MethodHead, e.base+"0123456789abcdef0123456789abcdef", map[string]string{"Authorization": authorization}, nil)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return true
	case http.StatusUnauthorized:
		return false
	}
	e.t.Fatalf("HEAD: status %d, want 404 or 401", resp.StatusCode)
	return false
}

// eventually polls cond every 20ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 10s: %s", what)
		}
	}
}

// A provider rotates from key A to key B: a token signed with B is accepted
// as soon as it arrives (its unknown kid fetches the set again), and A's are
// refused once the next refresh no longer finds A. A key C whose kid was
// seen before it was published (and that window's fetch spent) is accepted
// after the next refresh.
func TestJWKSURLRotation(t *testing.T) {
	a, b, c := newSigningKey(t, "key-a"), newSigningKey(t, "key-b"), newSigningKey(t, "key-c")
	provider := newJWKSServer(t, a.jwk())
	reg := proxy.NewRegistry("test")
	e := &metricsEnv{env: newEnvWith(t, map[string]string{
		"TUSPROXY_JWT_JWKS_URL": provider.URL + "/.well-known/jwks.json", "TUSPROXY_JWT_JWKS_REFRESH": "1s",
	}, proxy.Deps{Metrics: reg}), reg: reg}
	if got := provider.fetches.Load(); got != 1 {
		t.Fatalf("%d fetches at start, want 1", got)
	}
	if !e.accepts(a.bearer(t, a.kid)) {
		t.Fatal("a token signed with the published key A is refused")
	}

	provider.publish(a.jwk(), b.jwk())
	if !e.accepts(b.bearer(t, b.kid)) {
		t.Fatal("a token signed with B is refused once the provider publishes B")
	}
	if !e.accepts(a.bearer(t, a.kid)) {
		t.Fatal("A is refused while still published")
	}

	provider.publish(b.jwk())
	eventually(t, "A refused after the provider removed it", func() bool { return !e.accepts(a.bearer(t, a.kid)) })
	if !e.accepts(b.bearer(t, b.kid)) {
		t.Fatal("B is refused after A was removed")
	}

	if e.accepts(c.bearer(t, c.kid)) {
		t.Fatal("a token signed with C is accepted before C is published")
	}
	provider.publish(b.jwk(), c.jwk())
	eventually(t, "C accepted after the provider published it", func() bool { return e.accepts(c.bearer(t, c.kid)) })

	if ok := e.value("tusproxy_jwks_refreshes_total", map[string]string{"outcome": "ok"}); ok < 4 {
		t.Errorf("tusproxy_jwks_refreshes_total{outcome=ok} = %v, want at least 4 (start, B's kid, two refreshes)", ok)
	}
	if failed := e.value("tusproxy_jwks_refreshes_total", map[string]string{"outcome": "error"}); failed != 0 {
		t.Errorf("tusproxy_jwks_refreshes_total{outcome=error} = %v, want 0", failed)
	}
}

// Anyone can send tokens with made-up kids: together they cause one fetch
// per rate-limit window, not one each, and are refused.
func TestJWKSUnknownKIDFetchesAtMostOncePerWindow(t *testing.T) {
	a, forger := newSigningKey(t, "key-a"), newSigningKey(t, "")
	provider := newJWKSServer(t, a.jwk())
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_JWKS_URL": provider.URL, "TUSPROXY_JWT_JWKS_REFRESH": "1h"})
	for i := range 20 {
		resp, body := e.doBody(http.MethodPost, e.base,
			map[string]string{"Upload-Length": "10", "Authorization": forger.bearer(t, fmt.Sprintf("random-kid-%d", i))}, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "no key for its kid") {
			t.Fatalf("token with a made-up kid: status %d %s, want 401 saying there is no key for its kid", resp.StatusCode, body)
		}
	}
	if n := len(e.emu.Videos()); n != 0 {
		t.Errorf("refused creations made %d Kinescope videos", n)
	}
	if got := provider.fetches.Load(); got != 2 {
		t.Errorf("%d fetches for the start and 20 made-up kids, want 2 (the start, then one per window)", got)
	}
	if !e.accepts(a.bearer(t, a.kid)) {
		t.Error("the published key stopped working")
	}
}

// A provider that fails, answers something unreadable or too large leaves
// the last keys in use; each failure is logged at warn and counted.
func TestJWKSProviderDownKeepsTheLastKeys(t *testing.T) {
	a := newSigningKey(t, "key-a")
	provider := newJWKSServer(t, a.jwk())
	reg := proxy.NewRegistry("test")
	e := &metricsEnv{env: newEnvWith(t, map[string]string{"TUSPROXY_JWT_JWKS_URL": provider.URL, "TUSPROXY_JWT_JWKS_REFRESH": "1s"},
		proxy.Deps{Metrics: reg}), reg: reg}
	tooLarge := append([]byte(`{"keys": [], "padding": "`), bytes.Repeat([]byte("x"), 1<<20)...)
	tooLarge = append(tooLarge, `"}`...)
	for _, down := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"503", http.StatusServiceUnavailable, []byte(`{"error": "maintenance"}`)},
		{"not JSON", http.StatusOK, []byte(`<html>sign in</html>`)},
		{"larger than 1 MiB", http.StatusOK, tooLarge},
		{"a redirect", http.StatusFound, nil},
	} {
		t.Run(down.name, func(t *testing.T) {
			before := e.value("tusproxy_jwks_refreshes_total", map[string]string{"outcome": "error"})
			provider.answer(down.status, down.body)
			eventually(t, "a failed refresh counted", func() bool {
				return e.value("tusproxy_jwks_refreshes_total", map[string]string{"outcome": "error"}) > before
			})
			if !e.accepts(a.bearer(t, a.kid)) {
				t.Error("the last keys were dropped when a refresh failed")
			}
		})
	}
	if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"fetching the JWT key set (TUSPROXY_JWT_JWKS_URL) failed; the last keys stay in use"`) {
		t.Errorf("no warning logged for the failed refreshes:\n%s", e.logs)
	}
}

// tusproxy does not start without the key set: an unreachable provider, an
// error, or a set with no key that can verify RS256 or ES256 tokens.
func TestJWKSURLFirstFetchMustSucceed(t *testing.T) {
	encOnly := newSigningKey(t, "key-enc")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tt := range []struct {
		name string
		url  func(t *testing.T) string
		want string
	}{
		{"unreachable", func(*testing.T) string { return closed.URL }, "connection refused"},
		{"500", func(t *testing.T) string {
			s := newJWKSServer(t)
			s.answer(http.StatusInternalServerError, nil)
			return s.URL
		}, "500"},
		{"only an encryption key", func(t *testing.T) string { return newJWKSServer(t, encOnly.jwk("use", "enc")).URL }, "no RS256 or ES256 signing keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			environ := map[string]string{
				"KINESCOPE_API_TOKEN": testToken, "KINESCOPE_PARENT_ID": "project-1", "TUSPROXY_STORE": "memory",
				"TUSPROXY_JWT_JWKS_URL": tt.url(t),
			}
			cfg, err := config.Load("serve", nil, func(k string) string { return environ[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := proxy.New(cfg, proxy.Deps{Store: state.NewMemory()})
			if err == nil {
				svc.Close()
				t.Fatal("the service was built without its key set")
			}
			if !strings.HasPrefix(err.Error(), "TUSPROXY_JWT_JWKS_URL: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name TUSPROXY_JWT_JWKS_URL and say %q", err, tt.want)
			}
		})
	}
}

// A key may verify only tokens of its own alg, only as a signing key, and a
// key set verifies RS256 and ES256 only: a symmetric key in the set cannot
// make an HS256 token valid.
func TestJWKSKeyUseAndAlg(t *testing.T) {
	good, enc, rs384 := newSigningKey(t, "good"), newSigningKey(t, "enc"), newSigningKey(t, "rs384")
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hmacKey := []byte("a-shared-secret-of-at-least-32-bytes!!")
	keys := []map[string]any{
		good.jwk(),
		enc.jwk("use", "enc", "alg", ""),
		rs384.jwk("alg", "RS384"),
		{"kty": "oct", "kid": "hmac", "k": base64.RawURLEncoding.EncodeToString(hmacKey)},
		{"kty": "EC", "kid": "p384", "crv": "P-384",
			"x": base64.RawURLEncoding.EncodeToString(ecKey.X.FillBytes(make([]byte, 48))),
			"y": base64.RawURLEncoding.EncodeToString(ecKey.Y.FillBytes(make([]byte, 48)))},
	}
	for i := range keys {
		if keys[i]["alg"] == "" {
			delete(keys[i], "alg")
		}
	}
	raw, _ := json.Marshal(map[string]any{"keys": keys})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	provider := newJWKSServer(t)
	provider.answer(http.StatusOK, raw)
	hs256 := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(hmacKey)
		return "Bearer " + s
	}
	es384 := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES384, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = "p384"
		s, _ := tok.SignedString(ecKey)
		return "Bearer " + s
	}
	for source, vars := range map[string]map[string]string{
		"file": {"TUSPROXY_JWT_JWKS_FILE": path},
		"URL":  {"TUSPROXY_JWT_JWKS_URL": provider.URL},
	} {
		t.Run(source, func(t *testing.T) {
			e := newEnv(t, vars)
			for _, tt := range []struct {
				name   string
				token  string
				accept bool
			}{
				{"RS256 by a signing key", good.bearer(t, good.kid), true},
				{"RS256 without kid, by a signing key", good.bearer(t, ""), true},
				{"RS256 by an encryption key", enc.bearer(t, enc.kid), false},
				{"RS256 without kid, by an encryption key", enc.bearer(t, ""), false},
				{"RS256 by an RS384 key", rs384.bearer(t, rs384.kid), false},
				{"HS256 by a symmetric key in the set", hs256("hmac"), false},
				{"ES384 by a P-384 key in the set", es384(), false},
			} {
				if got := e.accepts(tt.token); got != tt.accept {
					t.Errorf("%s: accepted %v, want %v", tt.name, got, tt.accept)
				}
			}
		})
	}
}

// Close ends the refreshes: a service that is gone fetches nothing more.
func TestJWKSRefreshesEndWithClose(t *testing.T) {
	a := newSigningKey(t, "key-a")
	provider := newJWKSServer(t, a.jwk())
	e := newEnv(t, map[string]string{"TUSPROXY_JWT_JWKS_URL": provider.URL, "TUSPROXY_JWT_JWKS_REFRESH": "1s"})
	eventually(t, "a refresh on the interval", func() bool { return provider.fetches.Load() >= 2 })
	e.svc.Close()
	closedAt := provider.fetches.Load()
	time.Sleep(2500 * time.Millisecond) // two refresh intervals and a half
	if got := provider.fetches.Load(); got > closedAt+1 {
		// +1: a refresh already under way when Close was called.
		t.Errorf("%d fetches after Close, want none", got-closedAt)
	}
}
