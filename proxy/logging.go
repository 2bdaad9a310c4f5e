package proxy

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// requestInfo gathers what a handler learns about a request (its upload,
// Kinescope's request id, the bytes it moved) for the one log line written
// when the request ends.
type requestInfo struct {
	requestID          string
	uploadID           string
	videoID            string
	kinescopeRequestID string
	errorCode          string
	internal           error    // the text behind an internal_error answer, for the log only
	status             int      // overrides the written status (499 for a vanished client)
	dropped            net.Conn // the connection of a vanished client, closed once logged
	bytesIn            atomic.Int64
}

type requestInfoKey struct{}

func infoFrom(r *http.Request) *requestInfo {
	info, _ := r.Context().Value(requestInfoKey{}).(*requestInfo)
	return info
}

func noteUpload(r *http.Request, uploadID, videoID string) {
	if info := infoFrom(r); info != nil {
		info.uploadID, info.videoID = uploadID, videoID
	}
}

func noteKinescopeRequest(r *http.Request, requestID string) {
	if info := infoFrom(r); info != nil && requestID != "" {
		info.kinescopeRequestID = requestID
	}
}

// statusWriter records the status and size of an answer. It implements
// Unwrap so http.ResponseController still reaches the connection (deadlines,
// flushing).
type statusWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerRequestID names a request in its log lines and its answer.
const headerRequestID = "X-Request-ID"

// requestID is the id of r: the one its sender chose (nginx's $request_id, or
// a client's own, to find its requests in our logs) when it is a token of at
// most 128 letters, digits and . _ : - (the filter of Kinescope's ids), else
// 128 random bits. It is a label for finding log lines, not a fact about the
// client, so it is taken from anyone.
//
// Not chi's middleware.RequestID: that one takes any incoming X-Request-Id as
// it is, of any length up to the header limit and with any bytes, onto every
// log line, does not answer it, and makes ids of the host name and a
// counter, which would tell every client our host name and our request
// rate if answered.
func requestID(r *http.Request) string {
	if id := clientRequestID(r.Header.Get(headerRequestID)); id != "" {
		return id
	}
	return rand.Text()
}

// logRequests writes one structured line per request, and answers the
// request's id as X-Request-ID so a client can quote it. It never logs the
// Kinescope endpoint or any header that could carry credentials.
func (s *Service) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{requestID: requestID(r)}
		w.Header().Set(headerRequestID, info.requestID)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
		defer func() {
			if info.internal != nil {
				s.log.Error("request failed", slog.String("request_id", info.requestID), slog.String("path", r.URL.Path),
					slog.String("error", info.internal.Error()))
			}
			status := statusOf(sw.status, info.status)
			elapsed := time.Since(start)
			s.metrics.request(r.Method, status, elapsed)
			level := slog.LevelInfo
			if status >= 500 && status != statusClientClosed {
				level = slog.LevelWarn
			}
			attrs := []slog.Attr{
				slog.String("request_id", info.requestID),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes_in", info.bytesIn.Load()),
				slog.Int64("bytes_out", sw.written),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.String("client_ip", s.proxies.clientIP(r).String()),
			}
			if info.uploadID != "" {
				attrs = append(attrs, slog.String("upload_id", info.uploadID))
			}
			if info.videoID != "" {
				attrs = append(attrs, slog.String("video_id", info.videoID))
			}
			if info.kinescopeRequestID != "" {
				attrs = append(attrs, slog.String("kinescope_request_id", info.kinescopeRequestID))
			}
			if info.errorCode != "" {
				attrs = append(attrs, slog.String("error", info.errorCode))
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
			if info.dropped != nil {
				_ = info.dropped.Close()
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// recoverPanics turns a handler panic into a 500 without its text, and logs
// the panic and its stack for the operator, with the request's id.
// http.ErrAbortHandler is panicked on: it is how a handler asks net/http to
// cut the connection without an answer.
//
// Not chi's middleware.Recoverer: without chi's own request logger it prints
// the stack to stderr as plain text, not through our slog handler (a JSON
// collector would get dozens of stray lines, no request id), and its 500 has
// an empty body, where every error of ours is answer()'s JSON with a code.
func (s *Service) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				attrs := []any{slog.Any("panic", v), slog.String("stack", string(debug.Stack()))}
				if info := infoFrom(r); info != nil {
					attrs = append(attrs, slog.String("request_id", info.requestID))
				}
				s.log.Error("handler panic", attrs...)
				answer(w, r, errInternal)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
