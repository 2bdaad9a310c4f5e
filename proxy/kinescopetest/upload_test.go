package kinescopetest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestUploadInOnePatch(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	data := testkit.RandomBytes(1<<20 + 3)
	id, endpoint := createVideo(t, client, s, int64(len(data)))

	if got := patch(t, client, endpoint, 0, data); got != int64(len(data)) {
		t.Fatalf("PATCH answered offset %d, want %d", got, len(data))
	}

	resp := head(t, client, endpoint)
	for header, want := range map[string]string{
		"Upload-Offset": strconv.Itoa(len(data)),
		"Upload-Length": strconv.Itoa(len(data)),
		"Tus-Resumable": "1.0.0",
		"Cache-Control": "no-store",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("HEAD %s = %q, want %q", header, got, want)
		}
	}
	video, _ := s.Video(id)
	if video.Offset != int64(len(data)) || !video.Complete || video.Terminated {
		t.Errorf("Video = %+v, want complete at %d", video, len(data))
	}
	testkit.CheckBytes(t, s, id, data)
	if got := s.Stats(); got.Patch != 1 || got.Head != 1 || got.Init != 1 {
		t.Errorf("Stats = %+v", got)
	}
}

func TestUploadInChunks(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	data := testkit.RandomBytes(700_001)
	id, endpoint := createVideo(t, client, s, int64(len(data)))

	var offset int64
	for _, size := range []int64{1, 65536, 300_000, 4, 334_460} {
		offset = patch(t, client, endpoint, offset, data[offset:offset+size])
		if got := testkit.HeadOffset(t, client, endpoint); got != offset {
			t.Fatalf("HEAD offset %d after PATCH answered %d", got, offset)
		}
		if video, _ := s.Video(id); video.Offset != offset || video.Complete != (offset == int64(len(data))) {
			t.Fatalf("Video = %+v at offset %d", video, offset)
		}
	}
	if offset != int64(len(data)) {
		t.Fatalf("chunks summed to %d, want %d", offset, len(data))
	}
	testkit.CheckBytes(t, s, id, data)
}

// TestResumeWithHead uploads part of a file, forgets everything but the
// endpoint, and finishes from the offset HEAD tells.
func TestResumeWithHead(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	data := testkit.RandomBytes(200_000)
	id, endpoint := createVideo(t, newClient(t), s, int64(len(data)))
	patch(t, newClient(t), endpoint, 0, data[:77_777])

	client := newClient(t)
	offset := testkit.HeadOffset(t, client, endpoint)
	if offset != 77_777 {
		t.Fatalf("HEAD offset %d, want 77777", offset)
	}
	patch(t, client, endpoint, offset, data[offset:])
	testkit.CheckBytes(t, s, id, data)
}

func TestMethodOverride(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	id, endpoint := createVideo(t, client, s, 5)

	req := patchRequest(t, endpoint, 0, []byte("hello"))
	req.Method = http.MethodPost
	req.Header.Set("X-HTTP-Method-Override", http.MethodPatch)
	resp, raw := testkit.Send(t, client, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST overridden to PATCH: status %d, body %q", resp.StatusCode, raw)
	}
	testkit.CheckBytes(t, s, id, []byte("hello"))
	if got := s.Stats().Patch; got != 1 {
		t.Errorf("Stats().Patch = %d, want 1", got)
	}
}

func TestTusRefusals(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	_, endpoint := createVideo(t, client, s, 10)
	patch(t, client, endpoint, 0, []byte("01234"))

	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
	}{
		{"PATCH without Tus-Resumable", func() *http.Request {
			req := patchRequest(t, endpoint, 5, []byte("5"))
			req.Header.Del("Tus-Resumable")
			return req
		}, http.StatusPreconditionFailed},
		{"PATCH at a wrong offset", func() *http.Request {
			return patchRequest(t, endpoint, 3, []byte("3"))
		}, http.StatusConflict},
		{"PATCH without Content-Type", func() *http.Request {
			req := patchRequest(t, endpoint, 5, []byte("5"))
			req.Header.Del("Content-Type")
			return req
		}, http.StatusBadRequest},
		{"PATCH past the size", func() *http.Request {
			return patchRequest(t, endpoint, 5, []byte("56789X"))
		}, http.StatusRequestEntityTooLarge},
		{"tus creation", func() *http.Request {
			req := testkit.TusRequest(t, http.MethodPost, s.URL+"/v2/upload/", nil)
			req.Header.Set("Upload-Length", "10")
			return req
		}, http.StatusMethodNotAllowed},
		{"creation without a slash", func() *http.Request {
			req := testkit.TusRequest(t, http.MethodPost, s.URL+"/v2/upload", nil)
			req.Header.Set("Upload-Length", "10")
			return req
		}, http.StatusMethodNotAllowed},
		{"HEAD of an unknown upload", func() *http.Request {
			return testkit.TusRequest(t, http.MethodHead, s.URL+"/v2/upload/00000000-0000-4000-8000-000000000000", nil)
		}, http.StatusNotFound},
		{"HEAD of a malformed id", func() *http.Request {
			return testkit.TusRequest(t, http.MethodHead, s.URL+"/v2/upload/..%2F..%2Fetc", nil)
		}, http.StatusNotFound},
		{"DELETE of a malformed id", func() *http.Request {
			return testkit.TusRequest(t, http.MethodDelete, s.URL+"/v2/upload/x/../y", nil)
		}, http.StatusNotFound},
		{"GET (download is off)", func() *http.Request {
			return testkit.TusRequest(t, http.MethodGet, endpoint, nil)
		}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := testkit.Send(t, client, tt.request())
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if resp.Header.Get("X-Request-ID") == "" {
				t.Error("no X-Request-ID")
			}
		})
	}
	// None of the refusals moved the upload.
	if got := testkit.HeadOffset(t, client, endpoint); got != 5 {
		t.Errorf("offset %d after refusals, want 5", got)
	}
}

