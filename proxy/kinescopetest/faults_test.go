package kinescopetest_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

const validInit = `{"parent_id":"p1","type":"video","filename":"a.mp4","filesize":10}`

func TestFaultInitStatus(t *testing.T) {
	tests := []struct {
		status   int
		wantCode int
	}{
		{http.StatusUnauthorized, 100102},
		{http.StatusPaymentRequired, 100106},
		{http.StatusForbidden, 100103},
		{http.StatusBadRequest, 400101},
		{http.StatusInternalServerError, 500000},
		{http.StatusServiceUnavailable, 500000},
		{http.StatusTooManyRequests, 429000},
	}
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			s.SetFaults(kinescopetest.Faults{InitStatus: tt.status})
			resp, raw := postInit(t, client, s.InitURL, testToken, validInit)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			var answer apiErrorBody
			if err := json.Unmarshal(raw, &answer); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if answer.Error.Code != tt.wantCode || answer.Error.Message == "" {
				t.Errorf("error %+v, want code %d", answer.Error, tt.wantCode)
			}
		})
	}
	if got := len(s.Videos()); got != 0 {
		t.Errorf("%d videos created by refused inits", got)
	}
}

func TestFaultInitBody(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"garbage JSON with 201", http.StatusCreated, `{"data":{"id":`},
		{"HTML with 502", http.StatusBadGateway, "<html>bad gateway</html>"},
		{"201 without endpoint", http.StatusCreated, `{"data":{"id":"x"}}`},
	}
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFaults(kinescopetest.Faults{InitStatus: tt.status, InitBody: tt.body})
			resp, raw := postInit(t, client, s.InitURL, testToken, validInit)
			if resp.StatusCode != tt.status || string(raw) != tt.body {
				t.Errorf("answer %d %q, want %d %q", resp.StatusCode, raw, tt.status, tt.body)
			}
		})
	}
	if got := len(s.Videos()); got != 0 {
		t.Errorf("%d videos created by faked answers", got)
	}
}

func TestFaultInitDrop(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	s.SetFaults(kinescopetest.Faults{InitDrop: true})

	req, _ := http.NewRequest(http.MethodPost, s.InitURL, strings.NewReader(validInit))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped init answered %d", resp.StatusCode)
	}
	if got := len(s.Videos()); got != 0 {
		t.Errorf("%d videos created by a dropped init", got)
	}
	if got := s.Stats().Init; got != 1 {
		t.Errorf("Stats().Init = %d, want 1", got)
	}

	s.SetFaults(kinescopetest.Faults{})
	createVideo(t, client, s, 10)
}

// TestFaultInitDelay checks that a client that gives up on a slow init gets
// nothing and leaves no video behind. The delay is far longer than the test:
// Close must wake the sleeping handler.
func TestFaultInitDelay(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	s.SetFaults(kinescopetest.Faults{InitDelay: time.Hour})

	impatient := newClient(t)
	impatient.Timeout = 100 * time.Millisecond
	req, _ := http.NewRequest(http.MethodPost, s.InitURL, strings.NewReader(validInit))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := impatient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("delayed init answered %d before the client's timeout", resp.StatusCode)
	}
	if netErr := net.Error(nil); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("error %v, want a timeout", err)
	}
	if got := len(s.Videos()); got != 0 {
		t.Errorf("%d videos created by an abandoned init", got)
	}

	s.SetFaults(kinescopetest.Faults{})
	createVideo(t, newClient(t), s, 10)
}

func TestFaultLatency(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	id, endpoint := createVideo(t, client, s, 10)
	s.SetFaults(kinescopetest.Faults{Latency: time.Hour})

	impatient := newClient(t)
	impatient.Timeout = 100 * time.Millisecond
	for _, req := range []*http.Request{
		testkit.TusRequest(t, http.MethodHead, endpoint, nil),
		patchRequest(t, endpoint, 0, []byte("01234")),
	} {
		resp, err := impatient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s answered %d before the client's timeout", req.Method, resp.StatusCode)
		}
	}
	s.SetFaults(kinescopetest.Faults{})
	// The PATCH is stored before its answer is held back; the client may
	// have given up before the emulator got that far, so wait for it.
	waitFor(t, "the PATCH to be stored", func() bool {
		video, _ := s.Video(id)
		return video.Offset == 5
	})
	if got := testkit.HeadOffset(t, client, endpoint); got != 5 {
		t.Errorf("offset %d, want 5", got)
	}
}

// waitFor polls cond until it holds, and fails the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFaultInitEndpoint(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	s.SetFaults(kinescopetest.Faults{InitEndpoint: func(endpoint string) string {
		return strings.Replace(endpoint, s.URL, "https://elsewhere.example.test", 1)
	}})
	id, endpoint := createVideo(t, client, s, 10)
	video, _ := s.Video(id)
	if !strings.HasPrefix(endpoint, "https://elsewhere.example.test/v2/upload/") || video.Endpoint != endpoint {
		t.Errorf("endpoint %q, video endpoint %q", endpoint, video.Endpoint)
	}
	// The upload itself still lives at the emulator.
	if got := testkit.HeadOffset(t, client, s.URL+"/v2/upload/"+video.UploadID); got != 0 {
		t.Errorf("offset %d, want 0", got)
	}
}

