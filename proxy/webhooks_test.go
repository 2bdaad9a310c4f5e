package proxy_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy"
)

// Lifecycle webhooks through the real service: the lifecycle stores each
// event with the change that causes it, the dispatcher delivers it to a
// receiver that verifies every delivery with the Standard Webhooks
// project's own library (testkit.WebhookReceiver).

// webhookVars are the settings that send webhooks to rcv.
func webhookVars(rcv *testkit.WebhookReceiver, more map[string]string) map[string]string {
	vars := map[string]string{"TUSPROXY_WEBHOOK_URL": rcv.URL + "/hooks", "TUSPROXY_WEBHOOK_SECRET": testkit.WebhookSecret}
	for k, v := range more {
		vars[k] = v
	}
	return vars
}

// run starts the service's background work (the dispatcher among it) until
// the test ends.
func (e *env) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.svc.Run(ctx)
		close(done)
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
	})
}

// createUpload is create with the answer's Kinescope-Video-Id.
func (e *env) createUpload(length int64, metadata string) (loc, videoID string) {
	e.t.Helper()
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": itoa(length), "Upload-Metadata": metadata}, nil)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create: status %d", resp.StatusCode)
	}
	loc, videoID = resp.Header.Get("Location"), resp.Header.Get("Kinescope-Video-Id")
	if v := e.video(loc); v.ID != videoID || videoID == "" {
		e.t.Fatalf("Kinescope-Video-Id %q, the emulator's video %q", videoID, v.ID)
	}
	return loc, videoID
}

// wantEvent is what a test expects of one event's body.
type wantEvent struct {
	typ      string
	loc      string // the Location answered
	videoID  string // the emulator's video
	length   int64
	offset   int64
	metadata map[string]string
	owner    string
	context  string // compact JSON, "null" for none
	parentID string
	after    time.Time // the event happened after this, and before the check
}

// checkEvent checks every field of a delivered event's body against want.
func checkEvent(t *testing.T, a testkit.WebhookAttempt, want wantEvent) {
	t.Helper()
	ev, d := a.Event, a.Event.Data
	if ev.Type != want.typ {
		t.Errorf("%s: type %q", want.typ, ev.Type)
	}
	if d.UploadID != testkit.UploadID(want.loc) || d.UploadURL != want.loc || d.VideoID != want.videoID {
		t.Errorf("%s: upload_id %q, upload_url %q, video_id %q; want %q, %q (the Location), %q (the emulator's)",
			want.typ, d.UploadID, d.UploadURL, d.VideoID, testkit.UploadID(want.loc), want.loc, want.videoID)
	}
	if d.Length != want.length || d.Offset != want.offset {
		t.Errorf("%s: length %d offset %d, want %d and %d", want.typ, d.Length, d.Offset, want.length, want.offset)
	}
	if len(d.Metadata) != len(want.metadata) {
		t.Errorf("%s: metadata %v, want %v", want.typ, d.Metadata, want.metadata)
	}
	for k, v := range want.metadata {
		if d.Metadata[k] != v {
			t.Errorf("%s: metadata %v, want %v", want.typ, d.Metadata, want.metadata)
		}
	}
	if d.Owner != want.owner || d.ParentID != want.parentID || d.ClientIP != "127.0.0.1" {
		t.Errorf("%s: owner %q, parent_id %q, client_ip %q; want %q, %q, 127.0.0.1", want.typ, d.Owner, d.ParentID, d.ClientIP, want.owner, want.parentID)
	}
	if string(d.Context) != want.context {
		t.Errorf("%s: context %s, want %s", want.typ, d.Context, want.context)
	}
	now := time.Now()
	if d.CreatedAt.Before(want.after.Add(-time.Second)) || d.CreatedAt.After(now) {
		t.Errorf("%s: created_at %s is not when the upload was created", want.typ, d.CreatedAt)
	}
	if ev.Timestamp.Before(d.CreatedAt) || ev.Timestamp.After(now) {
		t.Errorf("%s: timestamp %s, created_at %s", want.typ, ev.Timestamp, d.CreatedAt)
	}
	// The ending of the event's own kind, and no other.
	endings := map[string]*time.Time{"upload.completed": d.CompletedAt, "upload.terminated": d.TerminatedAt, "upload.expired": d.ExpiredAt}
	for typ, at := range endings {
		switch {
		case typ == want.typ && (at == nil || !at.Equal(ev.Timestamp)):
			t.Errorf("%s: its ending time is %v, want the event's timestamp %s", want.typ, at, ev.Timestamp)
		case typ != want.typ && at != nil:
			t.Errorf("%s: carries the ending of %s (%s)", want.typ, typ, at)
		}
	}
	if a.ID == "" || a.Timestamp == 0 {
		t.Errorf("%s: webhook-id %q, webhook-timestamp %d", want.typ, a.ID, a.Timestamp)
	}
}

