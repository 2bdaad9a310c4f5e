package proxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// FuzzProtocol runs a program decoded from the fuzzer's bytes: a sequence of
// at most protocolMaxSteps tus requests (creation, HEAD, PATCH at right and
// wrong offsets, chunked and overridden PATCHes, clients vanishing mid-body,
// DELETE, malformed requests) against tusproxy in front of the emulator,
// with emulator faults switched on and off between them.
//
// Each upload has a fixed byte string that its client means to send (bodies
// are always slices of it, or its complement when the request must be
// refused). After every step:
//   - the emulator holds, for every upload, a prefix of that string;
//   - no HEAD answers 5xx, and no answer at all is 500;
//   - HEAD never answers an offset below one tusproxy confirmed before
//     (HEAD, PATCH or creation), unless the upload was deleted or is gone
//     upstream, nor above what the emulator holds;
//   - a 204 to PATCH confirms exactly the bytes sent.
//
// At the end, with the faults cleared, every upload must be finished by a
// client that HEADs and PATCHes the rest (retrying a 409 for up to 5 s, as
// tus-js-client does: the upstream may read an aborted PATCH of a vanished
// client after answering tusproxy's HEAD), with byte-exact content; huge
// ones must reach a HEAD that agrees with the emulator. The logs must show
// no panic and no 500 (raw requests have no answer to check).
//
// Each input gets its own tusproxy and emulator (newEnv, a few
// milliseconds): the emulator's fault counters and tusproxy's records then
// depend on the input alone, so an input the fuzzer writes to testdata
// replays the same way, timing aside. A shared, lazily built env would be
// faster but would carry uploads and fault counters from one input into the
// next, so a failure would depend on which inputs happened to run before.
func FuzzProtocol(f *testing.F) {
	for _, seed := range protocolSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, program []byte) {
		newProtocolRun(t).run(program)
	})
}

const (
	protocolMaxSteps = 30
	// protocolMaxUploads bounds the uploads one program creates, so the
	// per-step checks stay cheap.
	protocolMaxUploads = 6
	// protocolHugeLength is the Upload-Length of "huge" creations: accepted
	// (no TUSPROXY_MAX_SIZE), never completed, only ever patched a little.
	protocolHugeLength = 1 << 40
	// protocolCompleteLimit is the largest upload completed at the end.
	protocolCompleteLimit = 1 << 20
)

// Operations of a protocol program; the first byte of each step, modulo
// opCount. Each op's operand bytes are read by its method on protocolRun.
const (
	opCreate     = iota // length hi, lo, flags, body hi, lo
	opCreateBad         // variant
	opHead              // upload
	opPatch             // upload, offset kind, delta, length hi, lo, mode
	opDisconnect        // upload, declared length hi, lo, fraction sent
	opDelete            // upload
	opFaults            // kind, a, b
	opPatchBad          // upload, variant, length hi, lo
	opUnknownID         // variant
	opCount
)

