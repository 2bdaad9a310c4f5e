package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// delivery is one POST a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP receiver that records every POST; answer, when
// set, decides the answer from the attempt number of that webhook-id
// (1 for its first POST), else it answers 204.
type receiver struct {
	mu       sync.Mutex
	got      []delivery
	attempts map[string]int
	answer   func(w http.ResponseWriter, r *http.Request, body []byte, attempt int)
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte, attempt int)) (*receiver, *httptest.Server) {
	rc := &receiver{attempts: map[string]int{}, answer: answer}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(webhook.HeaderID)
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body, at: time.Now()})
	rc.attempts[id]++
	attempt := rc.attempts[id]
	rc.mu.Unlock()
	if rc.answer != nil {
		rc.answer(w, r, body, attempt)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// uploadEvents returns each upload's lifecycle: created, then completed.
func uploadEvents(t *testing.T, uploads int) []state.Event {
	var events []state.Event
	for i := range uploads {
		d := sampleData()
		d.UploadID = fmt.Sprintf("upload-%02d", i)
		events = append(events, encode(t, webhook.TypeCreated, time.Now(), d))
	}
	for i := range uploads {
		d := sampleData()
		d.UploadID = fmt.Sprintf("upload-%02d", i)
		d.Offset = d.Length
		events = append(events, encode(t, webhook.TypeCompleted, time.Now(), d))
	}
	return events
}

// TestEveryTypeDeliveredSigned: each event type reaches the receiver once,
// with its exact body, the Standard Webhooks headers, and a signature that
// the standard library verifies with each configured secret.
func TestEveryTypeDeliveredSigned(t *testing.T) {
	rc, srv := newReceiver(t, nil)
	cfg := fastConfig(srv.URL + "/hooks/tus?key=k")
	cfg.Secret = secretA + " " + secretB
	var events []state.Event
	for i, typ := range webhook.Types {
		d := sampleData()
		d.UploadID = fmt.Sprintf("upload-%d", i)
		events = append(events, encode(t, typ, time.Now(), d))
	}
	h := start(t, cfg, nil, events...)
	eventually(t, "every event acked", func() bool { return h.box.pending() == 0 })

	got := rc.deliveries()
	if len(got) != len(events) {
		t.Fatalf("receiver got %d deliveries, want %d", len(got), len(events))
	}
	byID := map[string]delivery{}
	for _, d := range got {
		byID[d.header.Get(webhook.HeaderID)] = d
	}
	for _, ev := range events {
		d, ok := byID[ev.ID]
		if !ok {
			t.Errorf("%s (%s) never arrived", ev.Type, ev.ID)
			continue
		}
		if string(d.body) != string(ev.Body) {
			t.Errorf("%s: body changed on the way:\n%s\nwant\n%s", ev.Type, d.body, ev.Body)
		}
		if ct := d.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", ev.Type, ct)
		}
		if ua := d.header.Values("User-Agent"); len(ua) != 1 || ua[0] != "tusproxy-webhook" {
			t.Errorf("%s: User-Agent %q", ev.Type, ua)
		}
		ts, err := strconv.ParseInt(d.header.Get(webhook.HeaderTimestamp), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("%s: webhook-timestamp %q is not the Unix seconds of now", ev.Type, d.header.Get(webhook.HeaderTimestamp))
		}
		for _, secret := range []string{secretA, secretB} {
			if err := verify(t, secret, d.body, d.header); err != nil {
				t.Errorf("%s: signature does not verify: %v", ev.Type, err)
			}
		}
		var body struct{ Type string }
		if json.Unmarshal(d.body, &body); body.Type != ev.Type {
			t.Errorf("body type %q, want %q", body.Type, ev.Type)
		}
		if n := h.metrics.count(ev.Type, webhook.OutcomeDelivered); n != 1 {
			t.Errorf("%s: %d delivered attempts counted, want 1", ev.Type, n)
		}
	}
	if strings.Contains(h.logs.String(), secretA) || strings.Contains(h.logs.String(), "key=k") {
		t.Errorf("the log shows the secret or the URL's query:\n%s", h.logs)
	}
}