// TestWebhookEveryEventType: created and completed (a creation and PATCHes
// to the end), terminated (DELETE), failed (Kinescope forgot the upload),
// each delivered, signed so the Standard Webhooks library verifies it, with
// every field of its body; the context is the auth hook's.
func TestWebhookEveryEventType(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{})
	var answer atomic.Value
	answer.Store(`{"owner": "alice", "parent_id": "folder-9", "context": {"order_id": "ord-7781", "n": 1.50}}`)
	hook := contextHook(t, &answer)
	e := newEnv(t, webhookVars(rcv, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL}))
	e.run()
	const appContext = `{"order_id":"ord-7781","n":1.50}`
	began := time.Now()
	base := wantEvent{owner: "alice", parentID: "folder-9", context: appContext, after: began}

	// Created and completed, in two PATCHes.
	data := testkit.RandomBytes(1000)
	done, doneVideo := e.createUpload(int64(len(data)), meta("filename", "a.mp4", "lesson", "1"))
	if r := e.patch(done, 0, data[:400]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	if r := e.patch(done, 400, data[400:]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	// Terminated after 10 bytes.
	gone, goneVideo := e.createUpload(100, "")
	if r := e.patch(gone, 0, data[:10]); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	if r := e.do(http.MethodDelete, gone, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	// Failed: Kinescope forgets the upload; the next HEAD finds out.
	lost, lostVideo := e.createUpload(100, meta("filename", "c.mp4"))
	if resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodDelete, e.video(lost).Endpoint, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("direct upstream DELETE: %d", resp.StatusCode)
	}
	if r := e.do(http.MethodHead, lost, nil, nil); r.StatusCode != http.StatusNotFound && r.StatusCode != http.StatusGone {
		t.Fatalf("HEAD of an upload the upstream dropped: %d", r.StatusCode)
	}

	events := testkit.ByType(rcv.WaitFor(10*time.Second, "every event", func(d []testkit.WebhookAttempt) bool { return len(d) >= 6 }))
	if n := len(rcv.Attempts()); n != 6 {
		t.Errorf("%d attempts for 6 events, all answered 204: %s", n, testkit.Summary(rcv.Attempts()))
	}
	check := func(typ, loc, videoID string, length, offset int64, metadata map[string]string) {
		t.Helper()
		a, ok := events[typ+" "+testkit.UploadID(loc)]
		if !ok {
			t.Errorf("no %s for %s; delivered %s", typ, loc, testkit.Summary(rcv.Delivered()))
			return
		}
		want := base
		want.typ, want.loc, want.videoID, want.length, want.offset, want.metadata = typ, loc, videoID, length, offset, metadata
		checkEvent(t, a, want)
	}
	check("upload.created", done, doneVideo, 1000, 0, map[string]string{"filename": "a.mp4", "lesson": "1"})
	check("upload.completed", done, doneVideo, 1000, 1000, map[string]string{"filename": "a.mp4", "lesson": "1"})
	check("upload.created", gone, goneVideo, 100, 0, nil)
	check("upload.terminated", gone, goneVideo, 100, 10, nil)
	check("upload.created", lost, lostVideo, 100, 0, map[string]string{"filename": "c.mp4"})
	check("upload.failed", lost, lostVideo, 100, 0, map[string]string{"filename": "c.mp4"})

	ids := map[string]bool{}
	for _, a := range rcv.Delivered() {
		if ids[a.ID] {
			t.Errorf("webhook-id %s used twice", a.ID)
		}
		ids[a.ID] = true
	}
	checkOrder(t, rcv.Attempts())
	// The receiver's answers were all 2xx: nothing is left pending.
	waitOutboxEmpty(t, e)
}

// checkOrder fails the test if an upload's event arrived before the event
// stored before it was delivered: created, then at most one ending.
func checkOrder(t *testing.T, attempts []testkit.WebhookAttempt) {
	t.Helper()
	createdDelivered := map[string]time.Time{}
	for _, a := range attempts {
		if a.Event.Type == "upload.created" && a.Delivered() {
			if _, seen := createdDelivered[a.Event.Data.UploadID]; !seen {
				createdDelivered[a.Event.Data.UploadID] = a.Answered
			}
		}
	}
	for _, a := range attempts {
		if a.Event.Type == "upload.created" {
			continue
		}
		at, ok := createdDelivered[a.Event.Data.UploadID]
		if !ok || a.Arrived.Before(at) {
			t.Errorf("%s of %s arrived before its upload.created was delivered", a.Event.Type, a.Event.Data.UploadID)
		}
	}
}

func waitOutboxEmpty(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pending, _, err := e.store.OutboxStats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending after their delivery", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookExpired: an upload idle past TUSPROXY_UPLOAD_TTL is swept and
// upload.expired delivered, with expired_at and what was uploaded.
func TestWebhookExpired(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{})
	e := newEnv(t, webhookVars(rcv, map[string]string{"TUSPROXY_UPLOAD_TTL": "2s"}))
	began := time.Now()
	loc, videoID := e.createUpload(100, meta("filename", "idle.mp4"))
	if r := e.patch(loc, 0, testkit.RandomBytes(30)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	e.run()
	events := testkit.ByType(rcv.WaitFor(15*time.Second, "upload.expired", func(d []testkit.WebhookAttempt) bool {
		return testkit.ByType(d)["upload.expired "+testkit.UploadID(loc)].ID != ""
	}))
	a := events["upload.expired "+testkit.UploadID(loc)]
	checkEvent(t, a, wantEvent{typ: "upload.expired", loc: loc, videoID: videoID, length: 100, offset: 30,
		metadata: map[string]string{"filename": "idle.mp4"}, context: "null", parentID: "project-1", after: began})
	if a.Event.Data.ExpiredAt != nil && a.Event.Data.ExpiredAt.Sub(began) < 2*time.Second {
		t.Errorf("expired_at %s is less than the TTL after the upload's last activity (%s)", a.Event.Data.ExpiredAt, began)
	}
	if _, ok := events["upload.created "+testkit.UploadID(loc)]; !ok {
		t.Errorf("no upload.created before the expiry: %s", testkit.Summary(rcv.Delivered()))
	}
	checkOrder(t, rcv.Attempts())
}

// TestWebhookRetriesInOrderHonouringRetryAfter: the receiver fails the
// first two attempts with 503 and Retry-After: 30. The event is tried again
// only once 30 s have passed on the service's clock, with the same
// webhook-id and body, signed anew; the upload's completion, stored
// meanwhile, waits behind its creation and follows it once it is delivered.
func TestWebhookRetriesInOrderHonouringRetryAfter(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{
		Answer: func(n int, _ testkit.WebhookAttempt) (int, string) {
			if n < 2 {
				return http.StatusServiceUnavailable, "30"
			}
			return http.StatusOK, ""
		},
	})
	// The service's clock starts at the real time and moves only by hand;
	// it stays within the five minutes a Standard Webhooks verifier allows.
	clock := &fakeClock{}
	clock.now.Store(time.Now().UnixNano())
	e := newEnvWith(t, webhookVars(rcv, nil), proxy.Deps{Now: clock.Now})
	e.run()
	data := testkit.RandomBytes(500)
	loc, _ := e.createUpload(int64(len(data)), "")
	if r := e.patch(loc, 0, data); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}

	waitAttempts := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(rcv.Attempts()) < n || rcv.Attempts()[n-1].Status == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("attempt %d never came: %s", n, testkit.Summary(rcv.Attempts()))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// stillAt checks that no attempt comes while the clock does not reach
	// the Retry-After: several of the dispatcher's one-second polls pass.
	stillAt := func(n int) {
		t.Helper()
		time.Sleep(2500 * time.Millisecond)
		if got := len(rcv.Attempts()); got != n {
			t.Fatalf("%d attempts before Retry-After passed, want %d: %s", got, n, testkit.Summary(rcv.Attempts()))
		}
	}
	waitAttempts(1)
	stillAt(1)
	clock.Advance(20 * time.Second)
	stillAt(1)
	clock.Advance(11 * time.Second)
	waitAttempts(2)
	stillAt(2)
	clock.Advance(31 * time.Second)
	waitAttempts(4)

	attempts := rcv.Attempts()
	if len(attempts) != 4 {
		t.Fatalf("%d attempts, want 4: %s", len(attempts), testkit.Summary(attempts))
	}
	first := attempts[0]
	for i, a := range attempts[:3] {
		if a.Event.Type != "upload.created" || a.ID != first.ID {
			t.Errorf("attempt %d: %s %s, want the retried upload.created %s", i+1, a.Event.Type, a.ID, first.ID)
		}
		if i > 0 && a.Timestamp-attempts[i-1].Timestamp < 30 {
			t.Errorf("attempt %d signed at %d, %ds after the one before: not signed anew after Retry-After", i+1, a.Timestamp, a.Timestamp-attempts[i-1].Timestamp)
		}
	}
	if last := attempts[3]; last.Event.Type != "upload.completed" || last.ID == first.ID || !last.Delivered() {
		t.Errorf("attempt 4: %s %s (status %d), want upload.completed delivered", last.Event.Type, last.ID, last.Status)
	}
	checkOrder(t, attempts)
	waitOutboxEmpty(t, e)
	// The failures were logged, the secret never: neither whole nor its key.
	if logs := e.logs.String(); strings.Contains(logs, strings.TrimPrefix(testkit.WebhookSecret, "whsec_")) || !strings.Contains(logs, first.ID) {
		t.Errorf("the logs show the webhook secret, or not the retried event %s:\n%s", first.ID, logs)
	}
}

