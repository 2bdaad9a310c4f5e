package kinescopetest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// checkDiscardedSum fails unless the discard-mode video has received exactly
// want, by its hash, and its bytes are not kept.
func checkDiscardedSum(t *testing.T, s *kinescopetest.Server, videoID string, want []byte) {
	t.Helper()
	sum, err := s.SHA256(videoID)
	if err != nil {
		t.Fatalf("SHA256: %v", err)
	}
	if sum != testkit.SHA256Hex(want) {
		t.Errorf("SHA256 = %s, want %s (of %d bytes)", sum, testkit.SHA256Hex(want), len(want))
	}
	if _, err := s.Data(videoID); !errors.Is(err, kinescopetest.ErrDiscarded) {
		t.Errorf("Data: error %v, want ErrDiscarded", err)
	}
}

func TestDiscardKeepsOffsetsAndHash(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, kinescopetest.Options{Discard: true, Dir: dir})
	client := newClient(t)
	data := testkit.RandomBytes(700_001)
	id, endpoint := createVideo(t, client, s, int64(len(data)))
	checkDiscardedSum(t, s, id, nil)

	var offset int64
	for _, size := range []int64{1, 65536, 300_000} {
		offset = patch(t, client, endpoint, offset, data[offset:offset+size])
	}
	if got := testkit.HeadOffset(t, client, endpoint); got != offset {
		t.Fatalf("HEAD offset %d, want %d", got, offset)
	}
	checkDiscardedSum(t, s, id, data[:offset])

	// A PATCH at the wrong offset changes nothing, as tusd answers it.
	resp, _ := testkit.Send(t, client, patchRequest(t, endpoint, offset-1, data[offset-1:offset+10]))
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("PATCH at a wrong offset: status %d, want 409", resp.StatusCode)
	}
	// A body longer than what remains is refused before anything is hashed.
	resp, _ = testkit.Send(t, client, patchRequest(t, endpoint, offset, append(data[offset:len(data):len(data)], 'x')))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PATCH past the length: status %d, want 413", resp.StatusCode)
	}
	checkDiscardedSum(t, s, id, data[:offset])

	if got := patch(t, client, endpoint, offset, data[offset:]); got != int64(len(data)) {
		t.Fatalf("last PATCH answered offset %d, want %d", got, len(data))
	}
	checkDiscardedSum(t, s, id, data)
	if v, _ := s.Video(id); !v.Complete || v.Offset != int64(len(data)) {
		t.Errorf("Video = %+v, want complete", v)
	}

	// Tests in other languages read the hash from the emulator's own route.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v2/emulator/videos/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, raw := testkit.Send(t, client, req)
	var answer struct {
		Data struct {
			SHA256 string `json:"sha256"`
			Offset int64  `json:"offset"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET video: status %d, body %s, err %v", resp.StatusCode, raw, err)
	}
	if answer.Data.SHA256 != testkit.SHA256Hex(data) || answer.Data.Offset != int64(len(data)) {
		t.Errorf("GET video = %+v, want sha256 %s at %d", answer.Data, testkit.SHA256Hex(data), len(data))
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("discard mode wrote %d files into Dir", len(entries))
	}
}

func TestDiscardKeepsBytesBeforeACut(t *testing.T) {
	s := startServer(t, kinescopetest.Options{Discard: true})
	client := newClient(t)
	data := testkit.RandomBytes(1 << 20)
	id, endpoint := createVideo(t, client, s, int64(len(data)))

	const kept = 100_000
	s.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: kept})
	if _, err := client.Do(patchRequest(t, endpoint, 0, data)); err == nil {
		t.Fatal("a cut PATCH got an answer")
	}
	s.SetFaults(kinescopetest.Faults{})
	if got := testkit.HeadOffset(t, client, endpoint); got != kept {
		t.Fatalf("HEAD after the cut: offset %d, want %d", got, kept)
	}
	checkDiscardedSum(t, s, id, data[:kept])
	if got := patch(t, client, endpoint, kept, data[kept:]); got != int64(len(data)) {
		t.Fatalf("resumed PATCH answered offset %d, want %d", got, len(data))
	}
	checkDiscardedSum(t, s, id, data)
}

func TestDiscardDelete(t *testing.T) {
	s := startServer(t, kinescopetest.Options{Discard: true})
	client := newClient(t)
	id, endpoint := createVideo(t, client, s, 10)
	patch(t, client, endpoint, 0, []byte("12345"))

	resp, _ := testkit.Send(t, client, testkit.TusRequest(t, http.MethodDelete, endpoint, nil))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", resp.StatusCode)
	}
	if resp := head(t, client, endpoint); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD after DELETE: status %d, want 404", resp.StatusCode)
	}
	if _, err := s.SHA256(id); !errors.Is(err, kinescopetest.ErrTerminated) {
		t.Errorf("SHA256 after DELETE: error %v, want ErrTerminated", err)
	}
	if v, _ := s.Video(id); !v.Terminated || v.Offset != 5 {
		t.Errorf("Video after DELETE = %+v, want terminated at 5", v)
	}
	if _, err := s.SHA256("no-such-video"); !errors.Is(err, kinescopetest.ErrUnknownVideo) {
		t.Errorf("SHA256 of an unknown video: error %v, want ErrUnknownVideo", err)
	}
}

// TestDiscardConcurrentUploads reads hashes and offsets while uploads are
// written, which the race detector checks.
func TestDiscardConcurrentUploads(t *testing.T) {
	s := startServer(t, kinescopetest.Options{Discard: true})
	client := newClient(t)
	const uploads = 8
	type upload struct {
		id, endpoint string
		data         []byte
	}
	all := make([]upload, uploads)
	for i := range all {
		all[i].data = testkit.RandomBytes(300_000 + i)
		all[i].id, all[i].endpoint = createVideo(t, client, s, int64(len(all[i].data)))
	}
	var wg sync.WaitGroup
	for _, u := range all {
		wg.Go(func() {
			for offset := 0; offset < len(u.data); offset += 64 << 10 {
				end := min(offset+64<<10, len(u.data))
				resp, err := client.Do(patchRequest(t, u.endpoint, int64(offset), u.data[offset:end]))
				if err != nil {
					t.Errorf("PATCH: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("PATCH at %d: status %d", offset, resp.StatusCode)
					return
				}
				_, _ = s.SHA256(u.id)
				_ = s.Videos()
			}
		})
	}
	wg.Wait()
	for _, u := range all {
		checkDiscardedSum(t, s, u.id, u.data)
	}
}