// TestOrderPerUpload: an upload's completed event arrives only after its
// created event was answered, even when created events fail at first and
// the receiver answers at random speeds.
func TestOrderPerUpload(t *testing.T) {
	var mu sync.Mutex
	answered := map[string][]string{} // upload id: types answered 2xx, in order
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		var ev struct {
			Type string
			Data struct {
				UploadID string `json:"upload_id"`
			}
		}
		json.Unmarshal(body, &ev)
		if ev.Type == webhook.TypeCreated && attempt == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(time.Duration(len(r.Header.Get(webhook.HeaderID))%3) * time.Millisecond)
		mu.Lock()
		answered[ev.Data.UploadID] = append(answered[ev.Data.UploadID], ev.Type)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	events := uploadEvents(t, 20)
	h := start(t, fastConfig(srv.URL), nil, events...)
	eventually(t, "every event acked", func() bool { return h.box.pending() == 0 })
	mu.Lock()
	defer mu.Unlock()
	for i := range 20 {
		id := fmt.Sprintf("upload-%02d", i)
		if got := strings.Join(answered[id], ","); got != "upload.created,upload.completed" {
			t.Errorf("%s: answered in the order %s", id, got)
		}
	}
}

// TestParallelAcrossUploads: an upload whose receiver call hangs does not
// hold back another upload's event.
func TestParallelAcrossUploads(t *testing.T) {
	release := make(chan struct{})
	otherArrived := make(chan struct{})
	var once sync.Once
	slow := encode(t, webhook.TypeCreated, time.Now(), webhook.Data{UploadID: "slow"})
	fast := encode(t, webhook.TypeCreated, time.Now(), webhook.Data{UploadID: "fast"})
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		if r.Header.Get(webhook.HeaderID) == slow.ID {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		} else {
			once.Do(func() { close(otherArrived) })
		}
		w.WriteHeader(http.StatusNoContent)
	})
	cfg := fastConfig(srv.URL)
	cfg.Timeout = 20 * time.Second
	h := start(t, cfg, nil, slow, fast)
	select {
	case <-otherArrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the second upload's event waited for the first one's hanging delivery")
	}
	eventually(t, "the fast event acked", func() bool { _, pending := h.box.event(fast.ID); return !pending })
	if _, pending := h.box.event(slow.ID); !pending {
		t.Error("the hanging delivery was acked before its answer")
	}
	close(release)
	eventually(t, "the slow event acked", func() bool { return h.box.pending() == 0 })
}

// TestBackoffAgainstFailingReceiver: a receiver failing the first N
// attempts gets the event on attempt N+1, with the same webhook-id and
// body, each attempt signed anew, and the waits between attempts are drawn
// under a ceiling that doubles from RetryBase up to RetryCap.
func TestBackoffAgainstFailingReceiver(t *testing.T) {
	const failures = 6
	rc, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		if attempt <= failures {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	cfg := fastConfig(srv.URL)
	cfg.RetryBase, cfg.RetryCap = 10*time.Millisecond, 80*time.Millisecond
	ev := encode(t, webhook.TypeCompleted, time.Now(), sampleData())
	h := start(t, cfg, nil, ev)
	eventually(t, "the event acked", func() bool { return h.box.pending() == 0 })

	got := rc.deliveries()
	if len(got) != failures+1 {
		t.Fatalf("receiver got %d attempts, want %d", len(got), failures+1)
	}
	for i, d := range got {
		if d.header.Get(webhook.HeaderID) != ev.ID || string(d.body) != string(ev.Body) {
			t.Errorf("attempt %d: id %s or body differs from the event's", i+1, d.header.Get(webhook.HeaderID))
		}
		if err := verify(t, secretA, d.body, d.header); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	retries := h.box.retryCalls()
	if len(retries) != failures {
		t.Fatalf("%d retries scheduled, want %d", len(retries), failures)
	}
	for n, call := range retries {
		ceiling := min(cfg.RetryBase<<n, cfg.RetryCap)
		if wait := call.next.Sub(call.when); wait > ceiling {
			t.Errorf("retry %d scheduled %s ahead, above its ceiling %s", n+1, wait, ceiling)
		}
	}
	if n := h.metrics.count(webhook.TypeCompleted, webhook.OutcomeFailed); n != failures {
		t.Errorf("%d failed attempts counted, want %d", n, failures)
	}
	if !strings.Contains(h.logs.String(), "webhook delivery failed; retrying") || !strings.Contains(h.logs.String(), `"detail":"not yet`) {
		t.Errorf("the failures are not logged with the receiver's answer:\n%s", h.logs)
	}
}

// TestRetryAfterHonoured: a Retry-After longer than the backoff, in
// seconds or as an HTTP date, decides when the next attempt is.
func TestRetryAfterHonoured(t *testing.T) {
	for _, tt := range []struct {
		name  string
		value func() string
		least time.Duration
	}{
		{"seconds", func() string { return "3" }, 3 * time.Second},
		{"date", func() string { return time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat) }, 4 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
				w.Header().Set("Retry-After", tt.value())
				w.WriteHeader(http.StatusTooManyRequests)
			})
			ev := encode(t, webhook.TypeCreated, time.Now(), sampleData())
			cfg := fastConfig(srv.URL)
			cfg.RetryCap = time.Minute // above the Retry-After, which the cap would bound
			h := start(t, cfg, nil, ev)
			eventually(t, "a retry scheduled", func() bool { return len(h.box.retryCalls()) > 0 })
			call := h.box.retryCalls()[0]
			if wait := call.next.Sub(call.when); wait < tt.least-50*time.Millisecond || wait > tt.least+2*time.Second {
				t.Errorf("next attempt %s ahead, want Retry-After's %s", wait, tt.least)
			}
			if h.metrics.count(webhook.TypeCreated, webhook.OutcomeRejected) != 1 {
				t.Error("the 429 is not counted as rejected")
			}
		})
	}
	// Retry-After is capped by RetryCap: a receiver cannot park events for
	// a year.
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		w.Header().Set("Retry-After", "31536000")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	h := start(t, fastConfig(srv.URL), nil, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	eventually(t, "a retry scheduled", func() bool { return len(h.box.retryCalls()) > 0 })
	if call := h.box.retryCalls()[0]; call.next.Sub(call.when) > fastConfig("").RetryCap {
		t.Errorf("a year-long Retry-After was honoured beyond the cap: %s", call.next.Sub(call.when))
	}
}

