package kinescopetest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts kinescopetest.Options
	}{
		{"no token", kinescopetest.Options{}},
		{"relative public URL", kinescopetest.Options{Token: testToken, PublicURL: "/uploads"}},
		{"public URL without http", kinescopetest.Options{Token: testToken, PublicURL: "ftp://example.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := kinescopetest.New(tt.opts)
			if err == nil {
				e.Close()
				t.Fatal("New succeeded, want an error")
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q carries the token", err)
			}
		})
	}
}

func TestInit(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)

	tests := []struct {
		name        string
		token       string
		body        string
		wantStatus  int
		wantCode    int    // Kinescope error code of a refusal
		wantInError string // part of the refusal's detail
	}{
		{
			name:       "minimal",
			token:      testToken,
			body:       `{"parent_id":"p1","filesize":10}`,
			wantStatus: http.StatusCreated,
		},
		{
			name:       "all fields",
			token:      testToken,
			body:       `{"parent_id":"p1","type":"video","title":"Title","filename":"a.mp4","filesize":123456789,"description":"d","client_ip":"203.0.113.9"}`,
			wantStatus: http.StatusCreated,
		},
		{name: "no token", body: `{"parent_id":"p1","filesize":10}`, wantStatus: http.StatusUnauthorized, wantCode: 100102},
		{name: "wrong token", token: "00000000-0000-4000-8000-000000000000", body: `{"parent_id":"p1","filesize":10}`, wantStatus: http.StatusUnauthorized, wantCode: 100102},
		{name: "bad JSON", token: testToken, body: `{"parent_id":`, wantStatus: http.StatusBadRequest, wantCode: 400101},
		{name: "filesize as string", token: testToken, body: `{"parent_id":"p1","filesize":"10"}`, wantStatus: http.StatusBadRequest, wantCode: 400101},
		{name: "missing filesize", token: testToken, body: `{"parent_id":"p1"}`, wantStatus: http.StatusBadRequest, wantCode: 400000, wantInError: "filesize"},
		{name: "negative filesize", token: testToken, body: `{"parent_id":"p1","filesize":-1}`, wantStatus: http.StatusBadRequest, wantCode: 400000, wantInError: "filesize"},
		{name: "missing parent_id", token: testToken, body: `{"filesize":10}`, wantStatus: http.StatusBadRequest, wantCode: 400000, wantInError: "parent_id"},
		{name: "type not video", token: testToken, body: `{"parent_id":"p1","type":"audio","filesize":10}`, wantStatus: http.StatusBadRequest, wantCode: 400000, wantInError: "type"},
	}
	created := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := postInit(t, client, s.InitURL, tt.token, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, raw)
			}
			if !uuidPattern.MatchString(resp.Header.Get("X-Request-ID")) {
				t.Errorf("X-Request-ID %q is not a UUID", resp.Header.Get("X-Request-ID"))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.wantStatus != http.StatusCreated {
				var answer apiErrorBody
				if err := json.Unmarshal(raw, &answer); err != nil {
					t.Fatalf("error body %s: %v", raw, err)
				}
				if answer.Error.Code != tt.wantCode || answer.Error.Message == "" {
					t.Errorf("error %+v, want code %d and a message", answer.Error, tt.wantCode)
				}
				if !strings.Contains(answer.Error.Detail, tt.wantInError) {
					t.Errorf("detail %q does not mention %q", answer.Error.Detail, tt.wantInError)
				}
				return
			}

			created++
			var answer struct {
				Data initData `json:"data"`
			}
			if err := json.Unmarshal(raw, &answer); err != nil {
				t.Fatalf("answer %s: %v", raw, err)
			}
			var req struct {
				ParentID    string `json:"parent_id"`
				Type        string `json:"type"`
				Title       string `json:"title"`
				Filename    string `json:"filename"`
				Filesize    int64  `json:"filesize"`
				Description string `json:"description"`
				ClientIP    string `json:"client_ip"`
			}
			if err := json.Unmarshal([]byte(tt.body), &req); err != nil {
				t.Fatal(err)
			}
			got := answer.Data
			if !uuidPattern.MatchString(got.ID) {
				t.Errorf("video id %q is not a UUID v4", got.ID)
			}
			uploadID, ok := strings.CutPrefix(got.Endpoint, s.URL+"/v2/upload/")
			if !ok || !uuidPattern.MatchString(uploadID) {
				t.Errorf("endpoint %q is not %s/v2/upload/<uuid>", got.Endpoint, s.URL)
			}
			if got.Filesize != req.Filesize || got.ParentID != req.ParentID || got.Title != req.Title || got.Filename != req.Filename {
				t.Errorf("answer %+v does not echo request %+v", got, req)
			}

			video, ok := s.Video(got.ID)
			if !ok {
				t.Fatalf("Video(%s) not found", got.ID)
			}
			want := kinescopetest.Video{
				ID: got.ID, ParentID: req.ParentID, Type: req.Type, Title: req.Title, Filename: req.Filename,
				Description: req.Description, ClientIP: req.ClientIP, Endpoint: got.Endpoint, UploadID: uploadID,
				Filesize: req.Filesize, CreatedAt: video.CreatedAt,
			}
			if video != want {
				t.Errorf("Video = %+v\nwant    %+v", video, want)
			}
			if video.CreatedAt.IsZero() {
				t.Error("CreatedAt is zero")
			}
		})
	}

	if got := s.Stats().Init; got != len(tests) {
		t.Errorf("Stats().Init = %d, want %d", got, len(tests))
	}
	if got := len(s.Videos()); got != created {
		t.Errorf("%d videos, want %d", got, created)
	}
}