// protocolSeeds cover every operation and every variant of each.
func protocolSeeds() [][]byte {
	// Operands are given in bytes and encoded as the decoder reads them.
	u16 := func(v int) []byte { return []byte{byte(v >> 8), byte(v)} }
	create := func(length int, flags byte, body int) []byte {
		return slices.Concat([]byte{opCreate}, u16((length-1)/4), []byte{flags}, u16(body/2))
	}
	head := func(upload byte) []byte { return []byte{opHead, upload} }
	patch := func(upload, offsetKind, delta byte, n int, mode byte) []byte {
		return slices.Concat([]byte{opPatch, upload, offsetKind, delta}, u16(n/2), []byte{mode})
	}
	disconnect := func(upload byte, declared int, fraction byte) []byte {
		return slices.Concat([]byte{opDisconnect, upload}, u16((declared-1)/2), []byte{fraction})
	}
	del := func(upload byte) []byte { return []byte{opDelete, upload} }
	faults := func(kind, a, b byte) []byte { return []byte{opFaults, kind, a, b} }
	patchBad := func(upload, variant byte, n int) []byte {
		return slices.Concat([]byte{opPatchBad, upload, variant}, u16(n))
	}
	seq := func(steps ...[]byte) []byte { return bytes.Join(steps, nil) }

	var seeds [][]byte
	// A plain upload in three PATCHes: fixed length, chunked, overridden.
	seeds = append(seeds, seq(create(200_000, 4, 0), patch(0, 0, 0, 60_000, 0), head(0),
		patch(0, 0, 0, 60_000, 1), patch(0, 0, 0, 80_000, 2), head(0)))
	// Creation with upload, then every kind of wrong offset.
	seeds = append(seeds, seq(create(120_000, 1, 40_000), head(0),
		patch(0, 4, 7, 200, 0), patch(0, 5, 3, 200, 0), patch(0, 6, 0, 200, 0), patch(0, 7, 0, 200, 0),
		patch(0, 7, 1, 200, 0), patch(0, 7, 2, 200, 0), patch(0, 7, 3, 200, 0), patch(0, 7, 4, 200, 0),
		patch(0, 7, 5, 200, 0), head(0)))
	// Bodies longer than what remains, fixed and chunked; an empty PATCH.
	seeds = append(seeds, seq(create(4_000, 0, 0), patch(0, 0, 0, 120_000, 0), patch(0, 0, 0, 120_000, 1),
		head(0), patch(0, 0, 0, 0, 0), head(0)))
	// A client vanishing mid-body, then resuming.
	seeds = append(seeds, seq(create(160_000, 0, 0), disconnect(0, 120_000, 128), head(0),
		disconnect(0, 120_000, 0), head(0), patch(0, 0, 0, 100_000, 0), head(0)))
	// The upstream cutting PATCHes, at and around the 64 KiB chunk size.
	for after := byte(0); after < 6; after++ {
		seeds = append(seeds, seq(create(240_000, 0, 0), faults(1, 0, after), patch(0, 0, 0, 130_000, 0), head(0),
			patch(0, 0, 0, 130_000, 0), faults(1, 1, after), head(0), patch(0, 0, 0, 130_000, 1), head(0)))
	}
	// The upstream failing every Nth request with each failure status.
	for status := byte(0); status < 6; status++ {
		seeds = append(seeds, seq(create(160_000, 0, 0), faults(2, 1, status), patch(0, 0, 0, 60_000, 0), head(0),
			patch(0, 0, 0, 60_000, 0), head(0), del(0), head(0)))
	}
	// A lying upstream; init failures of every kind; a dropped init.
	seeds = append(seeds, seq(create(160_000, 0, 0), faults(3, 0, 0), patch(0, 0, 0, 80_000, 0), head(0),
		patch(0, 0, 0, 80_000, 0), head(0)))
	for status := byte(0); status < 8; status++ {
		seeds = append(seeds, seq(faults(4, status, 0), create(400, 1, 100), faults(0, 0, 0), create(400, 0, 0), head(0)))
	}
	seeds = append(seeds, seq(faults(5, 0, 0), create(400, 0, 0), faults(0, 0, 0), create(400, 0, 0)))
	// Refused creations, refused PATCHes, unknown ids.
	// Before any upload exists, the upload operations use an unknown id.
	refused := [][]byte{head(0), patch(0, 0, 0, 100, 0), del(0), disconnect(0, 100, 50), patchBad(0, 0, 10)}
	for v := byte(0); v < 10; v++ {
		refused = append(refused, []byte{opCreateBad, v})
	}
	refused = append(refused, create(4_000, 0, 0))
	for v := byte(0); v < 5; v++ {
		refused = append(refused, patchBad(0, v, 500))
	}
	for v := byte(0); v < 18; v += 5 {
		refused = append(refused, []byte{opUnknownID, v})
	}
	seeds = append(seeds, seq(refused...))
	// Several uploads interleaved, a huge one, deletes, and use after delete.
	seeds = append(seeds, seq(create(40_000, 0, 0), create(1, 2, 20_000), create(80_000, 1, 120_000),
		patch(0, 0, 0, 80_000, 0), patch(1, 0, 0, 80_000, 0), patch(2, 0, 0, 80_000, 1),
		del(1), head(1), patch(1, 0, 0, 20, 0), del(1), head(0), head(2)))
	return seeds
}

