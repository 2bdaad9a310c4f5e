package proxy_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
)

// TestMetadataCap: Upload-Metadata is stored with every upload, so a
// creation with more than TUSPROXY_MAX_METADATA_BYTES of it is refused with
// 413 before Kinescope is asked for a video (issue 11, item 5: 200 creations
// with 42 KB each added 16 MiB to the bolt file).
func TestMetadataCap(t *testing.T) {
	e := newEnv(t, nil)
	big := "filename " + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 31_500))) // 42 KB
	if len(big) < 42_000 {
		t.Fatalf("test metadata is %d bytes", len(big))
	}
	resp, body := e.doBody(http.MethodPost, e.base, map[string]string{"Upload-Length": "100", "Upload-Metadata": big}, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("creation with 42 KB of metadata: %d, want 413", resp.StatusCode)
	}
	if !strings.Contains(body, "Upload-Metadata") || !strings.Contains(body, "4096") {
		t.Errorf("error body %q does not say what is too large and the limit", body)
	}
	if resp.Header.Get("Tus-Resumable") != "1.0.0" {
		t.Error("the refusal is not a tus answer (no Tus-Resumable)")
	}
	// Split over several header lines, it is the same metadata.
	req := testkit.TusRequest(t, http.MethodPost, e.base, nil, "Upload-Length", "100")
	for range 2 {
		req.Header.Add("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(strings.Repeat("y", 2000))))
	}
	split, _ := testkit.Send(t, http.DefaultClient, req)
	if split.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("creation with 2 x 2.7 KB of metadata: %d, want 413", split.StatusCode)
	}
	if n := e.emu.Stats().Init; n != 0 {
		t.Fatalf("Kinescope got %d init calls for refused creations, want none", n)
	}

	// Exactly at the cap is fine.
	atCap := "filename " + strings.Repeat("A", 4096-len("filename "))
	url := e.create(100, atCap)
	if got := e.do(http.MethodHead, url, nil, nil).Header.Get("Upload-Metadata"); got != atCap {
		t.Errorf("HEAD Upload-Metadata has %d bytes, want the %d sent", len(got), len(atCap))
	}
}
