package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// hookRequest is what tusproxy POSTs to the operator's auth hook
// (TUSPROXY_AUTH_HOOK_URL): the seed's "your backend decides" step, kept
// while the bytes go through tusproxy.
type hookRequest struct {
	Operation string      `json:"operation"`           // create, head, patch, delete
	UploadID  string      `json:"upload_id,omitempty"` // for head, patch, delete
	Upload    *hookUpload `json:"upload,omitempty"`    // for create
	Client    hookClient  `json:"client"`
}

type hookUpload struct {
	Size     int64             `json:"size"`
	Metadata tusproto.Metadata `json:"metadata"`
}

type hookClient struct {
	IP            string `json:"ip"`
	Authorization string `json:"authorization,omitempty"`
	Cookie        string `json:"cookie,omitempty"`
}

// hookAnswer is the hook's optional JSON answer to a 2xx. For create every
// field is a decision about the upload; for other operations only Owner
// (who the caller is) is read.
type hookAnswer struct {
	Owner       string `json:"owner"`
	ParentID    string `json:"parent_id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	MaxSize     int64  `json:"max_size"`
}

// authHook calls the operator's hook. Answers about who a caller is are
// cached briefly per credential, so a client's PATCHes do not each cost a
// hook round trip.
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

// hookCacheMax bounds the cache; when full it is emptied, which only costs
// hook calls.
const hookCacheMax = 10000

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
func (h *authHook) call(ctx context.Context, req hookRequest) (hookAnswer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return hookAnswer{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return hookAnswer{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "tusproxy")
	resp, err := h.client.Do(hreq)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return hookAnswer{}, errClientGone
		}
		return hookAnswer{}, errAuthUnavailable
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		var ans hookAnswer
		if len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, &ans); err != nil {
				return hookAnswer{}, errAuthUnavailable.withMessage("the auth hook answered something tusproxy cannot read")
			}
		}
		return ans, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return hookAnswer{}, &Error{Status: resp.StatusCode, Code: "auth_rejected", Message: hookMessage(raw)}
	default:
		return hookAnswer{}, errAuthUnavailable
	}
}

// owner asks who the caller is, from the cache when it can.
func (h *authHook) owner(ctx context.Context, req hookRequest, now time.Time) (string, error) {
	key := sha256.Sum256([]byte(req.Client.Authorization + "\x00" + req.Client.Cookie))
	if h.ttl > 0 {
		h.mu.Lock()
		c, ok := h.cache[key]
		h.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.owner, nil
		}
	}
	ans, err := h.call(ctx, req)
	if err != nil {
		return "", err
	}
	if h.ttl > 0 {
		h.mu.Lock()
		if len(h.cache) >= hookCacheMax {
			clear(h.cache)
		}
		h.cache[key] = cachedOwner{owner: ans.Owner, expires: now.Add(h.ttl)}
		h.mu.Unlock()
	}
	return ans.Owner, nil
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
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(msg))
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "")
	}
	if msg == "" {
		msg = "refused by the auth hook"
	}
	return msg
}