// protocolUpload is what the program knows of one upload it created.
type protocolUpload struct {
	url     string
	id      string
	videoID string
	length  int64
	salt    uint64 // chooses the bytes the client means to send
	known   int64  // the offset tusproxy last answered: where a client resumes
	floor   int64  // the highest offset tusproxy confirmed: HEAD may not answer less
	// deleted: DELETE answered 204; gone: tusproxy answered 404/410, having
	// learnt that the upstream no longer has the upload. Either ends the
	// offset checks.
	deleted, gone bool
}

// meant returns bytes [from, to) of what the client means to send.
func (u *protocolUpload) meant(from, to int64) []byte {
	b := make([]byte, max(to-from, 0))
	for i := range b {
		b[i] = meantByte(u.salt, from+int64(i))
	}
	return b
}

// meantByte is a cheap hash (splitmix64's finalizer) of the position, so a
// byte landing at the wrong offset is caught.
func meantByte(salt uint64, pos int64) byte {
	z := salt + uint64(pos)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return byte(z ^ (z >> 31))
}

// complement returns b with every bit flipped: bytes that can never match
// what the client means to send, for requests that must be refused.
func complement(b []byte) []byte {
	c := make([]byte, len(b))
	for i := range b {
		c[i] = ^b[i]
	}
	return c
}

type protocolRun struct {
	t       *testing.T
	e       *env
	client  *http.Client
	program []byte
	uploads []*protocolUpload
	sent    int // requests sent to tusproxy, each logged once when done
	// vanished: a client vanished mid-body, so an aborted upstream PATCH
	// may still reach the emulator at any later time.
	vanished bool
	trace    []string // what happened, for failure messages
}

