package kinescope_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
)

// testToken is distinctive so that a leak into any error text is obvious.
const testToken = "tok-3f1c9e0a-5b7d-4c2e-9a11-s3cr3t"

// newServer starts a loopback server and returns a Client pointed at it.
func newServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *kinescope.Client) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, &kinescope.Client{
		InitURL: srv.URL + "/v2/init",
		Token:   testToken,
		HTTP:    srv.Client(),
		Timeout: 10 * time.Second,
	}
}

// answer writes a canned answer.
func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func sampleRequest() kinescope.InitRequest {
	return kinescope.InitRequest{
		ParentID: "proj-1", Type: "video", Title: "Holiday", Filename: "holiday.mp4",
		Filesize: 123456789, ClientIP: "203.0.113.7",
	}
}

// checkNoSecrets fails if err's text could leak the token.
func checkNoSecrets(t *testing.T, err error, extra ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, secret := range append([]string{testToken}, extra...) {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error text %q contains secret %q", err.Error(), secret)
		}
	}
}

func TestInitSendsRequest(t *testing.T) {
	type seen struct {
		method, path, auth, contentType, accept string
		body                                    map[string]any
	}
	got := make(chan seen, 1)
	_, client := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"),
			contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept")}
		if err := json.NewDecoder(r.Body).Decode(&s.body); err != nil {
			t.Errorf("request body is not JSON: %v", err)
		}
		got <- s
		w.Header().Set("X-Request-ID", "req-42")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"data":{"id":"vid-1","endpoint":"https://eu.uploader.kinescope.io/v2/upload/abc"}}`)
	})

	up, err := client.Init(context.Background(), sampleRequest())
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	want := kinescope.Upload{VideoID: "vid-1", Endpoint: "https://eu.uploader.kinescope.io/v2/upload/abc", RequestID: "req-42"}
	if up != want {
		t.Errorf("Init = %+v, want %+v", up, want)
	}

	s := <-got
	if s.method != http.MethodPost || s.path != "/v2/init" {
		t.Errorf("request = %s %s, want POST /v2/init", s.method, s.path)
	}
	if s.auth != "Bearer "+testToken {
		t.Errorf("Authorization = %q", s.auth)
	}
	if s.contentType != "application/json" || s.accept != "application/json" {
		t.Errorf("Content-Type = %q, Accept = %q", s.contentType, s.accept)
	}
	wantBody := map[string]any{
		"parent_id": "proj-1", "type": "video", "title": "Holiday", "filename": "holiday.mp4",
		"filesize": float64(123456789), "client_ip": "203.0.113.7",
	}
	if len(s.body) != len(wantBody) {
		t.Errorf("body has fields %v, want %v", s.body, wantBody)
	}
	for k, v := range wantBody {
		if s.body[k] != v {
			t.Errorf("body[%q] = %v, want %v", k, s.body[k], v)
		}
	}
}

func TestInitOmitsEmptyOptionalFields(t *testing.T) {
	got := make(chan map[string]any, 1)
	_, client := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		got <- body
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"data":{"id":"v","endpoint":"https://kinescope.io/u"}}`)
	})
	if _, err := client.Init(context.Background(), kinescope.InitRequest{ParentID: "p", Type: "video", Title: "t", Filesize: 0}); err != nil {
		t.Fatal(err)
	}
	body := <-got
	for _, k := range []string{"filename", "description", "client_ip"} {
		if _, ok := body[k]; ok {
			t.Errorf("empty %s was sent", k)
		}
	}
	// filesize is required by Kinescope even when zero.
	if v, ok := body["filesize"]; !ok || v != float64(0) {
		t.Errorf("filesize = %v, %v; want 0 present", v, ok)
	}
}