// TestReceiverDownThenUp: while nothing listens, every attempt fails; once
// the receiver is up, every event arrives, each upload's in order.
func TestReceiverDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	events := uploadEvents(t, 10)
	h := start(t, fastConfig("http://"+addr+"/hook"), nil, events...)
	eventually(t, "attempts failing", func() bool { return h.metrics.outcomes(webhook.OutcomeNetwork) >= 20 })
	if h.box.pending() != len(events) {
		t.Fatalf("%d events pending while the receiver is down, want %d", h.box.pending(), len(events))
	}

	rc := &receiver{attempts: map[string]int{}}
	var up net.Listener
	for range 50 { // the port was free a moment ago; retry if the OS is slow to release it
		if up, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: up, Config: &http.Server{Handler: rc}}
	srv.Start()
	defer srv.Close()

	eventually(t, "every event delivered", func() bool { return h.box.pending() == 0 })
	seen := map[string]string{} // upload id: last type delivered
	delivered := map[string]bool{}
	for _, d := range rc.deliveries() {
		var ev struct {
			Type string
			Data struct {
				UploadID string `json:"upload_id"`
			}
		}
		json.Unmarshal(d.body, &ev)
		if ev.Type == webhook.TypeCompleted && seen[ev.Data.UploadID] != webhook.TypeCreated {
			t.Errorf("%s: completed arrived before created", ev.Data.UploadID)
		}
		seen[ev.Data.UploadID] = ev.Type
		delivered[d.header.Get(webhook.HeaderID)] = true
	}
	for _, ev := range events {
		if !delivered[ev.ID] {
			t.Errorf("event %s never arrived", ev.ID)
		}
	}
}

