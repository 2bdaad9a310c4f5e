package kinescope_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
)

// FuzzInitResponse feeds arbitrary answers to the mapping Init applies to
// every response. Invariants: no panic; a success always has an id and an
// endpoint; a failure is an *Error with a known Kind and a safe Message.
func FuzzInitResponse(f *testing.F) {
	f.Add(201, []byte(`{"data":{"id":"v","endpoint":"https://kinescope.io/u"}}`), "r1", "5")
	f.Add(200, []byte(`{"data":{"id":"","endpoint":""}}`), "", "")
	f.Add(401, []byte(`{"error":{"code":100102,"message":"Unauthorized","detail":"x"}}`), "abc", "")
	f.Add(403, []byte(`{"error":{"code":"100106","message":"limit"}}`), "", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(429, []byte(`{"error":{"message":"`+strings.Repeat("é", 200)+`"}}`), "", "99999999999999999999999")
	f.Add(500, []byte(`<html>`), "\x00\x01", "-1")
	f.Add(201, []byte(`{"data":{"id":"v\u0000","endpoint":"x"}}`), "", "")
	f.Add(201, []byte("\xff\xfe"), "", "")

	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, requestID, retryAfter string) {
		header := http.Header{"X-Request-Id": {requestID}, "Retry-After": {retryAfter}}
		up, err := kinescope.Interpret(status, header, body, testToken, now)
		if err == nil {
			if up.VideoID == "" || up.Endpoint == "" {
				t.Fatalf("success without id or endpoint: %+v", up)
			}
			checkSafe(t, "RequestID", up.RequestID, 128)
			return
		}
		var kerr *kinescope.Error
		if !errors.As(err, &kerr) {
			t.Fatalf("error %v is %T, not *kinescope.Error", err, err)
		}
		if kerr.Kind.String() == "unknown" {
			t.Fatalf("error without a kind: %+v", kerr)
		}
		if kerr.Status != status {
			t.Fatalf("Status = %d, want %d", kerr.Status, status)
		}
		if kerr.RetryAfter < 0 || kerr.RetryAfter > 24*time.Hour {
			t.Fatalf("RetryAfter = %v out of range", kerr.RetryAfter)
		}
		checkSafe(t, "Message", kerr.Message, 300)
		checkSafe(t, "RequestID", kerr.RequestID, 128)
		if strings.Contains(err.Error(), testToken) {
			t.Fatalf("error text contains the token: %q", err)
		}
	})
}

func checkSafe(t *testing.T, field, s string, maxBytes int) {
	t.Helper()
	if len(s) > maxBytes {
		t.Fatalf("%s is %d bytes, over %d", field, len(s), maxBytes)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("%s %q is not valid UTF-8", field, s)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		t.Fatalf("%s %q has control characters", field, s)
	}
	if strings.TrimSpace(s) != s {
		t.Fatalf("%s %q is not trimmed", field, s)
	}
	if strings.Contains(s, testToken) {
		t.Fatalf("%s contains the token", field)
	}
}
