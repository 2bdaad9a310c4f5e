package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// Kinescope-Video-Id: every answer about an upload names its Kinescope
// video, so an application learns which video its upload became.

// videoOf is the Kinescope video id the store holds for the upload at loc.
func (e *env) videoOf(loc string) string {
	e.t.Helper()
	rec, err := e.store.Get(e.t.Context(), testkit.UploadID(loc))
	if err != nil {
		e.t.Fatalf("store: %v", err)
	}
	if rec.VideoID == "" {
		e.t.Fatal("the record has no video id")
	}
	return rec.VideoID
}

func TestVideoIDInEveryAnswerAboutAnUpload(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(300_000)
	wantID := func(t *testing.T, what string, resp *http.Response, want string) {
		t.Helper()
		if got := resp.Header.Get("Kinescope-Video-Id"); got != want {
			t.Errorf("%s (%d): Kinescope-Video-Id %q, want %q", what, resp.StatusCode, got, want)
		}
	}

	// Creation without a body.
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": itoa(int64(len(data)))}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	video := e.videoOf(loc)
	if _, ok := e.emu.Video(video); !ok {
		t.Fatalf("the emulator has no video %s", video)
	}
	wantID(t, "POST 201", resp, video)

	resp = e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	wantID(t, "HEAD 200", resp, video)

	resp = e.patch(loc, 0, data[:100_000])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	wantID(t, "PATCH 204", resp, video)

	// An answer about the upload that is not a success names it too.
	resp = e.patch(loc, 0, data[:10])
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("PATCH at a stale offset: %d", resp.StatusCode)
	}
	wantID(t, "PATCH 409", resp, video)

	resp = e.patch(loc, 100_000, data[100_000:])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("last PATCH: %d", resp.StatusCode)
	}
	wantID(t, "last PATCH 204", resp, video)
	testkit.CheckBytes(t, e.emu, video, data)

	// Creation with a body: each upload names its own video.
	resp = e.do(http.MethodPost, e.base, map[string]string{
		"Upload-Length": "1000", "Content-Type": "application/offset+octet-stream",
	}, testkit.RandomBytes(400))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != "400" {
		t.Fatalf("POST with a body: %d, offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	second := resp.Header.Get("Location")
	wantID(t, "POST 201 with a body", resp, e.videoOf(second))
	if e.videoOf(second) == video {
		t.Error("two uploads named the same video")
	}
	deleted := e.videoOf(second)
	resp = e.do(http.MethodDelete, second, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	wantID(t, "DELETE 204", resp, deleted)

	// No record, no id: an unknown upload and a refused creation say nothing.
	resp = e.do(http.MethodHead, e.base+"00000000000000000000000000000000", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an unknown upload: %d", resp.StatusCode)
	}
	wantID(t, "HEAD 404", resp, "")
	resp = e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "0"}, nil)
	wantID(t, "POST 400", resp, "")

	// The seed flow's answers name the video they made too.
	resp, body := e.doBody(http.MethodPost, e.srv.URL+"/upload", map[string]string{
		"Upload-Length": "10", "Accept": "application/json",
	}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("seed: %d", resp.StatusCode)
	}
	if id := resp.Header.Get("Kinescope-Video-Id"); id == "" || !strings.Contains(body, `"video_id":"`+id+`"`) {
		t.Errorf("seed: Kinescope-Video-Id %q, body %s", id, body)
	}
}

// TestVideoIDNotToStrangers: the id is told only once the caller has passed
// the access check; another owner's HEAD gets a bare 404.
func TestVideoIDNotToStrangers(t *testing.T) {
	hook := newHookServer(t, ownerByToken)
	e := newEnv(t, map[string]string{"TUSPROXY_AUTH_HOOK_URL": hook.URL})
	resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10", "Authorization": "Bearer alice-session"}, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Kinescope-Video-Id") == "" {
		t.Fatalf("creation: %d, Kinescope-Video-Id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
	loc := resp.Header.Get("Location")
	resp = e.do(http.MethodHead, loc, map[string]string{"Authorization": "Bearer bob-session"}, nil)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Kinescope-Video-Id") != "" {
		t.Errorf("HEAD by another owner: %d, Kinescope-Video-Id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
	resp = e.do(http.MethodHead, loc, map[string]string{"Authorization": "Bearer alice-session"}, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Kinescope-Video-Id") != e.videoOf(loc) {
		t.Errorf("HEAD by the owner: %d, Kinescope-Video-Id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
}

// TestVideoIDReadableAcrossOrigins: browsers let a page read only the
// headers listed in Access-Control-Expose-Headers, on the preflight's
// answer and on the request's.
func TestVideoIDReadableAcrossOrigins(t *testing.T) {
	const origin = "https://app.example.com"
	e := newEnv(t, map[string]string{"TUSPROXY_CORS_ORIGINS": origin})
	exposes := func(t *testing.T, what string, resp *http.Response) {
		t.Helper()
		for _, h := range strings.Split(resp.Header.Get("Access-Control-Expose-Headers"), ",") {
			if strings.EqualFold(strings.TrimSpace(h), "Kinescope-Video-Id") {
				return
			}
		}
		t.Errorf("%s: Access-Control-Expose-Headers %q lacks Kinescope-Video-Id", what, resp.Header.Get("Access-Control-Expose-Headers"))
	}
	resp := e.do(http.MethodOptions, e.base, map[string]string{
		"Tus-Resumable": "", "Origin": origin, "Access-Control-Request-Method": "POST",
	}, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d", resp.StatusCode)
	}
	exposes(t, "preflight", resp)
	resp = e.do(http.MethodPost, e.base, map[string]string{"Origin": origin, "Upload-Length": "10"}, nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Kinescope-Video-Id") == "" {
		t.Fatalf("POST: %d, Kinescope-Video-Id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
	exposes(t, "POST", resp)
	resp = e.do(http.MethodPatch, resp.Header.Get("Location"), map[string]string{
		"Origin": origin, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
	}, testkit.RandomBytes(10))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Kinescope-Video-Id") == "" {
		t.Fatalf("PATCH: %d, Kinescope-Video-Id %q", resp.StatusCode, resp.Header.Get("Kinescope-Video-Id"))
	}
	exposes(t, "PATCH", resp)
}

// TestVideoIDOnlyWhenItLooksLikeOne: the id is Kinescope's text; one that
// is not an id token (spaces, quotes, markup, or very long) never reaches a
// client in a header.
func TestVideoIDOnlyWhenItLooksLikeOne(t *testing.T) {
	for name, id := range map[string]string{
		"markup":    `<script>alert(1)</script>`,
		"spaces":    "video one",
		"too long":  strings.Repeat("a", 129),
		"non-ASCII": "видео",
	} {
		t.Run(name, func(t *testing.T) {
			init := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{
					"id": id, "endpoint": "http://" + r.Host + "/upload/capability-0123456789",
				}})
			}))
			t.Cleanup(init.Close)
			e := newEnv(t, map[string]string{"KINESCOPE_INIT_URL": init.URL + "/v2/init"})
			resp := e.do(http.MethodPost, e.base, map[string]string{"Upload-Length": "10"}, nil)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST: %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Kinescope-Video-Id"); got != "" {
				t.Errorf("Kinescope-Video-Id %q", got)
			}
		})
	}
}
