// Package testkit holds the helpers that tusproxy's tests in several
// packages share: a buffer safe for concurrent writers, random payloads, tus
// requests, and checks of the bytes an upstream received. Only tests import
// it.
package testkit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a logger's
// handlers, a subprocess's output) while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// RandomBytes returns n random bytes, different on every call: unlike
// repeated text, they catch a shifted or duplicated chunk, and two uploads
// never hold the same bytes by accident.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return b
}

// SHA256Hex is the hex SHA-256 of b, the form the emulator reports.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// FreeAddr returns a loopback host:port where nothing listens at the moment:
// for a server to start on, or for a client to be refused by.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TusRequest builds a tus 1.0.0 request (Tus-Resumable set) with the given
// headers, as name, value pairs.
func TusRequest(t testing.TB, method, url string, body io.Reader, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// Send does req with client and returns its answer with the body read and
// closed. A request that gets no answer fails the test.
func Send(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read answer: %v", req.Method, err)
	}
	return resp, raw
}

// Tus sends a tus request (see TusRequest) with client and returns the
// answer, its body read and closed.
func Tus(t testing.TB, client *http.Client, method, url string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return Send(t, client, TusRequest(t, method, url, body, headers...))
}

// Offset returns the Upload-Offset of resp, failing the test when it is not a
// number.
func Offset(t testing.TB, resp *http.Response) int64 {
	t.Helper()
	offset, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("%s answer: Upload-Offset %q: %v", resp.Request.Method, resp.Header.Get("Upload-Offset"), err)
	}
	return offset
}

// HeadOffset returns the Upload-Offset of a HEAD to url that must answer 200.
func HeadOffset(t testing.TB, client *http.Client, url string) int64 {
	t.Helper()
	resp, _ := Tus(t, client, http.MethodHead, url, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: status %d", resp.StatusCode)
	}
	return Offset(t, resp)
}

// UploadID is the last path segment of an upload URL (a Location).
func UploadID(location string) string {
	return location[strings.LastIndex(location, "/")+1:]
}

// Upstream is what CheckBytes asks of the Kinescope emulator
// (*kinescopetest.Server), without testkit importing it.
type Upstream interface {
	SHA256(videoID string) (string, error)
	Data(videoID string) ([]byte, error)
}

// CheckBytes fails the test unless the video's upload holds exactly want,
// both by its SHA-256 and by its bytes (two views of the emulator's store,
// which its own tests keep in agreement). The upstream must keep the bytes:
// not an emulator in Discard mode.
func CheckBytes(t testing.TB, upstream Upstream, videoID string, want []byte) {
	t.Helper()
	sum, err := upstream.SHA256(videoID)
	if err != nil {
		t.Fatalf("SHA256 of %s: %v", videoID, err)
	}
	if sum != SHA256Hex(want) {
		t.Errorf("upstream bytes differ from what the client sent: SHA256 %s, want %s", sum, SHA256Hex(want))
	}
	data, err := upstream.Data(videoID)
	if err != nil {
		t.Fatalf("Data of %s: %v", videoID, err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("Data: got %d bytes, want %d bytes (equal prefix: %v)", len(data), len(want), bytes.HasPrefix(want, data))
	}
}
