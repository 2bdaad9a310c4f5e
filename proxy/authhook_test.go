package proxy

import (
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The answer cache stays bounded whatever the callers vary: expired answers
// go first, and a cache full of live ones is emptied rather than grown.
func TestHookCacheIsBounded(t *testing.T) {
	h := newAuthHook("http://127.0.0.1:1/", time.Second, time.Minute, http.DefaultTransport)
	now := time.Now()
	key := func(i int) (k [32]byte) {
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	for i := range hookCacheMax {
		h.store(key(i), cachedOwner{owner: "old", expires: now.Add(-time.Second)}, now)
	}
	h.store(key(hookCacheMax), cachedOwner{owner: "new", expires: now.Add(time.Minute)}, now)
	if len(h.cache) != 1 {
		t.Errorf("%d answers cached after a full cache of expired ones, want 1", len(h.cache))
	}
	for i := range 3 * hookCacheMax {
		h.store(key(i), cachedOwner{owner: "live", expires: now.Add(time.Minute)}, now)
		if len(h.cache) > hookCacheMax {
			t.Fatalf("%d answers cached, more than %d", len(h.cache), hookCacheMax)
		}
	}
}

// Every field of the question is part of the request key; only the
// credential is part of the credential key.
func TestHookCacheKeys(t *testing.T) {
	base := authHookRequest{Operation: "head", UploadID: "u1", Client: authHookClient{IP: "203.0.113.7", Authorization: "Bearer a", Cookie: "s=1"}}
	reqKey, credKey := hookCacheKeys(base)
	for name, change := range map[string]func(*authHookRequest){
		"operation":     func(r *authHookRequest) { r.Operation = "delete" },
		"upload":        func(r *authHookRequest) { r.UploadID = "u2" },
		"address":       func(r *authHookRequest) { r.Client.IP = "203.0.113.8" },
		"authorization": func(r *authHookRequest) { r.Client.Authorization = "Bearer b" },
		"cookie":        func(r *authHookRequest) { r.Client.Cookie = "s=2" },
		// Moving bytes between fields must not give the same key.
		"shifted": func(r *authHookRequest) { r.Client.Authorization, r.Client.Cookie = "Bearer as", "=1" },
	} {
		r := base
		change(&r)
		k, c := hookCacheKeys(r)
		if k == reqKey {
			t.Errorf("another %s gives the same request key", name)
		}
		credentialChanged := name == "authorization" || name == "cookie" || name == "shifted"
		if (c != credKey) != credentialChanged {
			t.Errorf("another %s: credential key changed %v, want %v", name, c != credKey, credentialChanged)
		}
	}
}

// An answer naming a huge owner is used but not cached.
func TestHookCacheSkipsHugeOwners(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Write([]byte(`{"owner": "` + strings.Repeat("x", hookCacheMaxOwner+1) + `"}`))
	}))
	defer srv.Close()
	h := newAuthHook(srv.URL, time.Second, time.Minute, http.DefaultTransport)
	for range 2 {
		owner, err := h.owner(t.Context(), authHookRequest{Operation: "head", UploadID: "u1"}, time.Now())
		if err != nil || len(owner) != hookCacheMaxOwner+1 {
			t.Fatalf("owner of %d bytes, %v", len(owner), err)
		}
	}
	if calls.Load() != 2 {
		t.Errorf("hook called %d times, want 2 (a huge owner is not cached)", calls.Load())
	}
}
