package proxy_test

import (
	"net/http"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(1000, "")
	if r := e.patch(loc, 0, testkit.RandomBytes(100)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH %d", r.StatusCode)
	}
	v := e.video(loc)
	if resp := e.do(http.MethodDelete, loc, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if got, _ := e.emu.Video(v.ID); !got.Terminated {
		t.Errorf("DELETE was not forwarded upstream")
	}
	for _, method := range []string{http.MethodHead, http.MethodDelete} {
		if resp := e.do(method, loc, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s after DELETE: %d, want 404", method, resp.StatusCode)
		}
	}
	if resp := e.patch(loc, 100, []byte("x")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("PATCH after DELETE: %d, want 404", resp.StatusCode)
	}
}

func TestDeleteToleratesUpstreamWithoutTermination(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(1000, "")
	v := e.video(loc)
	// The upstream already forgot it (Kinescope documents no DELETE): 404 is fine.
	if resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodDelete, v.Endpoint, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("direct DELETE: %d", resp.StatusCode)
	}
	if resp := e.do(http.MethodDelete, loc, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE with upstream 404: %d", resp.StatusCode)
	}
}

func TestDeleteUpstreamFailureKeepsRecord(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(1000, "")
	e.emu.SetFaults(kinescopetest.Faults{FailEvery: 1, FailStatus: 500})
	if resp := e.do(http.MethodDelete, loc, nil, nil); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("DELETE with failing upstream: %d, want 502", resp.StatusCode)
	}
	e.emu.SetFaults(kinescopetest.Faults{})
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != 0 {
		t.Fatalf("record lost: offset %d", got)
	}
	if resp := e.do(http.MethodDelete, loc, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("retried DELETE: %d", resp.StatusCode)
	}
}