func TestInitRefusesOtherMethods(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	req, _ := http.NewRequest(http.MethodGet, s.InitURL, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, raw := testkit.Send(t, newClient(t), req)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
		t.Fatalf("GET /v2/init: status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	var answer apiErrorBody
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Error.Code == 0 {
		t.Errorf("body %s is not a Kinescope error (%v)", raw, err)
	}
}

func TestInitPublicURL(t *testing.T) {
	s := startServer(t, kinescopetest.Options{PublicURL: "https://uploader.example.test/"})
	_, endpoint := createVideo(t, newClient(t), s, 10)
	if !strings.HasPrefix(endpoint, "https://uploader.example.test/v2/upload/") {
		t.Errorf("endpoint %q does not start with the public URL", endpoint)
	}
}

func TestUnknownRoute(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	resp, raw := testkit.Send(t, newClient(t), testkit.TusRequest(t, http.MethodGet, s.URL+"/v1/videos", nil))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	var answer apiErrorBody
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Error.Code == 0 {
		t.Errorf("body %s is not a Kinescope error (%v)", raw, err)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}
}

// TestRequestIDs checks that every kind of answer carries an X-Request-ID of
// its own.
func TestRequestIDs(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	_, endpoint := createVideo(t, client, s, 10)

	var ids []string
	record := func(what string, resp *http.Response) {
		id := resp.Header.Get("X-Request-ID")
		if !uuidPattern.MatchString(id) {
			t.Errorf("%s: X-Request-ID %q is not a UUID", what, id)
		}
		ids = append(ids, id)
	}
	resp, _ := postInit(t, client, s.InitURL, testToken, `{"parent_id":"p","filesize":1}`)
	record("init", resp)
	resp, _ = postInit(t, client, s.InitURL, "", `{}`)
	record("init 401", resp)
	record("HEAD", head(t, client, endpoint))
	record("HEAD 404", head(t, client, s.URL+"/v2/upload/00000000-0000-4000-8000-000000000000"))
	resp, _ = testkit.Send(t, client, testkit.TusRequest(t, http.MethodOptions, s.URL+"/v2/upload/", nil))
	record("OPTIONS", resp)
	resp, _ = testkit.Send(t, client, patchRequest(t, endpoint, 0, []byte("0123456789")))
	record("PATCH", resp)
	resp, _ = testkit.Send(t, client, testkit.TusRequest(t, http.MethodGet, s.URL+"/nowhere", nil))
	record("unknown route", resp)

	seen := make(map[string]bool)
	for _, id := range ids {
		if seen[id] {
			t.Errorf("X-Request-ID %s sent twice", id)
		}
		seen[id] = true
	}
}