// TestGivenUpAfterMaxAge: an event that keeps failing is retried until its
// next attempt would be past the maximum age, then logged with its id,
// counted and removed.
func TestGivenUpAfterMaxAge(t *testing.T) {
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		http.Error(w, "down for maintenance", http.StatusBadGateway)
	})
	cfg := fastConfig(srv.URL)
	cfg.MaxAge = 300 * time.Millisecond
	ev := encode(t, webhook.TypeCompleted, time.Now(), sampleData())
	h := start(t, cfg, nil, ev)
	eventually(t, "the event given up", func() bool { return h.box.pending() == 0 })
	if age := time.Since(ev.CreatedAt); age > cfg.MaxAge+2*time.Second {
		t.Errorf("given up after %s", age)
	}
	if n := h.metrics.count(webhook.TypeCompleted, webhook.OutcomeFailed); n < 2 {
		t.Errorf("%d attempts before giving up, want several", n)
	}
	h.metrics.mu.Lock()
	givenUp := h.metrics.givenUp[webhook.TypeCompleted]
	h.metrics.mu.Unlock()
	if givenUp != 1 {
		t.Errorf("given up counted %d times, want 1", givenUp)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "webhook event given up") || !strings.Contains(logs, ev.ID) {
		t.Errorf("the give-up is not logged with the event id:\n%s", logs)
	}
	if strings.Contains(logs, strings.TrimPrefix(secretA, "whsec_")) {
		t.Error("the log shows the secret")
	}
	// A fresh event is never given up before its first attempt, however
	// short the maximum age.
	if n := len(h.box.retryCalls()); n == 0 {
		t.Error("no retry was scheduled before giving up")
	}
}

// TestRedirectIsNotFollowed: a 3xx is a failed attempt; the signed event is
// not re-sent where the redirect points.
func TestRedirectIsNotFollowed(t *testing.T) {
	elsewhere, other := newReceiver(t, nil)
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	})
	h := start(t, fastConfig(srv.URL), nil, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	eventually(t, "redirects counted", func() bool { return h.metrics.count(webhook.TypeCreated, webhook.OutcomeRedirected) >= 2 })
	if n := len(elsewhere.deliveries()); n != 0 {
		t.Errorf("the redirect target got %d deliveries", n)
	}
	if h.box.pending() != 1 {
		t.Error("a redirected event was removed")
	}
	// The same holds for a client the caller hands in.
	h2 := start(t, fastConfig(srv.URL), &http.Client{}, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	eventually(t, "redirects counted", func() bool { return h2.metrics.count(webhook.TypeCreated, webhook.OutcomeRedirected) >= 1 })
	if n := len(elsewhere.deliveries()); n != 0 {
		t.Errorf("with a given client, the redirect target got %d deliveries", n)
	}
}

// TestLargeAnswersAreNotRead: a receiver's answer is read only up to a
// bound and quoted in the log only briefly.
func TestLargeAnswersAreNotRead(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		status := http.StatusInternalServerError
		if attempt > 1 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		for range 64 { // 64 MiB unless the reader stops
			if _, err := io.WriteString(w, huge); err != nil {
				return
			}
		}
	})
	h := start(t, fastConfig(srv.URL), nil, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	eventually(t, "the event delivered", func() bool { return h.box.pending() == 0 })
	if strings.Contains(h.logs.String(), strings.Repeat("x", 201)) {
		t.Error("the log quotes more than 200 bytes of the receiver's answer")
	}
	if !strings.Contains(h.logs.String(), strings.Repeat("x", 100)) {
		t.Error("the log does not quote the start of the receiver's answer")
	}
}

// TestTimeout: a receiver slower than the timeout is a timed-out attempt,
// retried.
func TestTimeout(t *testing.T) {
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		if attempt == 1 {
			time.Sleep(500 * time.Millisecond)
		}
		w.WriteHeader(http.StatusAccepted)
	})
	cfg := fastConfig(srv.URL)
	cfg.Timeout = 100 * time.Millisecond
	h := start(t, cfg, nil, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	eventually(t, "the event delivered", func() bool { return h.box.pending() == 0 })
	if h.metrics.count(webhook.TypeCreated, webhook.OutcomeTimeout) != 1 || h.metrics.count(webhook.TypeCreated, webhook.OutcomeDelivered) != 1 {
		t.Errorf("attempts %v, want one timeout then one delivered", h.metrics.attempts)
	}
}

