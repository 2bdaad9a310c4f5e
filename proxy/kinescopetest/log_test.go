package kinescopetest_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// TestLogsKeepSecrets runs every kind of request with a debug logger and
// checks that neither the token nor an upload id reaches the log.
func TestLogsKeepSecrets(t *testing.T) {
	var logs testkit.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := startServer(t, kinescopetest.Options{Logger: logger})
	client := newClient(t)

	id, endpoint := createVideo(t, client, s, 10)
	postInit(t, client, s.InitURL, "wrong-token", validInit)
	patch(t, client, endpoint, 0, []byte("01234"))
	s.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 2})
	if resp, err := client.Do(patchRequest(t, endpoint, 5, []byte("56789"))); err == nil {
		resp.Body.Close()
		t.Fatal("cut PATCH answered")
	}
	s.SetFaults(kinescopetest.Faults{FailEvery: 1})
	head(t, client, endpoint)
	s.SetFaults(kinescopetest.Faults{})
	testkit.Send(t, client, testkit.TusRequest(t, http.MethodDelete, endpoint, nil))

	video, _ := s.Video(id)
	got := logs.String()
	if !strings.Contains(got, id) {
		t.Fatalf("the log does not mention video %s:\n%s", id, got)
	}
	for _, secret := range []string{testToken, "wrong-token", video.UploadID} {
		if strings.Contains(got, secret) {
			t.Errorf("the log carries %q:\n%s", secret, got)
		}
	}
}