func TestInitAnswers(t *testing.T) {
	const endpoint = "https://eu.uploader.kinescope.io/v2/upload/0966958f"
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    kinescope.Upload // for successes
		wantErr *kinescope.Error // for failures (unexported fields ignored)
	}{
		{
			name:    "201 created",
			handler: answer(201, map[string]string{"X-Request-ID": "r1"}, `{"data":{"id":"v1","endpoint":"`+endpoint+`","extra":1}}`),
			want:    kinescope.Upload{VideoID: "v1", Endpoint: endpoint, RequestID: "r1"},
		},
		{
			name:    "200 ok",
			handler: answer(200, nil, `{"data":{"id":"v2","endpoint":"`+endpoint+`"}}`),
			want:    kinescope.Upload{VideoID: "v2", Endpoint: endpoint},
		},
		{
			name:    "401 unauthorized",
			handler: answer(401, map[string]string{"X-Request-ID": "abc"}, `{"error":{"code":100102,"message":"Unauthorized","detail":"token is invalid"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindAuth, Status: 401, Code: 100102, Message: "Unauthorized: token is invalid", RequestID: "abc"},
		},
		{
			name:    "403 access denied",
			handler: answer(403, nil, `{"error":{"code":100103,"message":"Access denied"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindAuth, Status: 403, Code: 100103, Message: "Access denied"},
		},
		{
			name:    "403 with LIMIT_REACHED is a limit",
			handler: answer(403, nil, `{"error":{"code":100106,"message":"Limit reached"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindLimit, Status: 403, Code: 100106, Message: "Limit reached"},
		},
		{
			name:    "LIMIT_REACHED as a string code",
			handler: answer(401, nil, `{"error":{"code":"100106","message":"Limit reached"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindLimit, Status: 401, Code: 100106, Message: "Limit reached"},
		},
		{
			name:    "402 payment required",
			handler: answer(402, nil, `{"error":{"code":100105,"message":"Payment required"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindLimit, Status: 402, Code: 100105, Message: "Payment required"},
		},
		{
			name:    "400 bad request",
			handler: answer(400, map[string]string{"X-Request-ID": "r400"}, `{"error":{"code":400101,"message":"JSON syntax error","detail":"unexpected EOF"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadRequest, Status: 400, Code: 400101, Message: "JSON syntax error: unexpected EOF", RequestID: "r400"},
		},
		{
			name:    "detail equal to message is not repeated",
			handler: answer(400, nil, `{"error":{"code":1,"message":"bad","detail":"bad"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadRequest, Status: 400, Code: 1, Message: "bad"},
		},
		{
			name:    "detail only",
			handler: answer(400, nil, `{"error":{"detail":"parent_id: not found"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadRequest, Status: 400, Message: "parent_id: not found"},
		},
		{
			name:    "429 with Retry-After seconds",
			handler: answer(429, map[string]string{"Retry-After": "7"}, `{"error":{"message":"slow down"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindRateLimited, Status: 429, Message: "slow down", RetryAfter: 7 * time.Second},
		},
		{
			name:    "429 with unparseable Retry-After",
			handler: answer(429, map[string]string{"Retry-After": "soon"}, ``),
			wantErr: &kinescope.Error{Kind: kinescope.KindRateLimited, Status: 429},
		},
		{
			name:    "503 with Retry-After",
			handler: answer(503, map[string]string{"Retry-After": "120", "X-Request-ID": "r503"}, `<html>down</html>`),
			wantErr: &kinescope.Error{Kind: kinescope.KindUnavailable, Status: 503, RetryAfter: 2 * time.Minute, RequestID: "r503"},
		},
		{
			name:    "500 with JSON error",
			handler: answer(500, nil, `{"error":{"code":500000,"message":"Internal error"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindUnavailable, Status: 500, Code: 500000, Message: "Internal error"},
		},
		{
			name:    "502 from a gateway",
			handler: answer(502, nil, `Bad Gateway`),
			wantErr: &kinescope.Error{Kind: kinescope.KindUnavailable, Status: 502},
		},
		{
			name:    "404",
			handler: answer(404, nil, `{"error":{"code":404000,"message":"Not found"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 404, Code: 404000, Message: "Not found"},
		},
		{
			name:    "405",
			handler: answer(405, nil, ``),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 405},
		},
		{
			name:    "202 with a valid body is still unexpected",
			handler: answer(202, nil, `{"data":{"id":"v","endpoint":"`+endpoint+`"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 202},
		},
		{
			name:    "201 garbage",
			handler: answer(201, map[string]string{"X-Request-ID": "rg"}, `<html>hello</html>`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201, RequestID: "rg"},
		},
		{
			name:    "201 empty body",
			handler: answer(201, nil, ``),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 without endpoint",
			handler: answer(201, nil, `{"data":{"id":"v"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 with empty id",
			handler: answer(201, nil, `{"data":{"id":"  ","endpoint":"`+endpoint+`"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 with numeric id",
			handler: answer(201, nil, `{"data":{"id":12,"endpoint":"`+endpoint+`"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 with data null",
			handler: answer(201, nil, `{"data":null}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 with control character in endpoint",
			handler: answer(201, nil, `{"data":{"id":"v","endpoint":"https://kinescope.io/a\nb"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "201 larger than 1 MiB",
			handler: answer(201, nil, `{"data":{"id":"v","endpoint":"`+endpoint+`"}}`+strings.Repeat(" ", 1<<20)),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadResponse, Status: 201},
		},
		{
			name:    "error message with control characters and an echoed token",
			handler: answer(401, map[string]string{"X-Request-ID": "rid"}, `{"error":{"code":100102,"message":"  bad token \u001b[31m`+testToken+`\nline2  "}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindAuth, Status: 401, Code: 100102, Message: "bad token [31m[redacted]line2", RequestID: "rid"},
		},
		{
			name:    "error message cut to 300 bytes on a rune boundary",
			handler: answer(400, nil, `{"error":{"message":"`+strings.Repeat("é", 151)+`x"}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadRequest, Status: 400, Message: strings.Repeat("é", 150)},
		},
		{
			name:    "error message of odd shape is ignored",
			handler: answer(400, nil, `{"error":{"code":{"x":1},"message":["a"],"detail":{"field":"title"}}}`),
			wantErr: &kinescope.Error{Kind: kinescope.KindBadRequest, Status: 400},
		},
		{
			name:    "error body that is a plain string",
			handler: answer(401, nil, `"nope"`),
			wantErr: &kinescope.Error{Kind: kinescope.KindAuth, Status: 401},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client := newServer(t, tt.handler)
			up, err := client.Init(context.Background(), sampleRequest())
			checkNoSecrets(t, err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Init: %v", err)
				}
				if up != tt.want {
					t.Errorf("Init = %+v, want %+v", up, tt.want)
				}
				return
			}
			var kerr *kinescope.Error
			if !errors.As(err, &kerr) {
				t.Fatalf("Init error = %v (%T), want *kinescope.Error", err, err)
			}
			if up != (kinescope.Upload{}) {
				t.Errorf("failed Init returned %+v", up)
			}
			got := kinescope.Error{Kind: kerr.Kind, Status: kerr.Status, Code: kerr.Code, Message: kerr.Message, RequestID: kerr.RequestID, RetryAfter: kerr.RetryAfter}
			if got != *tt.wantErr {
				t.Errorf("error = %+v\nwant    %+v", got, *tt.wantErr)
			}
		})
	}
}

func TestInitDoesNotFollowRedirects(t *testing.T) {
	var redirected atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/init", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		redirected.Store(true)
		answer(201, nil, `{"data":{"id":"v","endpoint":"https://kinescope.io/u"}}`)(w, r)
	})
	_, client := newServer(t, mux.ServeHTTP)

	_, err := client.Init(context.Background(), sampleRequest())
	var kerr *kinescope.Error
	if !errors.As(err, &kerr) || kerr.Kind != kinescope.KindBadResponse || kerr.Status != http.StatusTemporaryRedirect {
		t.Fatalf("Init error = %v, want bad_response with status 307", err)
	}
	if redirected.Load() {
		t.Error("the redirect was followed, resending the token")
	}
}

func TestErrorText(t *testing.T) {
	_, client := newServer(t, answer(401, map[string]string{"X-Request-ID": "abc"}, `{"error":{"code":100102,"message":"Unauthorized"}}`))
	_, err := client.Init(context.Background(), sampleRequest())
	const want = "kinescope init: credentials rejected (status 401, code 100102, request id abc): Unauthorized"
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}

	_, client = newServer(t, answer(429, map[string]string{"Retry-After": "3"}, ``))
	_, err = client.Init(context.Background(), sampleRequest())
	const wantRate = "kinescope init: rate limited (status 429, retry after 3s)"
	if err == nil || err.Error() != wantRate {
		t.Errorf("Error() = %v, want %q", err, wantRate)
	}
}

func TestInitNetworkFailures(t *testing.T) {
	// Every init URL here carries a query that must not reach error text.
	const secretQuery = "sig=q-s3cr3t-query"

	t.Run("connection closed without answer", func(t *testing.T) {
		srv, client := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close()
		})
		client.InitURL = srv.URL + "/v2/init?" + secretQuery
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err, secretQuery, srv.URL)
		wantKind(t, err, kinescope.KindUnavailable)
		if !strings.Contains(err.Error(), "connection closed by upstream") {
			t.Errorf("Error() = %q, want the reason", err)
		}
	})

	t.Run("success body cut short", func(t *testing.T) {
		_, client := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			buf.WriteString("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-ID: cut\r\nContent-Length: 500\r\n\r\n{\"data\":{\"id\":\"v\",")
			buf.Flush()
			conn.Close()
		})
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err)
		kerr := wantKind(t, err, kinescope.KindUnavailable)
		if kerr.Status != 201 || kerr.RequestID != "cut" {
			t.Errorf("Status, RequestID = %d, %q; want 201, cut", kerr.Status, kerr.RequestID)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		addr := testkit.FreeAddr(t)
		client := &kinescope.Client{InitURL: "http://" + addr + "/v2/init?" + secretQuery, Token: testToken, HTTP: &http.Client{}, Timeout: 10 * time.Second}
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err, secretQuery)
		kerr := wantKind(t, err, kinescope.KindUnavailable)
		if kerr.Status != 0 {
			t.Errorf("Status = %d, want 0", kerr.Status)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("errors.Is(err, ECONNREFUSED) = false for %v", err)
		}
	})

	t.Run("invalid init URL", func(t *testing.T) {
		client := &kinescope.Client{InitURL: "http://%zz/v2/init?" + secretQuery, Token: testToken}
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err, secretQuery, "%zz")
		wantKind(t, err, kinescope.KindUnavailable)
	})
}

func TestInitTimeoutsAndCancel(t *testing.T) {
	// blockingServer answers only when the client gives up or the test ends.
	blockingServer := func(t *testing.T, arrived chan<- struct{}) *httptest.Server {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The server notices a closed connection (and cancels
			// r.Context()) only once the body has been read.
			io.Copy(io.Discard, r.Body)
			if arrived != nil {
				arrived <- struct{}{}
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		// Cleanups run last-in first-out: release the handler, then close.
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		return srv
	}

	t.Run("Client.Timeout", func(t *testing.T) {
		srv := blockingServer(t, nil)
		client := &kinescope.Client{InitURL: srv.URL + "/v2/init", Token: testToken, HTTP: srv.Client(), Timeout: 50 * time.Millisecond}
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err)
		wantKind(t, err, kinescope.KindTimeout)
	})

	t.Run("transport response header timeout", func(t *testing.T) {
		srv := blockingServer(t, nil)
		transport := &http.Transport{ResponseHeaderTimeout: 50 * time.Millisecond}
		t.Cleanup(transport.CloseIdleConnections)
		client := &kinescope.Client{InitURL: srv.URL + "/v2/init", Token: testToken, HTTP: &http.Client{Transport: transport}}
		_, err := client.Init(context.Background(), sampleRequest())
		checkNoSecrets(t, err)
		wantKind(t, err, kinescope.KindTimeout)
	})

	t.Run("caller deadline", func(t *testing.T) {
		srv := blockingServer(t, nil)
		client := &kinescope.Client{InitURL: srv.URL + "/v2/init", Token: testToken, HTTP: srv.Client()}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := client.Init(ctx, sampleRequest())
		wantKind(t, err, kinescope.KindTimeout)
	})

	t.Run("caller cancels", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := blockingServer(t, arrived)
		client := &kinescope.Client{InitURL: srv.URL + "/v2/init", Token: testToken, HTTP: srv.Client(), Timeout: time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		_, err := client.Init(ctx, sampleRequest())
		checkNoSecrets(t, err)
		wantKind(t, err, kinescope.KindCanceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) = false for %v", err)
		}
	})
}

func wantKind(t *testing.T, err error, kind kinescope.Kind) *kinescope.Error {
	t.Helper()
	var kerr *kinescope.Error
	if !errors.As(err, &kerr) {
		t.Fatalf("error = %v (%T), want *kinescope.Error of kind %s", err, err, kind)
	}
	if kerr.Kind != kind {
		t.Fatalf("Kind = %s (%v), want %s", kerr.Kind, err, kind)
	}
	return kerr
}

func TestKindNames(t *testing.T) {
	want := []string{"auth", "limit", "bad_request", "rate_limited", "unavailable", "timeout", "bad_response", "canceled"}
	kinds := []kinescope.Kind{kinescope.KindAuth, kinescope.KindLimit, kinescope.KindBadRequest, kinescope.KindRateLimited,
		kinescope.KindUnavailable, kinescope.KindTimeout, kinescope.KindBadResponse, kinescope.KindCanceled}
	for i, k := range kinds {
		if k.String() != want[i] {
			t.Errorf("Kind %d String() = %q, want %q", int(k), k.String(), want[i])
		}
	}
	if got := kinescope.Kind(0).String(); got != "unknown" {
		t.Errorf("Kind(0).String() = %q, want unknown", got)
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"0", 0},
		{"-5", 0},
		{"99999999999999999999", 24 * time.Hour},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
	}
	for _, tt := range tests {
		_, err := kinescope.Interpret(http.StatusTooManyRequests, http.Header{"Retry-After": {tt.header}}, nil, testToken, now)
		var kerr *kinescope.Error
		if !errors.As(err, &kerr) {
			t.Fatalf("Retry-After %q: error %v", tt.header, err)
		}
		if kerr.RetryAfter != tt.want {
			t.Errorf("Retry-After %q: RetryAfter = %v, want %v", tt.header, kerr.RetryAfter, tt.want)
		}
	}
}

func TestTitleFor(t *testing.T) {
	long := strings.Repeat("я", 139) + "😀" + "tail"
	tests := []struct {
		name, title, filename, want string
	}{
		{"title wins", "My video", "file.mp4", "My video"},
		{"filename when no title", "", "file.mp4", "file.mp4"},
		{"filename when title is blank", " \t ", "file.mp4", "file.mp4"},
		{"both empty", "", "", ""},
		{"trimmed and control characters removed", "  a\x00b\nc  ", "f", "abc"},
		{"exactly 140 runes kept", strings.Repeat("ж", 140), "", strings.Repeat("ж", 140)},
		{"cut to 140 runes, not bytes", long, "", strings.Repeat("я", 139) + "😀"},
		{"long filename cut too", "", strings.Repeat("日", 200) + ".mp4", strings.Repeat("日", 140)},
		{"invalid UTF-8 dropped", "a\xffb", "", "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kinescope.TitleFor(tt.title, tt.filename)
			if got != tt.want {
				t.Errorf("TitleFor(%q, %q) = %q, want %q", tt.title, tt.filename, got, tt.want)
			}
		})
	}
}

func TestRequestIDSanitized(t *testing.T) {
	now := time.Now()
	tests := []struct{ header, want string }{
		{"  r\x01id\n  ", "rid"},
		{"id-" + testToken, "id-[redacted]"},
		{strings.Repeat("ы", 100), strings.Repeat("ы", 64)},
	}
	for _, tt := range tests {
		header := http.Header{"X-Request-Id": {tt.header}}
		up, err := kinescope.Interpret(201, header, []byte(`{"data":{"id":"v","endpoint":"e"}}`), testToken, now)
		if err != nil || up.RequestID != tt.want {
			t.Errorf("success with X-Request-ID %q: RequestID = %q, %v; want %q", tt.header, up.RequestID, err, tt.want)
		}
		_, err = kinescope.Interpret(500, header, nil, testToken, now)
		var kerr *kinescope.Error
		if !errors.As(err, &kerr) || kerr.RequestID != tt.want {
			t.Errorf("failure with X-Request-ID %q: %v; want RequestID %q", tt.header, err, tt.want)
		}
	}
}
