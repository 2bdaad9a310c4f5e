package tusproto_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// operations runs each Client method against one endpoint.
var operations = []struct {
	name string
	call func(ctx context.Context, client *tusproto.Client, endpoint string) error
}{
	{"head", func(ctx context.Context, client *tusproto.Client, endpoint string) error {
		_, err := client.Head(ctx, endpoint)
		return err
	}},
	{"patch", func(ctx context.Context, client *tusproto.Client, endpoint string) error {
		_, err := client.Patch(ctx, endpoint, 0, strings.NewReader("data"), 4)
		return err
	}},
	{"delete", func(ctx context.Context, client *tusproto.Client, endpoint string) error {
		return client.Delete(ctx, endpoint)
	}},
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		status             int
		offsetHeader       string
		wantGone, wantTemp bool
		wantOffset         int64
	}{
		{http.StatusForbidden, "", false, false, -1},
		{http.StatusNotFound, "", true, false, -1},
		{http.StatusMethodNotAllowed, "", false, false, -1},
		{http.StatusConflict, "12", false, false, 12},
		{http.StatusGone, "", true, false, -1},
		{http.StatusRequestEntityTooLarge, "", false, false, -1},
		{http.StatusLocked, "", false, true, -1},
		{http.StatusTooManyRequests, "", false, true, -1},
		{http.StatusInternalServerError, "", false, true, -1},
		{http.StatusBadGateway, "oops", false, true, -1},
		{http.StatusServiceUnavailable, "", false, true, -1},
		{http.StatusCreated, "0", false, false, 0},
	}
	for _, test := range tests {
		server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if test.offsetHeader != "" {
				w.Header().Set("Upload-Offset", test.offsetHeader)
			}
			w.WriteHeader(test.status)
			_, _ = w.Write([]byte("upstream says no"))
		}))
		endpoint := server.URL + "/upload/secret-id?token=s3cr3t"
		for _, operation := range operations {
			t.Run(http.StatusText(test.status)+"/"+operation.name, func(t *testing.T) {
				err := operation.call(context.Background(), newClient(t), endpoint)
				upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint)
				if upstreamErr.Op != operation.name || upstreamErr.Status != test.status || upstreamErr.Offset != test.wantOffset {
					t.Errorf("got Op %q, Status %d, Offset %d; want %q, %d, %d", upstreamErr.Op, upstreamErr.Status,
						upstreamErr.Offset, operation.name, test.status, test.wantOffset)
				}
				if upstreamErr.Gone() != test.wantGone || upstreamErr.Temporary() != test.wantTemp {
					t.Errorf("got Gone %v, Temporary %v; want %v, %v",
						upstreamErr.Gone(), upstreamErr.Temporary(), test.wantGone, test.wantTemp)
				}
				want := "upstream " + operation.name + ": unexpected status " + tusproto.FormatSize(int64(test.status))
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("message %q does not start with %q", err, want)
				}
			})
		}
		server.Close()
	}
}

// blockingServer accepts requests and answers none until the test ends; arrived
// receives one value per request.
func blockingServer(t *testing.T) (endpoint string, arrived <-chan struct{}) {
	release := make(chan struct{})
	requests := make(chan struct{}, 10)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(server.Close)
	t.Cleanup(func() { close(release) }) // runs before server.Close
	return server.URL + "/upload/secret-id", requests
}

func TestTimeout(t *testing.T) {
	for _, operation := range operations {
		t.Run(operation.name, func(t *testing.T) {
			endpoint, _ := blockingServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()

			err := operation.call(ctx, newClient(t), endpoint)
			upstreamErr := upstreamError(t, err, tusproto.KindTimeout, endpoint)
			if !errors.Is(err, context.DeadlineExceeded) || !upstreamErr.Temporary() || upstreamErr.Status != 0 {
				t.Errorf("error %q: Is(DeadlineExceeded) %v, Temporary %v, Status %d; want true, true, 0",
					err, errors.Is(err, context.DeadlineExceeded), upstreamErr.Temporary(), upstreamErr.Status)
			}
		})
	}
}

func TestTransportTimeout(t *testing.T) {
	endpoint, _ := blockingServer(t)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = 50 * time.Millisecond
	t.Cleanup(transport.CloseIdleConnections)
	client := &tusproto.Client{HTTP: &http.Client{Transport: transport}}

	_, err := client.Head(context.Background(), endpoint)
	if upstreamErr := upstreamError(t, err, tusproto.KindTimeout, endpoint); !upstreamErr.Temporary() {
		t.Error("a timeout must be temporary")
	}
}

