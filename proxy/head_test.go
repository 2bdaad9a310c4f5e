package proxy_test

import (
	"net/http"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestHeadAnswersRecordAndMetadataAsSent(t *testing.T) {
	e := newEnv(t, nil)
	// Keys in an order a map would not keep, and an empty value.
	raw := "zeta " + "eg==" + ",filename bW92aWUubXA0,alpha"
	loc := e.create(1000, raw)
	if r := e.patch(loc, 0, testkit.RandomBytes(300)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH %d", r.StatusCode)
	}
	resp := e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for header, want := range map[string]string{
		"Upload-Offset":   "300",
		"Upload-Length":   "1000",
		"Upload-Metadata": raw,
		"Cache-Control":   "no-store",
		"Tus-Resumable":   "1.0.0",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s %q, want %q", header, got, want)
		}
	}
	if resp.Header.Get("Upload-Expires") == "" {
		t.Errorf("no Upload-Expires")
	}
}

func TestHeadUpstreamIsTheSourceOfTruth(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(1000)
	loc := e.create(int64(len(data)), "")
	// A chunk reaches the upstream behind tusproxy's back: the record is behind.
	id := loc[len(e.base):]
	rec, err := e.store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPatch, rec.Endpoint, bytesReader(data[:600]),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("direct upstream PATCH: %d", resp.StatusCode)
	}
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != 600 {
		t.Fatalf("HEAD %d, want the upstream's 600", got)
	}
	if rec, _ := e.store.Get(t.Context(), id); rec.Offset != 600 {
		t.Fatalf("record not corrected: %d", rec.Offset)
	}
}

func TestHeadUpstreamFailureAnswersFromRecordNever5xx(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(1000, "")
	if r := e.patch(loc, 0, testkit.RandomBytes(250)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH %d", r.StatusCode)
	}
	// Every upstream request fails with 503: tus-js-client would start a new
	// upload on a 5xx to HEAD, so tusproxy answers from its record.
	e.emu.SetFaults(kinescopetest.Faults{FailEvery: 1, FailStatus: 503})
	resp := e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != "250" {
		t.Fatalf("HEAD with failing upstream: status %d offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	// An unreachable upstream likewise.
	e.emu.Close()
	resp = e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != "250" {
		t.Fatalf("HEAD with unreachable upstream: status %d offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
}

func TestHeadUnknownAndGone(t *testing.T) {
	e := newEnv(t, nil)
	for _, url := range []string{e.base + "0123456789abcdef0123456789abcdef", e.base + "nope", e.base + "%00"} {
		resp := e.do(http.MethodHead, url, nil, nil)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Upload-Offset") != "" {
			t.Errorf("HEAD %s: status %d offset %q, want 404 without Upload-Offset", url, resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
	}
	// The upstream forgets the upload: HEAD mirrors it and the record goes.
	loc := e.create(10, "")
	v := e.video(loc)
	if resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodDelete, v.Endpoint, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("direct upstream DELETE: %d", resp.StatusCode)
	}
	resp := e.do(http.MethodHead, loc, nil, nil)
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
		t.Fatalf("HEAD of an upload the upstream dropped: %d", resp.StatusCode)
	}
	if _, err := e.store.Get(t.Context(), loc[len(e.base):]); err == nil {
		t.Fatalf("record kept after the upstream dropped the upload")
	}
}
