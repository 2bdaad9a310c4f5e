package main

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// Webhooks through the real program: events are stored with the change that
// causes them, so neither a receiver outage nor a kill -9 loses one. Every
// delivery is verified with the Standard Webhooks library
// (testkit.WebhookReceiver).

// webhookEnv sends a process's webhooks to url, with a short timeout so the
// dispatcher's lease (2×timeout + 5 s) ends soon after a kill.
func webhookEnv(url string) []string {
	return []string{"TUSPROXY_WEBHOOK_URL=" + url, "TUSPROXY_WEBHOOK_SECRET=" + testkit.WebhookSecret, "TUSPROXY_WEBHOOK_TIMEOUT=2s"}
}

// uploadWhole creates an upload of data through base, sends it in one
// PATCH and returns its URL and Kinescope video id.
func uploadWhole(t *testing.T, base string, data []byte) (loc, videoID string) {
	t.Helper()
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPost, base+"/files/", nil, "Upload-Length", strconv.Itoa(len(data)))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Kinescope-Video-Id") == "" {
		t.Fatalf("create: %d, video id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
	loc, videoID = resp.Header.Get("Location"), resp.Header.Get("Kinescope-Video-Id")
	resp, _ = testkit.Tus(t, http.DefaultClient, http.MethodPatch, loc, bytes.NewReader(data),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	return loc, videoID
}

// checkLifecycleDelivered fails the test unless upload loc's created and
// completed events were delivered, with its URL, video id and length, and
// the completion arrived only after the creation was delivered.
func checkLifecycleDelivered(t *testing.T, delivered []testkit.WebhookAttempt, attempts []testkit.WebhookAttempt, loc, videoID string, length int64) {
	t.Helper()
	id := testkit.UploadID(loc)
	events := testkit.ByType(delivered)
	created, okCreated := events["upload.created "+id]
	completed, okCompleted := events["upload.completed "+id]
	if !okCreated || !okCompleted {
		t.Errorf("upload %s: created delivered %v, completed delivered %v", id, okCreated, okCompleted)
		return
	}
	for _, a := range []testkit.WebhookAttempt{created, completed} {
		d := a.Event.Data
		if d.UploadURL != loc || d.VideoID != videoID || d.Length != length {
			t.Errorf("%s: upload_url %q video_id %q length %d; want %q %q %d", a.Event.Type, d.UploadURL, d.VideoID, d.Length, loc, videoID, length)
		}
	}
	if completed.Event.Data.Offset != length || completed.Event.Data.CompletedAt == nil {
		t.Errorf("upload.completed: offset %d, completed_at %v", completed.Event.Data.Offset, completed.Event.Data.CompletedAt)
	}
	for _, a := range attempts {
		if a.Event.Type == "upload.completed" && a.Event.Data.UploadID == id && a.Arrived.Before(created.Answered) {
			t.Errorf("upload %s: upload.completed arrived before upload.created was delivered", id)
		}
	}
}

// bothDelivered reports whether every upload's created and completed were
// delivered.
func bothDelivered(ids []string) func([]testkit.WebhookAttempt) bool {
	return func(delivered []testkit.WebhookAttempt) bool {
		events := testkit.ByType(delivered)
		for _, id := range ids {
			if _, ok := events["upload.created "+id]; !ok {
				return false
			}
			if _, ok := events["upload.completed "+id]; !ok {
				return false
			}
		}
		return true
	}
}

// TestWebhooksSurviveSIGKILL (bolt): the receiver is down (nothing listens
// on its port) while an upload completes; tusproxy is killed -9 before any
// delivery succeeded; once the receiver is up and tusproxy restarted on the
// same file, both events arrive, verified.
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	db := t.TempDir() + "/tusproxy.db"
	receiverAddr := testkit.FreeAddr(t)
	env := webhookEnv("http://" + receiverAddr + "/hooks")
	p := startProxy(t, emu, db, "", env...)
	data := testkit.RandomBytes(300_000)
	loc, videoID := uploadWhole(t, "http://"+p.addr, data)
	// The receiver refused the first attempt: the event waits for a retry.
	waitLogged(t, p, "webhook delivery failed; retrying")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{Addr: receiverAddr})
	startProxy(t, emu, db, p.addr, env...)
	// The first retry is due within the backoff's first steps (5 s, then
	// 10 s, with jitter).
	delivered := rcv.WaitFor(40*time.Second, "created and completed after the restart", bothDelivered([]string{testkit.UploadID(loc)}))
	checkLifecycleDelivered(t, delivered, rcv.Attempts(), loc, videoID, int64(len(data)))
	// The failed attempts were logged (at info), the secret never.
	checkSecretNotShown(t, "the first process's log", p.stderr.String())
}

