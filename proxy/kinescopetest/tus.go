package kinescopetest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
)

const (
	// tusVersion is the only tus version tusd (and Kinescope) speak.
	tusVersion = "1.0.0"
	// injectedFailureCode is the tusd-style error code of Faults.FailEvery.
	injectedFailureCode = "ERR_INJECTED_FAILURE"
)

var (
	errCreationRefused = handler.NewError("ERR_CREATION_REFUSED",
		"uploads are created by POST /v2/init, not by tus creation", http.StatusMethodNotAllowed)
	// errPatchCut is what the body of a cut PATCH returns to tusd. tusd keeps
	// it to itself (the store only sees the body end), and its answer is never
	// sent.
	errPatchCut = handler.NewError("ERR_CONNECTION_CUT", "connection cut by kinescopetest", http.StatusInternalServerError)
)

// handleTus is /v2/upload/{uploadID}: tusd's handler, with the faults around it.
func (e *Emulator) handleTus(w http.ResponseWriter, r *http.Request) {
	method := e.countTus(r)
	ctx := r.Context()
	plan := e.planTus(method)
	uploadID := strings.Trim(strings.TrimPrefix(r.URL.Path, uploadPath), "/")
	tw := &tusResponseWriter{
		ResponseWriter: w,
		ctx:            ctx,
		latency:        plan.latency,
		wrongOffset:    plan.wrongOffset && method == http.MethodPatch,
	}
	requestID := slog.String("request_id", w.Header().Get("X-Request-ID"))
	// Logs name videos, never uploads: an upload id is the secret part of an
	// endpoint.
	e.mu.Lock()
	video := e.byUpload[uploadID]
	e.mu.Unlock()
	videoID := slog.String("video_id", "")
	if video != nil {
		videoID = slog.String("video_id", video.ID)
	}

	if plan.failStatus != 0 {
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: tus request failed (fault)", requestID, videoID,
			slog.String("method", method), slog.Int("status", plan.failStatus))
		writeTusError(tw, r, handler.NewError(injectedFailureCode, "failure injected by kinescopetest", plan.failStatus))
		return
	}
	// tusd checks Tus-Resumable before routing; so do the emulator's own
	// refusals, to answer what tusd would.
	if versionChecked(method) && r.Header.Get("Tus-Resumable") != tusVersion {
		e.tus.ServeHTTP(tw, r)
		return
	}
	if method == http.MethodPost {
		tw.Header().Set("Allow", "HEAD, PATCH, DELETE, OPTIONS")
		writeTusError(tw, r, errCreationRefused)
		return
	}
	if uploadID != "" && method != http.MethodOptions && !isUUID(uploadID) {
		writeTusError(tw, r, handler.ErrNotFound)
		return
	}

	if video != nil {
		defer e.turns.wait(ctx, uploadID)()
		// Before a DELETE, so that the record keeps the last offset.
		e.observe(uploadID, false)
	}

	if !e.serveTus(w, tw, r, plan.cutAfter, uploadID, video != nil, requestID, videoID) {
		return // cut: the client sees the connection go
	}
	if video != nil {
		e.observe(uploadID, method == http.MethodDelete && tw.status == http.StatusNoContent)
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "kinescopetest: tus request", requestID, videoID,
		slog.String("method", method), slog.Int("status", tw.status))
}

// countTus counts a tus request by the method tusd will act on, which it
// returns: tusd honours X-HTTP-Method-Override on POST only.
func (e *Emulator) countTus(r *http.Request) string {
	method := r.Method
	if override := r.Header.Get("X-HTTP-Method-Override"); method == http.MethodPost && override != "" {
		method = override
	}
	switch method {
	case http.MethodHead:
		e.headCount.Add(1)
	case http.MethodPatch:
		e.patchCount.Add(1)
	case http.MethodDelete:
		e.deleteCount.Add(1)
	}
	return method
}

