package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/safetext"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// authHookRequest is what tusproxy POSTs to the operator's auth hook
// (TUSPROXY_AUTH_HOOK_URL): the seed's "your backend decides" step, kept
// while the bytes go through tusproxy.
type authHookRequest struct {
	Operation string          `json:"operation"`           // create, head, patch, delete
	UploadID  string          `json:"upload_id,omitempty"` // for head, patch, delete
	Upload    *authHookUpload `json:"upload,omitempty"`    // for create
	Client    authHookClient  `json:"client"`
}

type authHookUpload struct {
	Size     int64             `json:"size"`
	Metadata tusproto.Metadata `json:"metadata"`
}

type authHookClient struct {
	IP            string `json:"ip"`
	Authorization string `json:"authorization,omitempty"`
	Cookie        string `json:"cookie,omitempty"`
}

// authHookAnswer is the hook's optional JSON answer to a 2xx. For create every
// field is a decision about the upload; for other operations only Owner
// (who the caller is) and Cache are read.
type authHookAnswer struct {
	Owner       string `json:"owner"`
	ParentID    string `json:"parent_id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	MaxSize     int64  `json:"max_size"`
	// Context is the application's context for the upload (see
	// appContext); create only, kept raw so its bytes are the hook's.
	Context json.RawMessage `json:"context"`
	// Cache is how widely an answer about a HEAD, PATCH or DELETE may be
	// reused within TUSPROXY_AUTH_CACHE_TTL: "" (or anything unknown) for
	// the very same request only, "credential" for every operation and
	// upload of the same Authorization and Cookie, from any address.
	Cache string `json:"cache"`
}

// hookCacheCredential is the answer's Cache value that widens its reuse to
// every request with the same credential.
const hookCacheCredential = "credential"

// authHook calls the operator's hook. Answers about who a caller is are
// cached briefly, so a client's PATCHes do not each cost a hook round trip.
// An answer only ever serves a request the hook would have been asked about
// in the same words: the same credential, operation, upload and client
// address, unless the hook said it depends on the credential alone. Keying
// by credential only let a cached HEAD answer a DELETE the hook refuses, and
// a decision made for one address serve another.
type authHook struct {
	url    string
	client *http.Client
	ttl    time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cachedOwner
}

type cachedOwner struct {
	owner   string
	expires time.Time
}

// hookCacheMax bounds the cache; when full, expired answers are dropped, and
// if that frees nothing it is emptied, which only costs hook calls.
const hookCacheMax = 10000

// hookCacheMaxOwner keeps answers with a longer owner out of the cache, so
// the cache holds at most about 10000 × 1 KiB whatever the hook answers.
const hookCacheMaxOwner = 1 << 10

func newAuthHook(url string, timeout, ttl time.Duration, transport http.RoundTripper) *authHook {
	return &authHook{
		url: url,
		ttl: ttl,
		client: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A redirect would resend the client's credentials elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cache: make(map[[32]byte]cachedOwner),
	}
}

// call posts req to the hook. A 2xx gives its answer; a 4xx becomes an
// answer to the client with the hook's status and message; anything else
// (5xx, timeout, unreachable) is 503.
func (h *authHook) call(ctx context.Context, req authHookRequest) (authHookAnswer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return authHookAnswer{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return authHookAnswer{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "tusproxy")
	resp, err := h.client.Do(hreq)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return authHookAnswer{}, errClientGone
		}
		return authHookAnswer{}, errAuthUnavailable
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		var ans authHookAnswer
		if len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, &ans); err != nil {
				return authHookAnswer{}, errAuthUnavailable.withMessage("the auth hook answered something tusproxy cannot read")
			}
		}
		return ans, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return authHookAnswer{}, &Error{Status: resp.StatusCode, Code: "auth_rejected", Message: hookMessage(raw)}
	default:
		return authHookAnswer{}, errAuthUnavailable
	}
}

// owner asks who the caller of a HEAD, PATCH or DELETE is, from the cache
// when an answer for the same question is there. Refusals are never cached.
func (h *authHook) owner(ctx context.Context, req authHookRequest, now time.Time) (string, error) {
	requestKey, credentialKey := hookCacheKeys(req)
	if h.ttl > 0 {
		if owner, ok := h.cached(now, credentialKey, requestKey); ok {
			return owner, nil
		}
	}
	ans, err := h.call(ctx, req)
	if err != nil {
		return "", err
	}
	if h.ttl > 0 && len(ans.Owner) <= hookCacheMaxOwner {
		key := requestKey
		if ans.Cache == hookCacheCredential {
			key = credentialKey
		}
		h.store(key, cachedOwner{owner: ans.Owner, expires: now.Add(h.ttl)}, now)
	}
	return ans.Owner, nil
}

// hookCacheKeys are the two keys an answer may be cached under: one for
// exactly this request (credential, operation, upload, client address) and
// one for the credential alone, used only when the hook opted into it.
// Fields are length-prefixed so no two requests share a key.
func hookCacheKeys(req authHookRequest) (requestKey, credentialKey [32]byte) {
	field := func(b []byte, s string) []byte {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	credential := field(field(nil, req.Client.Authorization), req.Client.Cookie)
	credentialKey = sha256.Sum256(append([]byte("credential\x00"), credential...))
	request := append([]byte("request\x00"), credential...)
	request = field(field(field(request, req.Operation), req.UploadID), req.Client.IP)
	return sha256.Sum256(request), credentialKey
}

// cached returns the first unexpired answer under keys.
func (h *authHook) cached(now time.Time, keys ...[32]byte) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range keys {
		if c, ok := h.cache[key]; ok && now.Before(c.expires) {
			return c.owner, true
		}
	}
	return "", false
}

func (h *authHook) store(key [32]byte, c cachedOwner, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cache) >= hookCacheMax {
		for k, old := range h.cache {
			if !now.Before(old.expires) {
				delete(h.cache, k)
			}
		}
		if len(h.cache) >= hookCacheMax {
			clear(h.cache)
		}
	}
	h.cache[key] = c
}

// hookMessage is the hook's refusal, for the client: {"message": "..."} or
// {"error": "..."} or plain text, without control characters, at most 300 bytes.
func hookMessage(raw []byte) string {
	var j struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	msg := string(raw)
	if json.Unmarshal(raw, &j) == nil {
		msg = j.Message
		if msg == "" {
			msg = j.Error
		}
	}
	msg = safetext.Blank(strings.TrimSpace(msg))
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "")
	}
	if msg == "" {
		msg = "refused by the auth hook"
	}
	return msg
}