// TestWebhookEventsSubset: with TUSPROXY_WEBHOOK_EVENTS=upload.completed,
// no other event is stored (the outbox stays empty through a creation and a
// termination) nor delivered.
func TestWebhookEventsSubset(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{})
	e := newEnv(t, webhookVars(rcv, map[string]string{"TUSPROXY_WEBHOOK_EVENTS": "upload.completed"}))
	pending := func() int {
		t.Helper()
		n, _, err := e.store.OutboxStats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	data := testkit.RandomBytes(200)
	loc, videoID := e.createUpload(int64(len(data)), "")
	gone, _ := e.createUpload(10, "")
	if r := e.do(http.MethodDelete, gone, nil, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.StatusCode)
	}
	if n := pending(); n != 0 {
		t.Fatalf("%d events stored for unsubscribed types", n)
	}
	if r := e.patch(loc, 0, data); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	if n := pending(); n != 1 {
		t.Fatalf("%d events stored after a completion, want 1", n)
	}
	e.run()
	rcv.WaitFor(10*time.Second, "upload.completed", func(d []testkit.WebhookAttempt) bool { return len(d) == 1 })
	waitOutboxEmpty(t, e)
	time.Sleep(1500 * time.Millisecond) // a poll more: nothing else comes
	attempts := rcv.Attempts()
	if len(attempts) != 1 || attempts[0].Event.Type != "upload.completed" || attempts[0].Event.Data.VideoID != videoID {
		t.Fatalf("attempts %s, want one upload.completed of video %s", testkit.Summary(attempts), videoID)
	}
}