// serveTus hands the request to tusd; with cutAfter >= 0, its body is cut
// after that many bytes and the connection dropped once tusd has stored
// them, which it reports as false.
func (e *Emulator) serveTus(w http.ResponseWriter, tw *tusResponseWriter, r *http.Request, cutAfter int64,
	uploadID string, known bool, requestID, videoID slog.Attr) bool {
	if cutAfter < 0 {
		e.tus.ServeHTTP(tw, r)
		return true
	}
	ctx := r.Context()
	body := &cutBody{ReadCloser: r.Body, remaining: cutAfter}
	cutRequest := r.WithContext(ctx) // a shallow copy whose Body may change
	cutRequest.Body = body
	held := &heldResponse{dst: tw, header: make(http.Header)}
	e.tus.ServeHTTP(held, cutRequest)
	if body.tripped.Load() {
		// tusd has returned: the bytes before the cut are in the store
		// before the client can see the connection go.
		if known {
			e.observe(uploadID, false)
		}
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: PATCH cut (fault)", requestID, videoID,
			slog.Int64("kept_bytes", cutAfter))
		abortConnection(w)
		return false
	}
	held.replay()
	return true
}

// versionChecked reports whether tusd requires Tus-Resumable for method.
func versionChecked(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// writeTusError answers err the way tusd answers its own errors, so that the
// emulator's refusals look like the tus server's.
func writeTusError(w http.ResponseWriter, r *http.Request, err handler.Error) {
	h := w.Header()
	h.Set("Tus-Resumable", tusVersion)
	h.Set("X-Content-Type-Options", "nosniff")
	if origin := r.Header.Get("Origin"); origin != "" {
		// tusd's default CORS policy, so that a browser reads these refusals
		// as it reads tusd's own.
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", handler.DefaultCorsConfig.ExposeHeaders)
	}
	for key, value := range err.HTTPResponse.Header {
		h.Set(key, value)
	}
	body := err.HTTPResponse.Body
	if r.Method == http.MethodHead {
		body = ""
	}
	if body != "" {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(err.HTTPResponse.StatusCode)
	_, _ = io.WriteString(w, body)
}

// tusResponseWriter adds Faults.Latency and Faults.WrongOffset to tus answers
// and remembers the status.
type tusResponseWriter struct {
	http.ResponseWriter
	ctx         context.Context
	latency     time.Duration
	wrongOffset bool
	status      int
}

func (w *tusResponseWriter) WriteHeader(status int) {
	if w.status != 0 || status < 200 {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.status = status
	if w.wrongOffset && status < 300 {
		if offset, err := strconv.ParseInt(w.Header().Get("Upload-Offset"), 10, 64); err == nil {
			w.Header().Set("Upload-Offset", strconv.FormatInt(offset+1, 10))
		}
	}
	sleepCtx(w.ctx, w.latency)
	w.ResponseWriter.WriteHeader(status)
}

func (w *tusResponseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (tusd sets read
// and write deadlines through it).
func (w *tusResponseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// cutBody passes the first remaining bytes of a request body through and then
// fails, which is where a cut PATCH loses its connection.
type cutBody struct {
	io.ReadCloser
	remaining int64
	tripped   atomic.Bool // read by the handler after tusd's reads are over
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		// Only a read at the limit trips the cut: a body that ends before it
		// ends cleanly (EOF comes first) and its PATCH is answered.
		if len(p) == 0 {
			return 0, nil
		}
		b.tripped.Store(true)
		return 0, errPatchCut
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.ReadCloser.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 && err == io.EOF {
		// net/http hands the last bytes of a body over together with EOF.
		// Hold the EOF back so that the next read trips the cut: a body of
		// exactly CutPatchAfter bytes is stored whole and its answer lost.
		err = nil
	}
	return n, err
}

// maxHeldBody bounds what heldResponse keeps of an answer: tusd's answers to
// PATCH are a few dozen bytes of error text at most.
const maxHeldBody = 64 << 10

// heldResponse holds tusd's answer to a PATCH that may be cut, so that nothing
// reaches the client before the emulator knows whether the connection is to
// be closed instead.
type heldResponse struct {
	dst    http.ResponseWriter
	header http.Header
	status int
	body   []byte
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 && status >= 200 {
		h.status = status
	}
}

func (h *heldResponse) Write(p []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if room := maxHeldBody - len(h.body); room > 0 {
		h.body = append(h.body, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

// Flush keeps an early flush from sending the held answer.
func (h *heldResponse) Flush() {}

// Unwrap lets http.ResponseController set deadlines on the connection.
func (h *heldResponse) Unwrap() http.ResponseWriter { return h.dst }

// replay sends the held answer.
func (h *heldResponse) replay() {
	dst := h.dst.Header()
	for key, values := range h.header {
		dst[key] = values
	}
	status := h.status
	if status == 0 {
		status = http.StatusOK
	}
	h.dst.WriteHeader(status)
	if len(h.body) > 0 {
		_, _ = h.dst.Write(h.body)
	}
}