// TestShutdown: deliveries in flight finish within the shutdown timeout;
// one that does not is cut and stays pending, and nothing more is claimed.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 10)
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) {
		arrived <- r.Header.Get(webhook.HeaderID)
		if r.Header.Get(webhook.HeaderID) != "" && strings.HasSuffix(r.URL.Path, "/hang") {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		} else {
			time.Sleep(200 * time.Millisecond)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	defer close(release)

	t.Run("finishes within the timeout", func(t *testing.T) {
		h := start(t, fastConfig(srv.URL+"/slow"), nil, encode(t, webhook.TypeCreated, time.Now(), sampleData()))
		<-arrived
		h.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.d.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if h.box.pending() != 0 {
			t.Error("the delivery in flight was not acked")
		}
	})
	t.Run("cut at the timeout", func(t *testing.T) {
		first := encode(t, webhook.TypeCreated, time.Now(), webhook.Data{UploadID: "a"})
		second := encode(t, webhook.TypeCompleted, time.Now(), webhook.Data{UploadID: "a"})
		cfg := fastConfig(srv.URL + "/hang")
		cfg.Timeout = time.Minute
		h := start(t, cfg, nil, first, second)
		<-arrived
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		began := time.Now()
		if err := h.d.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the deadline's error", err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("Shutdown took %s", took)
		}
		select {
		case <-h.stopped:
		default:
			t.Error("Run still running after Shutdown returned")
		}
		if h.box.pending() != 2 || len(h.box.retryCalls()) != 0 {
			t.Errorf("after the cut: %d pending, %d retries; want both events pending and untouched", h.box.pending(), len(h.box.retryCalls()))
		}
		if h.metrics.count(webhook.TypeCreated, webhook.OutcomeCanceled) != 1 {
			t.Errorf("attempts %v, want one canceled", h.metrics.attempts)
		}
	})
}

// TestBacklogSampled: the outbox's size and oldest event reach the metrics.
func TestBacklogSampled(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	_, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte, attempt int) { <-block })
	oldest := time.Now().Add(-time.Hour).Truncate(time.Second)
	events := uploadEvents(t, 3)
	events[0].CreatedAt = oldest
	cfg := fastConfig(srv.URL)
	cfg.Timeout = time.Minute
	h := start(t, cfg, nil, events...)
	eventually(t, "a backlog sample", func() bool {
		h.metrics.mu.Lock()
		defer h.metrics.mu.Unlock()
		return h.metrics.samples >= 2 && h.metrics.pending == 6 && h.metrics.oldest.Equal(oldest)
	})
}

// TestClaimFailuresAreSurvived: an outbox that cannot be read is retried,
// logged once rather than at every poll, and delivery resumes when it
// answers again.
func TestClaimFailuresAreSurvived(t *testing.T) {
	_, srv := newReceiver(t, nil)
	h := start(t, fastConfig(srv.URL), nil)
	h.box.mu.Lock()
	h.box.claimErr = errors.New("store down")
	h.box.mu.Unlock()
	eventually(t, "claims failing", func() bool {
		h.box.mu.Lock()
		defer h.box.mu.Unlock()
		return h.box.claims > 20
	})
	if n := strings.Count(h.logs.String(), "webhook outbox claim failed"); n != 1 {
		t.Errorf("the failing outbox is logged %d times, want once", n)
	}
	h.box.add(encode(t, webhook.TypeCreated, time.Now(), sampleData()))
	h.box.mu.Lock()
	h.box.claimErr = nil
	h.box.mu.Unlock()
	eventually(t, "the event delivered", func() bool { return h.box.pending() == 0 })
}

// TestNewRefusesBadSettings: the dispatcher does not start with a URL it
// cannot POST to or a secret receivers could not verify with, and its
// errors never quote the secret.
func TestNewRefusesBadSettings(t *testing.T) {
	box := &fakeOutbox{}
	for _, tt := range []struct {
		name string
		cfg  webhook.Config
		want string
	}{
		{"relative URL", webhook.Config{URL: "/hooks", Secret: secretA}, "absolute http"},
		{"ftp URL", webhook.Config{URL: "ftp://hooks.example.com/", Secret: secretA}, "absolute http"},
		{"no secret", webhook.Config{URL: "https://hooks.example.com/"}, "secret is empty"},
		{"bad secret", webhook.Config{URL: "https://hooks.example.com/", Secret: strings.TrimPrefix(secretA, "whsec_")}, "does not start with whsec_"},
	} {
		_, err := webhook.New(tt.cfg, webhook.Deps{Outbox: box})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(secretA, "whsec_")) {
			t.Errorf("%s: the error quotes the secret", tt.name)
		}
	}
	if _, err := webhook.New(webhook.Config{URL: "https://hooks.example.com/", Secret: secretA}, webhook.Deps{}); err == nil {
		t.Error("New accepted no outbox")
	}
}