// checkSecretNotShown fails the test if out holds the webhook secret's key.
func checkSecretNotShown(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, strings.TrimPrefix(testkit.WebhookSecret, "whsec_")) {
		t.Errorf("%s shows the webhook secret:\n%s", what, out)
	}
}

// TestWebhooksReplicaKilledMidDelivery (Redis): three replicas share the
// outbox; the receiver holds each delivery a second. The replica that
// stored the events, and is delivering them, is killed -9 mid-delivery;
// the others deliver every upload's created and completed after the lease.
// Each replica sends to its own path, so the test knows who is delivering.
func TestWebhooksReplicaKilledMidDelivery(t *testing.T) {
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	redis := startRedis(t)
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{Hold: time.Second})
	var replicas []*proc
	for i := range 3 {
		env := append(webhookEnv(rcv.URL+"/r"+strconv.Itoa(i)), "TUSPROXY_LOCK_LEASE=2s", "TUSPROXY_LOG_LEVEL=warn")
		replicas = append(replicas, startProxy(t, emu, redis.url(), "", env...))
	}
	victim := replicas[0]

	// Through the victim, which hears of each event at once (the others
	// find them at their next poll).
	const uploads = 6
	var locs, videos, ids []string
	data := testkit.RandomBytes(100_000)
	for range uploads {
		loc, videoID := uploadWhole(t, "http://"+victim.addr, data)
		locs, videos, ids = append(locs, loc), append(videos, videoID), append(ids, testkit.UploadID(loc))
	}
	deadline := time.Now().Add(10 * time.Second)
	for rcv.InFlight("/r0") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the victim never delivered: %s", testkit.Summary(rcv.Attempts()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	killed := time.Now()

	delivered := rcv.WaitFor(60*time.Second, "every upload's created and completed", bothDelivered(ids))
	t.Logf("all delivered %v after the kill (lease 9s)", time.Since(killed).Round(time.Millisecond))
	attempts := rcv.Attempts()
	cut := 0
	for _, a := range attempts {
		if a.Cut {
			cut++
			if a.Path != "/r0" {
				t.Errorf("a delivery of %s was cut, not the victim's", a.Path)
			}
		}
	}
	if cut == 0 {
		t.Errorf("the kill cut no delivery: %s", testkit.Summary(attempts))
	}
	for i, loc := range locs {
		checkLifecycleDelivered(t, delivered, attempts, loc, videos[i], int64(len(data)))
	}
	// Duplicates are allowed, but the same event always has the same id.
	idOf := map[string]string{}
	for _, a := range attempts {
		key := a.Event.Type + " " + a.Event.Data.UploadID
		if prev, ok := idOf[key]; ok && prev != a.ID {
			t.Errorf("%s sent with two webhook-ids: %s and %s", key, prev, a.ID)
		}
		idOf[key] = a.ID
	}
	t.Logf("%d attempts for %d events, %d cut by the kill", len(attempts), 2*uploads, cut)
}

// TestDevCommandDeliversWebhooks: tusproxy dev -webhook-url -webhook-secret
// sends a local receiver an upload's created and completed, verified.
func TestDevCommandDeliversWebhooks(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t, testkit.WebhookSecret, testkit.WebhookReceiverOptions{})
	addr := testkit.FreeAddr(t)
	env := map[string]string{"TUSPROXY_LISTEN": addr, "TUSPROXY_LOG_LEVEL": "error", "TUSPROXY_METRICS_LISTEN": "off"}
	stdout := &testkit.SyncBuffer{}
	stop := runInProcess("dev", env, stdout, "-webhook-url", rcv.URL+"/dev", "-webhook-secret", testkit.WebhookSecret)
	waitHealthy(t, "http://"+addr)
	data := testkit.RandomBytes(300_000)
	loc, videoID := uploadWhole(t, "http://"+addr, data)
	delivered := rcv.WaitFor(10*time.Second, "created and completed", bothDelivered([]string{testkit.UploadID(loc)}))
	checkLifecycleDelivered(t, delivered, rcv.Attempts(), loc, videoID, int64(len(data)))
	if err := stop(); err != nil {
		t.Fatalf("dev exited with %v", err)
	}
	checkSecretNotShown(t, "dev's banner", stdout.String())
	if want := "Webhooks (signed) are sent to:  " + rcv.URL + "/dev\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("dev's banner does not say where webhooks go (%q):\n%s", want, stdout.String())
	}
}