func newProtocolRun(t *testing.T) *protocolRun {
	e := newEnv(t, map[string]string{
		"TUSPROXY_UPSTREAM_CHUNK_SIZE": "64KiB", // the smallest: client PATCHes span several upstream ones
		"TUSPROXY_INIT_TIMEOUT":        "5s",
	})
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	return &protocolRun{t: t, e: e, client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
}

func (r *protocolRun) next() byte {
	if len(r.program) == 0 {
		return 0
	}
	b := r.program[0]
	r.program = r.program[1:]
	return b
}

func (r *protocolRun) next16() int64 { return int64(r.next())<<8 | int64(r.next()) }

func (r *protocolRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nsteps so far:\n  %s", fmt.Sprintf(format, args...), strings.Join(r.trace, "\n  "))
}

func (r *protocolRun) note(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
}

func (r *protocolRun) run(program []byte) {
	r.program = program
	for step := 0; step < protocolMaxSteps && len(r.program) > 0; step++ {
		switch r.next() % opCount {
		case opCreate:
			r.create()
		case opCreateBad:
			r.createBad()
		case opHead:
			r.head(r.pick())
		case opPatch:
			r.patch()
		case opDisconnect:
			r.disconnect()
		case opDelete:
			r.delete()
		case opFaults:
			r.faults()
		case opPatchBad:
			r.patchBad()
		case opUnknownID:
			r.unknownID()
		}
		r.checkUpstream()
	}
	r.finish()
}

// pick chooses one of the uploads; nil (an unknown id) when there are none.
func (r *protocolRun) pick() *protocolUpload {
	b := r.next()
	if len(r.uploads) == 0 {
		return nil
	}
	return r.uploads[int(b)%len(r.uploads)]
}

// send sends one request to tusproxy and checks what every answer must be.
// size is the Content-Length; -1 sends body chunked.
func (r *protocolRun) send(method, target string, headers map[string]string, body []byte, size int64) (int, http.Header) {
	r.t.Helper()
	var rd io.Reader
	hasBody := body != nil && (len(body) > 0 || size < 0)
	if hasBody {
		rd = io.MultiReader(bytes.NewReader(body)) // hides the length from net/http
	}
	req := testkit.TusRequest(r.t, method, target, rd)
	if hasBody {
		req.ContentLength = size
	}
	setHeaders(req.Header, headers)
	r.sent++
	resp, err := r.client.Do(req)
	if err != nil {
		r.fatalf("%s: no answer: %v", method, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusInternalServerError {
		r.fatalf("%s answered 500", method)
	}
	if method == http.MethodHead && resp.StatusCode >= 500 {
		r.fatalf("HEAD answered %d: tus-js-client would start a new upload", resp.StatusCode)
	}
	return resp.StatusCode, resp.Header
}

func (r *protocolRun) uploadURL(u *protocolUpload) string {
	if u == nil {
		return r.e.base + "00000000000000000000000000000000"
	}
	return u.url
}

func (r *protocolRun) create() {
	length := 1 + r.next16()*4
	flags := r.next()
	bodyLen := r.next16() * 2
	if flags&2 != 0 {
		length = protocolHugeLength
	}
	u := &protocolUpload{length: length, salt: uint64(len(r.uploads)+1) * 0x2545f4914f6cdd1d}
	headers := map[string]string{"Upload-Length": itoa(length)}
	if flags&4 != 0 {
		headers["Upload-Metadata"] = meta("filename", "fuzz.mp4", "title", "fuzz")
	}
	var body []byte
	if flags&1 != 0 {
		body = u.meant(0, min(bodyLen, length))
		headers["Content-Type"] = "application/offset+octet-stream"
	}
	status, h := r.send(http.MethodPost, r.e.base, headers, body, int64(len(body)))
	r.note("POST length %d body %d: %d", length, len(body), status)
	if status != http.StatusCreated {
		if status < 400 {
			r.fatalf("creation answered %d", status)
		}
		return
	}
	u.url = h.Get("Location")
	u.id = testkit.UploadID(u.url)
	rec, err := r.e.store.Get(r.t.Context(), u.id)
	if err != nil {
		r.fatalf("201 but no record: %v", err)
	}
	u.videoID = rec.VideoID
	offset := atoi(r.t, h.Get("Upload-Offset"))
	if offset < 0 || offset > int64(len(body)) {
		r.fatalf("creation answered Upload-Offset %d after a body of %d bytes", offset, len(body))
	}
	u.known, u.floor = offset, offset
	if len(r.uploads) < protocolMaxUploads {
		r.uploads = append(r.uploads, u)
	}
}

// createBad sends creations that must be refused before Kinescope is called.
func (r *protocolRun) createBad() {
	variants := []map[string]string{
		{"Upload-Length": "0"},
		{"Upload-Length": "-1"},
		{"Upload-Length": ""},
		{"Upload-Length": "99999999999999999999"},
		{"Upload-Length": "12x"},
		{"Upload-Length": "10", "Upload-Defer-Length": "1"},
		{"Upload-Length": "10", "Upload-Concat": "partial"},
		{"Upload-Length": "10", "Upload-Metadata": "a YQ==,a YQ=="},
		{"Upload-Length": "10", "Tus-Resumable": "0.2.2"},
		{"Upload-Length": "10", "Content-Type": "text/plain"},
	}
	v := int(r.next()) % len(variants)
	inits := r.e.emu.Stats().Init
	var body []byte
	if v == len(variants)-1 {
		body = []byte("not an upload")
	}
	status, _ := r.send(http.MethodPost, r.e.base, variants[v], body, int64(len(body)))
	r.note("bad POST %v: %d", variants[v], status)
	if status < 400 || status >= 500 {
		r.fatalf("malformed creation %v answered %d, want 4xx", variants[v], status)
	}
	if got := r.e.emu.Stats().Init; got != inits {
		r.fatalf("malformed creation %v reached Kinescope", variants[v])
	}
}

func (r *protocolRun) head(u *protocolUpload) {
	status, h := r.send(http.MethodHead, r.uploadURL(u), nil, nil, 0)
	r.note("HEAD %s: %d %s", r.name(u), status, h.Get("Upload-Offset"))
	if u == nil {
		if status != http.StatusNotFound {
			r.fatalf("HEAD of an unknown upload answered %d", status)
		}
		return
	}
	switch {
	case status == http.StatusOK:
	case status == http.StatusNotFound || status == http.StatusGone:
		if !u.deleted {
			u.gone = true
		}
		return
	case status == http.StatusLocked:
		return
	default:
		r.fatalf("HEAD answered %d", status)
	}
	if u.deleted || u.gone {
		r.fatalf("HEAD of a deleted or gone upload answered 200")
	}
	offset := atoi(r.t, h.Get("Upload-Offset"))
	if got := h.Get("Upload-Length"); got != itoa(u.length) {
		r.fatalf("HEAD answered Upload-Length %s, want %d", got, u.length)
	}
	if offset < u.floor {
		r.fatalf("HEAD answered %d, below the %d tusproxy confirmed before", offset, u.floor)
	}
	if up := r.upstreamOffset(u); offset > up {
		r.fatalf("HEAD answered %d, beyond the %d bytes the upstream holds", offset, up)
	}
	u.known, u.floor = offset, offset
}

func (r *protocolRun) patch() {
	u := r.pick()
	kind, delta := r.next()%8, int64(r.next())
	n := r.next16() * 2
	mode := r.next() % 3
	var offset int64
	var offsetHeader string
	switch {
	case u == nil:
		offsetHeader = "0"
	case kind < 4: // most PATCHes are right, so uploads progress
		offset = u.known
	case kind == 4:
		offset = u.known + 1 + delta
	case kind == 5:
		offset = max(u.known-1-delta, 0)
	case kind == 6:
		offset, offsetHeader = u.known, "-1"
	default:
		odd := []string{"9223372036854775807", "99999999999999999999", "+0", "0x10", " 12 ", "1e3"}
		offset, offsetHeader = u.known, odd[int(delta)%len(odd)]
	}
	if offsetHeader == "" {
		offsetHeader = itoa(offset)
	}
	var body []byte
	if u != nil {
		body = u.meant(offset, offset+n)
	} else {
		body = make([]byte, n)
	}
	method, headers := http.MethodPatch, map[string]string{
		"Upload-Offset": offsetHeader,
		"Content-Type":  "application/offset+octet-stream",
	}
	size := int64(len(body))
	switch mode {
	case 1:
		size = -1
	case 2:
		method = http.MethodPost
		headers["X-HTTP-Method-Override"] = "PATCH"
	}
	status, h := r.send(method, r.uploadURL(u), headers, body, size)
	r.note("PATCH %s offset %q body %d (mode %d): %d %s", r.name(u), offsetHeader, n, mode, status, h.Get("Upload-Offset"))
	if u == nil {
		if status != http.StatusNotFound {
			r.fatalf("PATCH of an unknown upload answered %d", status)
		}
		return
	}
	switch status {
	case http.StatusNoContent:
		got := atoi(r.t, h.Get("Upload-Offset"))
		if u.deleted || u.gone {
			r.fatalf("PATCH of a deleted or gone upload answered 204")
		}
		if got != offset+n {
			r.fatalf("204 with Upload-Offset %d after %d bytes at %d", got, n, offset)
		}
		if got < u.floor {
			r.fatalf("PATCH answered %d, below the %d tusproxy confirmed before", got, u.floor)
		}
		u.known, u.floor = got, got
	case http.StatusNotFound, http.StatusGone:
		if !u.deleted {
			u.gone = true
		}
	}
}

// disconnect is a client that declares a body, sends part of it over a raw
// connection and vanishes (as rawPatch in patch_test.go), then waits until
// tusproxy has finished with the request, so later steps see its effect.
func (r *protocolRun) disconnect() {
	u := r.pick()
	declared := 1 + r.next16()*2
	sent := declared * int64(r.next()) / 256
	if u == nil {
		return
	}
	body := u.meant(u.known, u.known+declared)
	target, err := url.Parse(u.url)
	if err != nil {
		r.t.Fatal(err)
	}
	conn, err := net.Dial("tcp", target.Host)
	if err != nil {
		r.t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", target.Path, target.Host, u.known, declared)
	_, _ = conn.Write(body[:sent])
	conn.Close()
	r.sent++
	r.vanished = true
	r.note("PATCH %s offset %d: vanished after %d of %d bytes", r.name(u), u.known, sent, declared)
	r.waitForRequests()
	// Nobody heard the answer: the store tells whether tusproxy learnt
	// meanwhile that the upstream no longer has the upload.
	if _, err := r.e.store.Get(r.t.Context(), u.id); errors.Is(err, state.ErrNotFound) && !u.deleted {
		u.gone = true
	}
}

// waitForRequests waits until tusproxy has logged every request sent so
// far: its handlers are done, nothing is still streaming upstream.
func (r *protocolRun) waitForRequests() {
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(r.e.logs.String(), `"msg":"request"`) < r.sent {
		if time.Now().After(deadline) {
			r.fatalf("tusproxy still has requests in flight after 20 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *protocolRun) delete() {
	u := r.pick()
	status, _ := r.send(http.MethodDelete, r.uploadURL(u), nil, nil, 0)
	r.note("DELETE %s: %d", r.name(u), status)
	if u == nil {
		if status != http.StatusNotFound {
			r.fatalf("DELETE of an unknown upload answered %d", status)
		}
		return
	}
	switch status {
	case http.StatusNoContent:
		if u.deleted || u.gone {
			r.fatalf("DELETE of a deleted or gone upload answered 204")
		}
		u.deleted = true
	case http.StatusNotFound, http.StatusGone:
		if !u.deleted {
			u.gone = true
		}
	}
}

func (r *protocolRun) faults() {
	kind, a, b := r.next()%6, r.next(), r.next()
	var f kinescopetest.Faults
	switch kind {
	case 1:
		// Around the 64 KiB upstream chunk: 65536 is a cut after the whole
		// chunk is stored, with its answer lost.
		after := []int64{0, 1, 1000, 65535, 65536, 100_000}
		f = kinescopetest.Faults{CutPatchEvery: 1 + int(a)%3, CutPatchAfter: after[int(b)%len(after)]}
	case 2:
		statuses := []int{503, 500, 502, 409, 404, 410}
		f = kinescopetest.Faults{FailEvery: 1 + int(a)%3, FailStatus: statuses[int(b)%len(statuses)]}
	case 3:
		f = kinescopetest.Faults{WrongOffset: true}
	case 4:
		statuses := []int{500, 503, 429, 401, 402, 400, 201, 200}
		f = kinescopetest.Faults{InitStatus: statuses[int(a)%len(statuses)]}
		if f.InitStatus < 300 {
			f.InitBody = `{"data":{"id":"x"}}` // no endpoint
		}
	case 5:
		f = kinescopetest.Faults{InitDrop: true}
	}
	r.e.emu.SetFaults(f)
	r.note("faults %+v", f)
}

// patchBad sends PATCHes that must be refused before the upstream sees
// them; their bodies are the complement of the meant bytes, so any that
// reached the upstream would break the prefix check too.
func (r *protocolRun) patchBad() {
	u := r.pick()
	variant := r.next() % 5
	n := r.next16()
	if u == nil {
		return
	}
	headers := map[string]string{"Upload-Offset": itoa(u.known), "Content-Type": "application/offset+octet-stream"}
	method, want := http.MethodPatch, []int{http.StatusUnsupportedMediaType}
	switch variant {
	case 0:
		headers["Content-Type"] = "application/octet-stream"
	case 1:
		headers["Tus-Resumable"] = "1.0.1"
		want = []int{http.StatusPreconditionFailed}
	case 2:
		method, want = http.MethodPost, []int{http.StatusBadRequest}
		headers["X-HTTP-Method-Override"] = "PUT"
	case 3:
		headers["Upload-Offset"] = ""
		want = []int{http.StatusBadRequest}
	case 4:
		// Longer than what remains: refused whole, before anything is sent.
		n = u.length - u.known + 1 + n
		if n > 1<<20 {
			return
		}
		want = []int{http.StatusRequestEntityTooLarge, http.StatusConflict, http.StatusNotFound, http.StatusGone}
	}
	body := complement(u.meant(u.known, u.known+n))
	patches := r.e.emu.Stats().Patch
	status, _ := r.send(method, u.url, headers, body, int64(len(body)))
	r.note("bad PATCH %s variant %d body %d: %d", r.name(u), variant, n, status)
	if !containsStatus(want, status) && status != http.StatusLocked {
		r.fatalf("malformed PATCH (variant %d) answered %d, want one of %v", variant, status, want)
	}
	// After a vanished client, the upstream may receive tusproxy's aborted
	// PATCH late, so the count proves nothing; the complement bytes still
	// fail the prefix check if they ever arrive.
	if got := r.e.emu.Stats().Patch; got != patches && !r.vanished {
		r.fatalf("malformed PATCH (variant %d) reached the upstream", variant)
	}
}

func containsStatus(list []int, status int) bool {
	for _, s := range list {
		if s == status {
			return true
		}
	}
	return false
}

// unknownID sends requests for uploads that do not exist or cannot.
func (r *protocolRun) unknownID() {
	ids := []string{"0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF", "..%2f..%2fetc", "x", "", "%00"}
	methods := []string{http.MethodHead, http.MethodPatch, http.MethodDelete}
	v := int(r.next())
	id, method := ids[v%len(ids)], methods[(v/len(ids))%len(methods)]
	headers := map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
	status, _ := r.send(method, r.e.base+id, headers, nil, 0)
	r.note("%s unknown id %q: %d", method, id, status)
	if status < 400 || status >= 500 {
		r.fatalf("%s of unknown id %q answered %d, want 4xx", method, id, status)
	}
}

func (r *protocolRun) name(u *protocolUpload) string {
	for i, v := range r.uploads {
		if v == u {
			return fmt.Sprintf("#%d", i)
		}
	}
	if u == nil {
		return "unknown"
	}
	return "untracked"
}

// upstreamOffset is how many bytes the emulator holds for u.
func (r *protocolRun) upstreamOffset(u *protocolUpload) int64 {
	v, ok := r.e.emu.Video(u.videoID)
	if !ok {
		r.fatalf("the emulator has no video %s", u.videoID)
	}
	return v.Offset
}

// checkUpstream asserts that the emulator holds a prefix of what each
// client meant to send.
func (r *protocolRun) checkUpstream() {
	r.t.Helper()
	for i, u := range r.uploads {
		data, err := r.e.emu.Data(u.videoID)
		if errors.Is(err, kinescopetest.ErrTerminated) {
			if !u.deleted && !u.gone {
				r.fatalf("upload #%d is terminated upstream, but DELETE never succeeded", i)
			}
			continue
		}
		if err != nil {
			r.t.Fatal(err)
		}
		if int64(len(data)) > u.length {
			r.fatalf("upload #%d: the upstream holds %d bytes of %d", i, len(data), u.length)
		}
		if want := u.meant(0, int64(len(data))); !bytes.Equal(data, want) {
			at := 0
			for at < len(data) && data[at] == want[at] {
				at++
			}
			r.fatalf("upload #%d: the upstream's %d bytes are not what the client meant to send (first difference at %d)",
				i, len(data), at)
		}
	}
}

// finish clears the faults and checks that every upload can be resumed
// from exactly what the upstream holds, and completed.
func (r *protocolRun) finish() {
	r.e.emu.SetFaults(kinescopetest.Faults{})
	r.note("faults cleared")
	for i, u := range r.uploads {
		if u.deleted || u.gone {
			continue
		}
		// The upstream may still be storing the tail of a PATCH that
		// tusproxy aborted for a vanished client: the upstream can read that
		// connection after it answered tusproxy's HEAD, so a PATCH at the
		// offset HEAD gave may meet a 409. A client then HEADs and resumes
		// (tus-js-client retries 409), and so does this loop, for a while: a
		// record that does not follow the upstream never converges.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.head(u)
			if u.gone {
				r.fatalf("upload #%d is gone once the faults are cleared", i)
			}
			up := r.upstreamOffset(u)
			if u.length > protocolCompleteLimit {
				if u.known == up {
					break
				}
			} else {
				rest := u.meant(u.known, u.length)
				status, h := r.send(http.MethodPatch, u.url, map[string]string{
					"Upload-Offset": itoa(u.known), "Content-Type": "application/offset+octet-stream",
				}, rest, int64(len(rest)))
				r.note("final PATCH #%d offset %d body %d: %d", i, u.known, len(rest), status)
				if status == http.StatusNoContent && h.Get("Upload-Offset") == itoa(u.length) {
					testkit.CheckBytes(r.t, r.e.emu, u.videoID, u.meant(0, u.length))
					break
				}
				if status != http.StatusConflict && status != http.StatusLocked {
					r.fatalf("upload #%d: completing PATCH answered %d, Upload-Offset %q", i, status, h.Get("Upload-Offset"))
				}
			}
			if time.Now().After(deadline) {
				r.fatalf("upload #%d: no agreement with the upstream after 5 s without faults (HEAD %d, upstream %d)",
					i, u.known, up)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Raw requests have no answer to look at: their log lines tell.
	for line := range strings.Lines(r.e.logs.String()) {
		if strings.Contains(line, `"msg":"handler panic"`) ||
			strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"status":500,`) {
			r.fatalf("tusproxy logged: %s", line)
		}
	}
}
