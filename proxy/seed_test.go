package proxy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

func TestSeedUploadWithTusHeaders(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(50_000)
	resp := e.do(http.MethodPost, e.srv.URL+"/upload", map[string]string{
		"Upload-Length":   itoa(int64(len(data))),
		"Upload-Metadata": meta("filename", "seed.mp4"),
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	endpoint := resp.Header.Get("Location")
	videos := e.emu.Videos()
	if len(videos) != 1 || endpoint != videos[0].Endpoint {
		t.Fatalf("Location %q is not the Kinescope endpoint", endpoint)
	}
	if videos[0].Filename != "seed.mp4" || videos[0].Filesize != int64(len(data)) {
		t.Errorf("init fields %+v", videos[0])
	}
	// The client then uploads straight to Kinescope.
	r, _ := testkit.Tus(t, http.DefaultClient, http.MethodPatch, endpoint, bytes.NewReader(data),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("direct PATCH: %d", r.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, videos[0].ID, data)
}

func TestSeedUploadJSON(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"filename": "clip.mov", "filesize": 2048, "title": "My clip", "description": "d"}`
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out struct {
		Endpoint string `json:"endpoint"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	v := e.emu.Videos()[0]
	if out.Endpoint != v.Endpoint || v.Title != "My clip" || v.Filename != "clip.mov" || v.Filesize != 2048 {
		t.Fatalf("answer %+v, video %+v", out, v)
	}
}

func TestSeedUploadBadInput(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		name        string
		contentType string
		body        string
		headers     map[string]string
		status      int
	}{
		{"bad JSON", "application/json", `{"filesize": `, nil, 400},
		{"zero size JSON", "application/json", `{"filename": "a", "filesize": 0}`, nil, 400},
		{"missing Upload-Length", "", "", nil, 400},
		{"concat", "", "", map[string]string{"Upload-Length": "5", "Upload-Concat": "partial"}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := e.emu.Stats().Init; n != 0 {
		t.Errorf("refused requests called /v2/init %d times", n)
	}
}