func TestCanceled(t *testing.T) {
	for _, operation := range operations {
		t.Run(operation.name+"/before", func(t *testing.T) {
			endpoint, _ := blockingServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := operation.call(ctx, newClient(t), endpoint)
			if upstreamErr := upstreamError(t, err, tusproto.KindCanceled, endpoint); upstreamErr.Temporary() {
				t.Error("a cancellation must not be temporary")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %q does not wrap context.Canceled", err)
			}
		})
		t.Run(operation.name+"/during", func(t *testing.T) {
			endpoint, arrived := blockingServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				<-arrived
				cancel()
			}()
			err := operation.call(ctx, newClient(t), endpoint)
			upstreamError(t, err, tusproto.KindCanceled, endpoint)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %q does not wrap context.Canceled", err)
			}
		})
	}
}

func TestNetworkErrors(t *testing.T) {
	closedAddress := testkit.FreeAddr(t)

	// An upstream that hangs up on every request without answering.
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	t.Cleanup(hangUp.Close)

	// A server that closes a connection with unread request bytes in its
	// buffer sends a reset, so a PATCH may see either ending.
	tests := []struct {
		name, endpoint string
		wantMessages   []string
	}{
		{"connection refused", "http://" + closedAddress + "/upload/secret-id?token=s3cr3t", []string{"connection refused"}},
		{"connection closed", hangUp.URL + "/upload/secret-id?token=s3cr3t",
			[]string{"connection closed by upstream", "connection reset by upstream"}},
	}
	for _, test := range tests {
		for _, operation := range operations {
			t.Run(test.name+"/"+operation.name, func(t *testing.T) {
				err := operation.call(context.Background(), newClient(t), test.endpoint)
				upstreamErr := upstreamError(t, err, tusproto.KindNetwork, test.endpoint)
				if !upstreamErr.Temporary() || upstreamErr.Gone() || upstreamErr.Status != 0 || upstreamErr.Offset != -1 {
					t.Errorf("got Temporary %v, Gone %v, Status %d, Offset %d; want true, false, 0, -1",
						upstreamErr.Temporary(), upstreamErr.Gone(), upstreamErr.Status, upstreamErr.Offset)
				}
				matched := false
				for _, want := range test.wantMessages {
					matched = matched || err.Error() == "upstream "+operation.name+": "+want
				}
				if !matched {
					t.Errorf("message %q, want \"upstream %s: \" + one of %q", err, operation.name, test.wantMessages)
				}
			})
		}
	}
}

func TestInvalidEndpointIsNotQuoted(t *testing.T) {
	endpoint := "http://upload.example/secret-id\x7f?token=s3cr3t"
	for _, operation := range operations {
		t.Run(operation.name, func(t *testing.T) {
			err := operation.call(context.Background(), newClient(t), endpoint)
			if err == nil {
				t.Fatal("no error for an invalid URL")
			}
			assertNoEndpoint(t, err, endpoint)
		})
	}
}

func TestErrorResponsesLeaveConnectionReusable(t *testing.T) {
	up := newUpstream(t)
	client := newClient(t)
	unknown := up.server.URL + "/files/00000000000000000000000000000000"

	// tusd answers an unknown upload with a text body; unless the client
	// reads it, the connection cannot serve the next request.
	var reused []bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) },
	})
	for range 3 {
		err := client.Delete(ctx, unknown)
		if upstreamErr := upstreamError(t, err, tusproto.KindStatus, unknown); !upstreamErr.Gone() {
			t.Fatalf("Delete of an unknown upload: status %d, want 404", upstreamErr.Status)
		}
	}
	if len(reused) != 3 || reused[0] || !reused[1] || !reused[2] {
		t.Errorf("connection reuse per request = %v, want [false true true]", reused)
	}
}

func TestErrorKindString(t *testing.T) {
	want := map[tusproto.ErrorKind]string{
		tusproto.KindStatus:      "status",
		tusproto.KindBadResponse: "bad_response",
		tusproto.KindTimeout:     "timeout",
		tusproto.KindNetwork:     "network",
		tusproto.KindCanceled:    "canceled",
		tusproto.KindBody:        "body",
		0:                        "unknown",
	}
	for kind, name := range want {
		if got := kind.String(); got != name {
			t.Errorf("ErrorKind(%d).String() = %q, want %q", int(kind), got, name)
		}
	}
}