func TestOptions(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	resp, _ := testkit.Send(t, newClient(t), testkit.TusRequest(t, http.MethodOptions, s.URL+"/v2/upload/", nil))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("OPTIONS: status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Tus-Version"); got != "1.0.0" {
		t.Errorf("Tus-Version %q", got)
	}
	if got := resp.Header.Get("Tus-Extension"); !strings.Contains(got, "termination") {
		t.Errorf("Tus-Extension %q lacks termination", got)
	}
}

func TestDeleteThenHead(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	id, endpoint := createVideo(t, client, s, 10)
	patch(t, client, endpoint, 0, []byte("0123"))

	resp, _ := testkit.Send(t, client, testkit.TusRequest(t, http.MethodDelete, endpoint, nil))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d", resp.StatusCode)
	}
	if resp := head(t, client, endpoint); resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD after DELETE: status %d, want 404", resp.StatusCode)
	}
	resp, _ = testkit.Send(t, client, patchRequest(t, endpoint, 4, []byte("4")))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("PATCH after DELETE: status %d, want 404", resp.StatusCode)
	}

	video, _ := s.Video(id)
	if !video.Terminated || video.Offset != 4 || video.Complete {
		t.Errorf("Video = %+v, want terminated at offset 4", video)
	}
	if _, err := s.Data(id); !errors.Is(err, kinescopetest.ErrTerminated) {
		t.Errorf("Data error %v, want ErrTerminated", err)
	}
	if _, err := s.SHA256("no-such-video"); !errors.Is(err, kinescopetest.ErrUnknownVideo) {
		t.Errorf("SHA256 of an unknown video: error %v, want ErrUnknownVideo", err)
	}
	if got := s.Stats().Delete; got != 1 {
		t.Errorf("Stats().Delete = %d, want 1", got)
	}
}

func TestConcurrentUploads(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	const uploads = 24
	type upload struct {
		id       string
		endpoint string
		data     []byte
	}
	all := make([]upload, uploads)
	client := newClient(t)
	for i := range all {
		all[i].data = testkit.RandomBytes(200_000 + i*1000)
		all[i].id, all[i].endpoint = createVideo(t, client, s, int64(len(all[i].data)))
	}

	var wg sync.WaitGroup
	for _, u := range all {
		wg.Go(func() {
			const chunk = 64 << 10
			var offset int64
			for offset < int64(len(u.data)) {
				end := min(offset+chunk, int64(len(u.data)))
				resp, err := client.Do(patchRequest(t, u.endpoint, offset, u.data[offset:end]))
				if err != nil {
					t.Errorf("PATCH: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("PATCH: status %d", resp.StatusCode)
					return
				}
				offset = end
			}
		})
	}
	wg.Wait()
	for _, u := range all {
		testkit.CheckBytes(t, s, u.id, u.data)
	}
}

// TestLargeUpload streams more than 1 GiB in one PATCH and checks that the
// emulator's memory stays bounded while it does.
func TestLargeUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB")
	}
	s := startServer(t, kinescopetest.Options{Dir: t.TempDir()})
	client := newClient(t)
	const size = 1<<30 + 1
	id, endpoint := createVideo(t, client, s, size)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		ticker := time.NewTicker(20 * time.Millisecond)
		defer ticker.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
		}
	}()

	hash := sha256.New()
	source := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), hash)
	req := testkit.TusRequest(t, http.MethodPatch, endpoint, source)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	resp, _ := testkit.Send(t, client, req)
	close(stop)
	<-sampled
	if resp.StatusCode != http.StatusNoContent || testkit.Offset(t, resp) != size {
		t.Fatalf("PATCH: status %d, offset %s", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}

	if grown := int64(peak.Load()) - int64(before.HeapInuse); grown > 128<<20 {
		t.Errorf("heap grew by %d MiB while streaming 1 GiB", grown>>20)
	}
	sum, err := s.SHA256(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(hash.Sum(nil)); sum != want {
		t.Errorf("SHA256 = %s, want %s", sum, want)
	}
}

// TestRestartKeepsVideos checks that an emulator started on the Dir of an
// earlier one knows its videos and lets their uploads go on.
func TestRestartKeepsVideos(t *testing.T) {
	dir := t.TempDir()
	data := testkit.RandomBytes(50_000)

	first, err := kinescopetest.NewServer(kinescopetest.Options{Token: testToken, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Close) // Close is idempotent: this only matters when the test stops early
	client := newClient(t)
	id, endpoint := createVideo(t, client, first, int64(len(data)))
	patch(t, client, endpoint, 0, data[:20_000])
	createVideo(t, client, first, 1) // a second video, to check the order
	before := first.Videos()
	first.Close()

	second := startServer(t, kinescopetest.Options{Dir: dir})
	after := second.Videos()
	if len(after) != len(before) {
		t.Fatalf("%d videos after restart, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i] != before[i] {
			t.Errorf("video %d after restart = %+v\nwant %+v", i, after[i], before[i])
		}
	}

	moved := second.URL + "/v2/upload/" + after[0].UploadID
	offset := testkit.HeadOffset(t, client, moved)
	patch(t, client, moved, offset, data[offset:])
	testkit.CheckBytes(t, second, id, data)
}
