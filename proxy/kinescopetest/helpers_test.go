package kinescopetest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// testToken has the form of Kinescope's tokens (a UUID).
const testToken = "e51e55a1-7615-493e-9055-10ac9cc44ccd"

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func startServer(t *testing.T, opts kinescopetest.Options) *kinescopetest.Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testToken
	}
	s, err := kinescopetest.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// newClient returns a client with a pool of its own, so that a connection a
// fault cuts never surprises another test.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport}
}

// apiErrorBody is Kinescope's error shape.
type apiErrorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	} `json:"error"`
}

type initData struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
	Title    string `json:"title"`
	Filename string `json:"filename"`
	Filesize int64  `json:"filesize"`
	ParentID string `json:"parent_id"`
}

// postInit sends POST /v2/init; token "" sends no Authorization header.
func postInit(t *testing.T, client *http.Client, url, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return testkit.Send(t, client, req)
}

// createVideo inits a video of filesize bytes and returns its id and endpoint.
func createVideo(t *testing.T, client *http.Client, s *kinescopetest.Server, filesize int64) (id, endpoint string) {
	t.Helper()
	body := fmt.Sprintf(`{"parent_id":"project-1","type":"video","title":"clip","filename":"clip.mp4","filesize":%d}`, filesize)
	resp, raw := postInit(t, client, s.InitURL, testToken, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("init: status %d, body %s", resp.StatusCode, raw)
	}
	var answer struct {
		Data initData `json:"data"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Fatalf("init answer %s: %v", raw, err)
	}
	return answer.Data.ID, answer.Data.Endpoint
}

func head(t *testing.T, client *http.Client, endpoint string) *http.Response {
	t.Helper()
	resp, _ := testkit.Send(t, client, testkit.TusRequest(t, http.MethodHead, endpoint, nil))
	return resp
}

func patchRequest(t *testing.T, endpoint string, offset int64, data []byte) *http.Request {
	t.Helper()
	req := testkit.TusRequest(t, http.MethodPatch, endpoint, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	return req
}

// patch sends data at offset and returns the new offset of a 204 answer.
func patch(t *testing.T, client *http.Client, endpoint string, offset int64, data []byte) int64 {
	t.Helper()
	resp, raw := testkit.Send(t, client, patchRequest(t, endpoint, offset, data))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH at %d: status %d, body %q", offset, resp.StatusCode, raw)
	}
	return testkit.Offset(t, resp)
}
