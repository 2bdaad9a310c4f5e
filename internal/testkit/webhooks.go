package testkit

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// WebhookSecret is a Standard Webhooks secret for tests: whsec_ and the
// base64 of 32 bytes.
const WebhookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// WebhookEvent is a delivery's body as README "Webhooks" documents it,
// declared here apart from package webhook's own types, so a renamed JSON
// field breaks the tests instead of following silently.
type WebhookEvent struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is the "data" of a delivery.
type WebhookData struct {
	UploadID     string            `json:"upload_id"`
	UploadURL    string            `json:"upload_url"`
	VideoID      string            `json:"video_id"`
	Length       int64             `json:"length"`
	Offset       int64             `json:"offset"`
	Metadata     map[string]string `json:"metadata"`
	Owner        string            `json:"owner"`
	Context      json.RawMessage   `json:"context"`
	ParentID     string            `json:"parent_id"`
	ClientIP     string            `json:"client_ip"`
	CreatedAt    time.Time         `json:"created_at"`
	CompletedAt  *time.Time        `json:"completed_at"`
	TerminatedAt *time.Time        `json:"terminated_at"`
	ExpiredAt    *time.Time        `json:"expired_at"`
}

// WebhookAttempt is one POST the receiver got, its signature verified.
type WebhookAttempt struct {
	ID        string // webhook-id
	Timestamp int64  // webhook-timestamp
	Path      string // the URL path it was sent to
	Event     WebhookEvent
	Status    int  // what the receiver answered
	Cut       bool // the sender went away before the answer: not delivered
	Arrived   time.Time
	Answered  time.Time
}

// Delivered reports whether the sender got a 2xx for this attempt.
func (a WebhookAttempt) Delivered() bool { return !a.Cut && a.Status >= 200 && a.Status < 300 }

// WebhookReceiverOptions shape a WebhookReceiver; the zero value answers
// 204 at once on a free port.
type WebhookReceiverOptions struct {
	// Addr is where to listen; "" picks a free loopback port.
	Addr string
	// Answer decides the status of the n-th attempt (from 0, over all
	// attempts) and its Retry-After ("" for none). nil: 204.
	Answer func(n int, a WebhookAttempt) (status int, retryAfter string)
	// Hold is how long each attempt is held before it is answered.
	Hold time.Duration
}

// WebhookReceiver is a webhook receiver that verifies every delivery with
// the Standard Webhooks project's own Go library (an implementation nobody
// here wrote) and records it. A delivery that does not verify fails the
// test and is answered 400.
type WebhookReceiver struct {
	URL string

	t        testing.TB
	srv      *httptest.Server
	verifier *standardwebhooks.Webhook
	opts     WebhookReceiverOptions

	mu       sync.Mutex
	attempts []WebhookAttempt
	inFlight map[string]int // by path
}

// NewWebhookReceiver starts a receiver verifying with secret; it is closed
// when the test ends.
func NewWebhookReceiver(t testing.TB, secret string, opts WebhookReceiverOptions) *WebhookReceiver {
	t.Helper()
	verifier, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &WebhookReceiver{t: t, verifier: verifier, opts: opts, inFlight: map[string]int{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if opts.Addr != "" {
		ln, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			t.Fatal(err)
		}
		r.srv.Listener.Close()
		r.srv.Listener = ln
	}
	r.srv.Start()
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	attempt := WebhookAttempt{Path: req.URL.Path, Arrived: time.Now(), ID: req.Header.Get("webhook-id")}
	attempt.Timestamp, _ = strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("webhook: %s with Content-Type %q, want a POST of application/json", req.Method, req.Header.Get("Content-Type"))
	}
	if err := r.verifier.Verify(body, req.Header); err != nil {
		r.t.Errorf("webhook %s does not verify with the Standard Webhooks library: %v", attempt.ID, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal(body, &attempt.Event); err != nil {
		r.t.Errorf("webhook %s: body %s: %v", attempt.ID, body, err)
	}

	r.mu.Lock()
	n := len(r.attempts)
	r.attempts = append(r.attempts, attempt) // a placeholder until answered
	r.inFlight[attempt.Path]++
	r.mu.Unlock()

	status, retryAfter := http.StatusNoContent, ""
	if r.opts.Answer != nil {
		status, retryAfter = r.opts.Answer(n, attempt)
	}
	if r.opts.Hold > 0 {
		select {
		case <-time.After(r.opts.Hold):
		case <-req.Context().Done():
		}
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	attempt.Status = status
	attempt.Answered = time.Now()
	// The request's context ends when the sender's connection does: a
	// sender killed while the attempt was held never got the answer.
	attempt.Cut = req.Context().Err() != nil

	r.mu.Lock()
	r.attempts[n] = attempt
	r.inFlight[attempt.Path]--
	r.mu.Unlock()
}

// Attempts returns every attempt so far, in arrival order; those still held
// have Status 0.
func (r *WebhookReceiver) Attempts() []WebhookAttempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookAttempt(nil), r.attempts...)
}

// Delivered returns the attempts answered with a 2xx the sender received,
// in arrival order.
func (r *WebhookReceiver) Delivered() []WebhookAttempt {
	var out []WebhookAttempt
	for _, a := range r.Attempts() {
		if a.Delivered() {
			out = append(out, a)
		}
	}
	return out
}

// InFlight is the number of attempts to path being held right now.
func (r *WebhookReceiver) InFlight(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight[path]
}

// WaitFor polls until done holds for the delivered attempts, and returns
// them; it fails the test after within.
func (r *WebhookReceiver) WaitFor(within time.Duration, what string, done func(delivered []WebhookAttempt) bool) []WebhookAttempt {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		delivered := r.Delivered()
		if done(delivered) {
			return delivered
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("webhooks: %s did not happen within %s; delivered %s", what, within, Summary(delivered))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Summary lists attempts as type/upload pairs, for failure messages.
func Summary(attempts []WebhookAttempt) string {
	s := ""
	for _, a := range attempts {
		s += " " + a.Event.Type + "/" + a.Event.Data.UploadID
	}
	return "[" + s + " ]"
}

// ByType counts the delivered attempts of each (type, upload) pair once,
// however often it was delivered (by webhook-id), keyed "type upload_id".
func ByType(delivered []WebhookAttempt) map[string]WebhookAttempt {
	out := map[string]WebhookAttempt{}
	for _, a := range delivered {
		key := a.Event.Type + " " + a.Event.Data.UploadID
		if _, seen := out[key]; !seen {
			out[key] = a
		}
	}
	return out
}
