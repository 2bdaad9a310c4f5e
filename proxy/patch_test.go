package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

func TestPatchWholeFileInOneRequest(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(3<<20 + 17) // larger than the 256 KiB upstream chunk: many upstream PATCHes
	loc := e.create(int64(len(data)), meta("filename", "movie.mp4"))
	resp := e.patch(loc, 0, data)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Upload-Offset"); got != itoa(int64(len(data))) {
		t.Fatalf("Upload-Offset %q, want %d", got, len(data))
	}
	if resp.Header.Get("Upload-Expires") == "" {
		t.Error("PATCH answer has no Upload-Expires although uploads expire")
	}
	v := e.video(loc)
	testkit.CheckBytes(t, e.emu, v.ID, data)
	if !v.Complete {
		t.Error("emulator does not see the upload complete")
	}
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != int64(len(data)) {
		t.Fatalf("HEAD offset %d, want %d", got, len(data))
	}
}

func TestPatchInChunks(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(5<<20 + 3)
	loc := e.create(int64(len(data)), meta("filename", "a.mp4"))
	const chunk = 1 << 20
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		resp := e.patch(loc, int64(off), data[off:end])
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH at %d: status %d", off, resp.StatusCode)
		}
		if got := atoi(t, resp.Header.Get("Upload-Offset")); got != int64(end) {
			t.Fatalf("PATCH at %d: Upload-Offset %d, want %d", off, got, end)
		}
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestPatchChunkedTransferEncoding(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(700<<10 + 5)
	loc := e.create(int64(len(data)), "")
	// io.MultiReader hides the length, so net/http sends the body chunked.
	resp, _ := testkit.Tus(t, http.DefaultClient, http.MethodPatch, loc, io.MultiReader(bytes.NewReader(data)),
		"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != itoa(int64(len(data))) {
		t.Fatalf("chunked PATCH: status %d, offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

// rawPatch sends a PATCH over a raw connection, writes only the first sent
// bytes of a body declared as len(body), and closes the connection: a client
// that drops mid-PATCH.
func rawPatch(t *testing.T, uploadURL string, offset int64, body []byte, sent int) {
	t.Helper()
	u, err := url.Parse(uploadURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", u.Path, u.Host, offset, len(body))
	if _, err := conn.Write(body[:sent]); err != nil {
		t.Fatal(err)
	}
	// Give tusproxy time to forward what arrived before the connection drops;
	// correctness does not depend on it (HEAD asks the upstream).
	time.Sleep(200 * time.Millisecond)
}

func TestResumeAfterClientDropsMidPatch(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(2 << 20)
	loc := e.create(int64(len(data)), meta("filename", "drop.mp4"))
	rawPatch(t, loc, 0, data, 900_000)

	// HEAD must answer what the upstream really holds: a prefix of what was sent.
	var offset int64
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := e.do(http.MethodHead, loc, nil, nil)
		if resp.StatusCode == http.StatusOK {
			offset = atoi(t, resp.Header.Get("Upload-Offset"))
			break
		}
		if resp.StatusCode != http.StatusLocked || time.Now().After(deadline) {
			t.Fatalf("HEAD after drop: status %d", resp.StatusCode)
		}
	}
	if offset <= 0 || offset > 900_000 {
		t.Fatalf("offset after drop %d, want within (0, 900000]", offset)
	}
	if up := e.video(loc).Offset; up != offset {
		t.Fatalf("HEAD answered %d but the upstream holds %d", offset, up)
	}
	resp := e.patch(loc, offset, data[offset:])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resume PATCH: status %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestUpstreamCutsConnectionMidPatch(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "4MiB"})
	data := testkit.RandomBytes(1 << 20)
	loc := e.create(int64(len(data)), meta("filename", "cut.mp4"))
	const cutAfter = 300_000
	e.emu.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: cutAfter})

	resp, body := e.doBody(http.MethodPatch, loc, map[string]string{
		"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
	}, data)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("PATCH through a cut upstream: status %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(body, "resume") {
		t.Errorf("502 body does not tell the client what to do: %s", body)
	}
	e.emu.SetFaults(kinescopetest.Faults{})
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != cutAfter {
		t.Fatalf("HEAD after the cut: offset %d, want exactly the %d bytes the upstream kept", got, cutAfter)
	}
	resp = e.patch(loc, cutAfter, data[cutAfter:])
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resume: status %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestUpstreamWrongOffsetIsAnError(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(100_000)
	loc := e.create(int64(len(data)), "")
	e.emu.SetFaults(kinescopetest.Faults{WrongOffset: true})
	resp := e.patch(loc, 0, data)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("PATCH with a lying upstream: status %d, want 502", resp.StatusCode)
	}
	e.emu.SetFaults(kinescopetest.Faults{})
	// The record follows what the upstream really holds, not what it said.
	// The upstream may still be taking in the tail of the aborted PATCH, so
	// HEAD can lag behind it for a moment, but never run ahead of it.
	if got, up := testkit.HeadOffset(t, http.DefaultClient, loc), e.video(loc).Offset; got > up {
		t.Fatalf("HEAD %d, but the upstream holds only %d", got, up)
	}
}

