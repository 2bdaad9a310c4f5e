package kinescopetest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// videoJSON is a video as GET /v2/emulator/videos shows it.
type videoJSON struct {
	ID         string `json:"id"`
	UploadID   string `json:"upload_id"`
	Endpoint   string `json:"endpoint"`
	Filename   string `json:"filename"`
	Filesize   int64  `json:"filesize"`
	Offset     int64  `json:"offset"`
	Complete   bool   `json:"complete"`
	Terminated bool   `json:"terminated"`
	CreatedAt  string `json:"created_at"`
	SHA256     string `json:"sha256"`
}

func getJSON(t *testing.T, client *http.Client, url, token string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, raw := testkit.Send(t, client, req)
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("GET %s: body %s: %v", req.URL.Path, raw, err)
	}
	return resp.StatusCode
}

func TestVideoRoutes(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	data := testkit.RandomBytes(1000)
	full, fullEndpoint := createVideo(t, client, s, 1000)
	patch(t, client, fullEndpoint, 0, data)
	part, partEndpoint := createVideo(t, client, s, 1000)
	patch(t, client, partEndpoint, 0, data[:400])
	gone, goneEndpoint := createVideo(t, client, s, 1000)
	if resp, _ := testkit.Send(t, client, testkit.TusRequest(t, http.MethodDelete, goneEndpoint, nil)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", resp.StatusCode)
	}

	var list struct {
		Data []videoJSON `json:"data"`
	}
	if status := getJSON(t, client, s.URL+"/v2/emulator/videos", testToken, &list); status != http.StatusOK {
		t.Fatalf("list: status %d", status)
	}
	want := []struct {
		id         string
		offset     int64
		complete   bool
		terminated bool
		sha256     string
	}{
		{full, 1000, true, false, testkit.SHA256Hex(data)},
		{part, 400, false, false, testkit.SHA256Hex(data[:400])},
		{gone, 0, false, true, ""},
	}
	if len(list.Data) != len(want) {
		t.Fatalf("list has %d videos, want %d", len(list.Data), len(want))
	}
	for i, w := range want {
		got := list.Data[i]
		if got.ID != w.id || got.Offset != w.offset || got.Complete != w.complete || got.Terminated != w.terminated ||
			got.SHA256 != w.sha256 || got.Filesize != 1000 || got.Filename != "clip.mp4" || got.UploadID == "" || got.CreatedAt == "" {
			t.Errorf("video %d = %+v, want %+v", i, got, w)
		}
	}

	var one struct {
		Data videoJSON `json:"data"`
	}
	if status := getJSON(t, client, s.URL+"/v2/emulator/videos/"+part, testToken, &one); status != http.StatusOK {
		t.Fatalf("one: status %d", status)
	}
	if one.Data != list.Data[1] {
		t.Errorf("one video = %+v, want %+v", one.Data, list.Data[1])
	}

	refusals := []struct {
		name     string
		url      string
		token    string
		wantCode int
		status   int
	}{
		{"unknown video", s.URL + "/v2/emulator/videos/nope", testToken, 404000, http.StatusNotFound},
		{"no token", s.URL + "/v2/emulator/videos", "", 100102, http.StatusUnauthorized},
		{"wrong token", s.URL + "/v2/emulator/videos/" + full, "not-the-token", 100102, http.StatusUnauthorized},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			var answer apiErrorBody
			if status := getJSON(t, client, tt.url, tt.token, &answer); status != tt.status || answer.Error.Code != tt.wantCode {
				t.Errorf("status %d, error %+v; want %d, code %d", status, answer.Error, tt.status, tt.wantCode)
			}
		})
	}
}