func TestFaultCutPatch(t *testing.T) {
	tests := []struct {
		name   string
		every  int
		after  int64
		chunks []int // PATCH bodies sent in turn; the last one is the one cut
		size   int
		want   int64 // offset after the cut
	}{
		{"in the middle", 1, 300, []int{1000}, 1000, 300},
		{"before any byte", 1, 0, []int{1000}, 1000, 0},
		{"after the whole body: the answer is lost", 1, 1000, []int{1000}, 1000, 1000},
		{"every second PATCH", 2, 100, []int{500, 400}, 1000, 600},
		{"while the client still sends", 1, 1<<20 + 7, []int{4 << 20}, 4 << 20, 1<<20 + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, kinescopetest.Options{})
			client := newClient(t)
			data := testkit.RandomBytes(tt.size)
			id, endpoint := createVideo(t, client, s, int64(tt.size))
			s.SetFaults(kinescopetest.Faults{CutPatchEvery: tt.every, CutPatchAfter: tt.after})

			var offset int64
			for i, n := range tt.chunks {
				req := patchRequest(t, endpoint, offset, data[offset:offset+int64(n)])
				resp, err := client.Do(req)
				if i < len(tt.chunks)-1 {
					if err != nil || resp.StatusCode != http.StatusNoContent {
						t.Fatalf("PATCH %d before the cut: %v %v", i, err, resp)
					}
					resp.Body.Close()
					offset += int64(n)
					continue
				}
				if err == nil {
					resp.Body.Close()
					t.Fatalf("cut PATCH answered %d", resp.StatusCode)
				}
			}

			if video, _ := s.Video(id); video.Offset != tt.want {
				t.Errorf("Video offset %d after the cut, want %d", video.Offset, tt.want)
			}
			s.SetFaults(kinescopetest.Faults{})
			offset = testkit.HeadOffset(t, client, endpoint)
			if offset != tt.want {
				t.Fatalf("HEAD offset %d after the cut, want %d", offset, tt.want)
			}
			if offset < int64(tt.size) {
				patch(t, client, endpoint, offset, data[offset:])
			}
			testkit.CheckBytes(t, s, id, data)
		})
	}
}

// TestFaultCutPatchShortBody checks that a body shorter than CutPatchAfter
// is not cut.
func TestFaultCutPatchShortBody(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	id, endpoint := createVideo(t, client, s, 10)
	s.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 11})
	patch(t, client, endpoint, 0, []byte("0123456789"))
	testkit.CheckBytes(t, s, id, []byte("0123456789"))
}

func TestFaultFailEvery(t *testing.T) {
	tests := []struct {
		name       string
		failStatus int
		want       int
	}{
		{"default status", 0, http.StatusServiceUnavailable},
		{"chosen status", http.StatusBadGateway, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, kinescopetest.Options{})
			client := newClient(t)
			_, endpoint := createVideo(t, client, s, 10)
			s.SetFaults(kinescopetest.Faults{FailEvery: 3, FailStatus: tt.failStatus})

			steps := []struct {
				req  *http.Request
				want int
			}{
				{testkit.TusRequest(t, http.MethodHead, endpoint, nil), http.StatusOK},
				{patchRequest(t, endpoint, 0, []byte("01")), http.StatusNoContent},
				{patchRequest(t, endpoint, 2, []byte("23")), tt.want}, // third: failed, nothing stored
				{testkit.TusRequest(t, http.MethodHead, endpoint, nil), http.StatusOK},
				{patchRequest(t, endpoint, 2, []byte("23")), http.StatusNoContent},
				{testkit.TusRequest(t, http.MethodDelete, endpoint, nil), tt.want}, // sixth: failed, not deleted
				{testkit.TusRequest(t, http.MethodHead, endpoint, nil), http.StatusOK},
			}
			const origin = "https://app.example.test"
			for i, step := range steps {
				step.req.Header.Set("Origin", origin)
				resp, _ := testkit.Send(t, client, step.req)
				if resp.StatusCode != step.want {
					t.Fatalf("request %d (%s): status %d, want %d", i+1, step.req.Method, resp.StatusCode, step.want)
				}
				if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("Tus-Resumable") != "1.0.0" ||
					resp.Header.Get("Access-Control-Allow-Origin") != origin {
					t.Errorf("request %d: headers %v", i+1, resp.Header)
				}
			}
			if got := testkit.HeadOffset(t, client, endpoint); got != 4 {
				t.Errorf("offset %d, want 4", got)
			}
		})
	}
}

func TestFaultWrongOffset(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	_, endpoint := createVideo(t, client, s, 10)
	s.SetFaults(kinescopetest.Faults{WrongOffset: true})

	if got := patch(t, client, endpoint, 0, []byte("01234")); got != 6 {
		t.Errorf("PATCH answered offset %d, want the lie 6", got)
	}
	if got := testkit.HeadOffset(t, client, endpoint); got != 5 {
		t.Errorf("HEAD offset %d, want the truth 5", got)
	}
}

func TestSetFaultsResetsCounters(t *testing.T) {
	s := startServer(t, kinescopetest.Options{})
	client := newClient(t)
	_, endpoint := createVideo(t, client, s, 10)
	faults := kinescopetest.Faults{FailEvery: 2}

	s.SetFaults(faults)
	statuses := []int{head(t, client, endpoint).StatusCode}
	s.SetFaults(faults)
	statuses = append(statuses, head(t, client, endpoint).StatusCode, head(t, client, endpoint).StatusCode)
	want := []int{http.StatusOK, http.StatusOK, http.StatusServiceUnavailable}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("HEAD statuses %v, want %v", statuses, want)
		}
	}
}