// slowBody yields data in small pieces with pauses, so a PATCH stays in
// flight long enough for another to race it.
type slowBody struct {
	data  []byte
	step  int
	pause time.Duration
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.data[:min(s.step, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

func TestTwoPatchesRacingNeverInterleave(t *testing.T) {
	e := newEnv(t, nil)
	const size = 400_000
	a := bytes.Repeat([]byte{'A'}, size)
	b := bytes.Repeat([]byte{'B'}, size)
	loc := e.create(size, "")

	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i, data := range [][]byte{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(300 * time.Millisecond) // let the first one start streaming
			}
			req, _ := http.NewRequest(http.MethodPatch, loc, &slowBody{data: data, step: 20_000, pause: 50 * time.Millisecond})
			req.ContentLength = size
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses[i] = -1
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if statuses[0] == http.StatusNoContent && statuses[1] == http.StatusNoContent {
		t.Fatalf("both racing PATCHes at offset 0 succeeded")
	}
	got, err := e.emu.Data(e.video(loc).ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, a[:len(got)]) && !bytes.Equal(got, b[:len(got)]) {
		t.Fatalf("the upstream holds interleaved bytes from two PATCHes (statuses %v)", statuses)
	}
	if off := testkit.HeadOffset(t, http.DefaultClient, loc); off != int64(len(got)) {
		t.Fatalf("HEAD %d, upstream holds %d", off, len(got))
	}
	t.Logf("statuses %v, upstream kept %d bytes", statuses, len(got))
}

func TestPatchBadInput(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(1000)
	loc := e.create(int64(len(data)), "")
	if resp := e.patch(loc, 0, data[:400]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %d", resp.StatusCode)
	}
	octet := "application/offset+octet-stream"
	tests := []struct {
		name    string
		url     string
		headers map[string]string
		body    []byte
		status  int
		want    string
	}{
		{"wrong content type", loc, map[string]string{"Upload-Offset": "400", "Content-Type": "application/octet-stream"}, data[400:], 415, "Content-Type"},
		{"missing content type", loc, map[string]string{"Upload-Offset": "400"}, data[400:], 415, "Content-Type"},
		{"missing offset", loc, map[string]string{"Content-Type": octet}, data[400:], 400, "Upload-Offset"},
		{"non-numeric offset", loc, map[string]string{"Upload-Offset": "abc", "Content-Type": octet}, data[400:], 400, "Upload-Offset"},
		{"negative offset", loc, map[string]string{"Upload-Offset": "-1", "Content-Type": octet}, data[400:], 400, "Upload-Offset"},
		{"offset behind", loc, map[string]string{"Upload-Offset": "0", "Content-Type": octet}, data, 409, "400"},
		{"offset ahead", loc, map[string]string{"Upload-Offset": "500", "Content-Type": octet}, data[500:], 409, "400"},
		{"body longer than what remains", loc, map[string]string{"Upload-Offset": "400", "Content-Type": octet}, append(append([]byte{}, data[400:]...), 'x'), 413, "remain"},
		{"missing Tus-Resumable", loc, map[string]string{"Tus-Resumable": "", "Upload-Offset": "400", "Content-Type": octet}, data[400:], 412, "Tus-Resumable"},
		{"wrong Tus-Resumable", loc, map[string]string{"Tus-Resumable": "0.2.2", "Upload-Offset": "400", "Content-Type": octet}, data[400:], 412, "Tus-Resumable"},
		{"unknown id", e.base + "0123456789abcdef0123456789abcdef", map[string]string{"Upload-Offset": "0", "Content-Type": octet}, data, 404, "not found"},
		{"malformed id", e.base + "..%2f..%2fetc", map[string]string{"Upload-Offset": "0", "Content-Type": octet}, data, 404, "not found"},
		{"malformed id upper case", e.base + "0123456789ABCDEF0123456789ABCDEF", map[string]string{"Upload-Offset": "0", "Content-Type": octet}, data, 404, "not found"},
	}
	before := e.emu.Stats().Patch
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.doBody(http.MethodPatch, tt.url, tt.headers, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not mention %q", body, tt.want)
			}
			if resp.Header.Get("Tus-Resumable") != "1.0.0" {
				t.Errorf("answer has no Tus-Resumable")
			}
			if tt.status == 412 && resp.Header.Get("Tus-Version") != "1.0.0" {
				t.Errorf("412 without Tus-Version (tus 1.0.0 requires it)")
			}
		})
	}
	if after := e.emu.Stats().Patch; after != before {
		t.Errorf("rejected PATCHes reached the upstream: %d upstream PATCHes", after-before)
	}
	// Nothing stored was lost: the upload resumes where it was.
	if got := testkit.HeadOffset(t, http.DefaultClient, loc); got != 400 {
		t.Fatalf("offset after bad requests %d, want 400", got)
	}
	if resp := e.patch(loc, 400, data[400:]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("final PATCH: %d", resp.StatusCode)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}

func TestMethodOverride(t *testing.T) {
	e := newEnv(t, nil)
	data := testkit.RandomBytes(5000)
	loc := e.create(int64(len(data)), "")
	resp := e.do(http.MethodPost, loc, map[string]string{
		"X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
	}, data)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != "5000" {
		t.Fatalf("POST with override PATCH: status %d offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)

	for _, tt := range []struct {
		method, override string
		status           int
	}{
		{http.MethodPost, "GET", 400},
		{http.MethodPost, "PUT", 400},
		{http.MethodPatch, "DELETE", 400}, // honoured on POST only
	} {
		resp, body := e.doBody(tt.method, loc, map[string]string{"X-HTTP-Method-Override": tt.override}, nil)
		if resp.StatusCode != tt.status || !strings.Contains(body, "X-HTTP-Method-Override") {
			t.Errorf("%s with override %s: status %d body %s", tt.method, tt.override, resp.StatusCode, body)
		}
	}
	// Override DELETE terminates.
	if resp := e.do(http.MethodPost, loc, map[string]string{"X-HTTP-Method-Override": "DELETE"}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST with override DELETE: %d", resp.StatusCode)
	}
	if resp := e.do(http.MethodHead, loc, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after override DELETE: %d", resp.StatusCode)
	}
}

// A client that half-closes its connection mid-body must not be told its
// PATCH succeeded: net/http would send an implicit 200 if tusproxy simply
// returned.
func TestHalfClosedClientGetsNoSuccess(t *testing.T) {
	e := newEnv(t, nil)
	loc := e.create(100_000, "")
	u, _ := url.Parse(loc)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: 100000\r\n\r\n", u.Path, u.Host)
	conn.Write(make([]byte, 30_000))
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, _ := io.ReadAll(conn)
	if bytes.HasPrefix(answer, []byte("HTTP/1.1 2")) {
		t.Fatalf("a half-closed PATCH was answered with success: %q", answer)
	}
	// The upstream may still be taking in the tail of the aborted PATCH, so
	// HEAD can lag behind it for a moment, but never run ahead of it.
	if got, up := testkit.HeadOffset(t, http.DefaultClient, loc), e.video(loc).Offset; got > up {
		t.Fatalf("HEAD %d, but the upstream holds only %d", got, up)
	}
}

// With TUSPROXY_UPSTREAM_CHUNK_SIZE=0 (the default) a client's PATCH, of
// any size and whether or not it declares its length, goes upstream as one
// PATCH.
func TestChunkSizeZeroNeverSplits(t *testing.T) {
	e := newEnv(t, map[string]string{"TUSPROXY_UPSTREAM_CHUNK_SIZE": "0"})
	data := testkit.RandomBytes(3 << 20)
	loc := e.create(int64(len(data)), meta("filename", "whole.mp4"))
	before := e.emu.Stats().Patch
	if resp := e.patch(loc, 0, data[:2<<20]); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH: status %d", resp.StatusCode)
	}
	if n := e.emu.Stats().Patch - before; n != 1 {
		t.Errorf("a 2 MiB client PATCH became %d upstream PATCHes, want 1", n)
	}
	// Chunked from the client (no Content-Length): one upstream PATCH too.
	req := testkit.TusRequest(t, http.MethodPatch, loc, struct{ io.Reader }{bytes.NewReader(data[2<<20:])},
		"Upload-Offset", "2097152", "Content-Type", "application/offset+octet-stream")
	req.ContentLength = -1
	resp, _ := testkit.Send(t, http.DefaultClient, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("chunked PATCH: status %d", resp.StatusCode)
	}
	if n := e.emu.Stats().Patch - before; n != 2 {
		t.Errorf("two client PATCHes became %d upstream PATCHes, want 2", n)
	}
	testkit.CheckBytes(t, e.emu, e.video(loc).ID, data)
}
