package tusproto_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

func TestDeleteTerminatesUpload(t *testing.T) {
	up := newUpstream(t)
	client := newClient(t)
	ctx := context.Background()
	endpoint := up.create(t, 100)

	if err := client.Delete(ctx, endpoint); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := client.Head(ctx, endpoint)
	if upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint); !upstreamErr.Gone() {
		t.Errorf("Head after Delete: status %d, want 404 or 410", upstreamErr.Status)
	}

	err = client.Delete(ctx, endpoint)
	upstreamErr := upstreamError(t, err, tusproto.KindStatus, endpoint)
	if upstreamErr.Status != http.StatusNotFound || !upstreamErr.Gone() || upstreamErr.Op != "delete" {
		t.Errorf("second Delete: Op %q, status %d, Gone %v; want delete, 404, true",
			upstreamErr.Op, upstreamErr.Status, upstreamErr.Gone())
	}
}
