package tusproto_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

func TestHeadReportsUploadState(t *testing.T) {
	up := newUpstream(t)
	client := newClient(t)
	ctx := context.Background()

	fresh := up.create(t, 1000)
	state, err := client.Head(ctx, fresh)
	if err != nil {
		t.Fatalf("Head fresh upload: %v", err)
	}
	if want := (tusproto.UploadState{Offset: 0, Length: 1000}); state != want {
		t.Errorf("Head fresh upload = %+v, want %+v", state, want)
	}

	if _, err := client.Patch(ctx, fresh, 0, strings.NewReader(strings.Repeat("x", 300)), 300); err != nil {
		t.Fatalf("Patch: %v", err)
	}
	up.awaitPatch(t)
	state, err = client.Head(ctx, fresh)
	if err != nil {
		t.Fatalf("Head after Patch: %v", err)
	}
	if want := (tusproto.UploadState{Offset: 300, Length: 1000}); state != want {
		t.Errorf("Head after Patch = %+v, want %+v", state, want)
	}

	deferred := up.create(t, -1)
	state, err = client.Head(ctx, deferred)
	if err != nil {
		t.Fatalf("Head deferred-length upload: %v", err)
	}
	if want := (tusproto.UploadState{Offset: 0, Length: -1}); state != want {
		t.Errorf("Head deferred-length upload = %+v, want %+v", state, want)
	}
}

func TestHeadUnknownUploadIsGone(t *testing.T) {
	up := newUpstream(t)
	endpoint := up.server.URL + "/files/0123456789abcdef"

	_, err := newClient(t).Head(context.Background(), endpoint)
	upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint)
	if upstreamErr.Status != http.StatusNotFound || !upstreamErr.Gone() || upstreamErr.Temporary() {
		t.Errorf("got status %d, Gone %v, Temporary %v; want 404, true, false",
			upstreamErr.Status, upstreamErr.Gone(), upstreamErr.Temporary())
	}
	if upstreamErr.Op != "head" || upstreamErr.Offset != -1 {
		t.Errorf("got Op %q, Offset %d; want head, -1", upstreamErr.Op, upstreamErr.Offset)
	}
}

func TestHeadRejectsBadResponses(t *testing.T) {
	tests := []struct {
		name       string
		header     map[string]string
		wantOffset int64
	}{
		{"missing offset", map[string]string{"Upload-Length": "10"}, -1},
		{"offset not a number", map[string]string{"Upload-Offset": "ten"}, -1},
		{"negative offset", map[string]string{"Upload-Offset": "-1"}, -1},
		{"length not a number", map[string]string{"Upload-Offset": "1", "Upload-Length": "1e3"}, 1},
		{"offset beyond length", map[string]string{"Upload-Offset": "11", "Upload-Length": "10"}, 11},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for name, value := range test.header {
					w.Header().Set(name, value)
				}
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(server.Close)
			endpoint := server.URL + "/upload/secret-id?signature=s3cr3t"

			_, err := newClient(t).Head(context.Background(), endpoint)
			upstreamErr := upstreamError(t, err, tusproto.KindBadResponse, endpoint)
			if upstreamErr.Status != http.StatusOK || upstreamErr.Offset != test.wantOffset {
				t.Errorf("got Status %d, Offset %d; want 200, %d", upstreamErr.Status, upstreamErr.Offset, test.wantOffset)
			}
			if upstreamErr.Temporary() || upstreamErr.Gone() {
				t.Errorf("a bad response must be neither temporary nor gone")
			}
		})
	}
}
