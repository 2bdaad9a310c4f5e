package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// Error is an error answered to a client: an HTTP status, a stable code that
// clients and logs can match on, and a message written for people. Its text
// never carries upstream URLs or the API token.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // sent as Retry-After when > 0
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// withMessage returns a copy of e with another message, keeping status and code.
func (e *Error) withMessage(message string) *Error {
	c := *e
	c.Message = message
	return &c
}

// statusClientClosed is logged when the client went away before an answer
// (nginx's 499); it is never seen by a client.
const statusClientClosed = 499

// Every error the service answers with, in one place.
var (
	errUnsupportedVersion = newError(http.StatusPreconditionFailed, "unsupported_version", "Tus-Resumable must be 1.0.0")
	errUploadNotFound     = newError(http.StatusNotFound, "upload_not_found", "upload not found")
	errUploadExpired      = newError(http.StatusGone, "upload_expired", "upload expired")
	errUploadGone         = newError(http.StatusGone, "upload_gone", "the upstream no longer has this upload")
	errConcatUnsupported  = newError(http.StatusBadRequest, "concatenation_unsupported",
		"concatenation (Upload-Concat) is not supported: upload each file as one upload (tus-js-client: parallelUploads 1)")
	errDeferUnsupported = newError(http.StatusBadRequest, "defer_length_unsupported",
		"Upload-Defer-Length is not supported: Kinescope needs the size up front, send Upload-Length")
	errLengthMissing    = newError(http.StatusBadRequest, "upload_length_missing", "Upload-Length header is required")
	errLengthInvalid    = newError(http.StatusBadRequest, "upload_length_invalid", "Upload-Length must be a positive integer")
	errTooLarge         = newError(http.StatusRequestEntityTooLarge, "upload_too_large", "Upload-Length exceeds the maximum upload size")
	errMetadataInvalid  = newError(http.StatusBadRequest, "metadata_invalid", "Upload-Metadata is malformed")
	errMetadataTooLarge = newError(http.StatusRequestEntityTooLarge, "metadata_too_large", "Upload-Metadata is too large")
	errContentType      = newError(http.StatusUnsupportedMediaType, "content_type_invalid", "Content-Type must be application/offset+octet-stream")
	errOffsetInvalid    = newError(http.StatusBadRequest, "upload_offset_invalid", "Upload-Offset must be a non-negative integer")
	errOffsetMismatch   = newError(http.StatusConflict, "upload_offset_mismatch", "Upload-Offset does not match the upload's offset")
	errBodyTooLarge     = newError(http.StatusRequestEntityTooLarge, "body_too_large", "the body is longer than what remains of the upload")
	errMethodOverride   = newError(http.StatusBadRequest, "method_override_invalid", "X-HTTP-Method-Override must be PATCH or DELETE")
	errMethodNotAllowed = newError(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	errNotFound         = newError(http.StatusNotFound, "not_found", "not found")
	errOriginForbidden  = newError(http.StatusForbidden, "origin_not_allowed", "this Origin is not allowed to use tusproxy")
	errLocked           = newError(http.StatusLocked, "upload_locked", "another request is using this upload; retry shortly")
	errInterrupted      = newError(http.StatusLocked, "upload_interrupted", "this request was stopped because a newer request took over the upload")
	errShuttingDown     = &Error{http.StatusServiceUnavailable, "shutting_down", "tusproxy is restarting; retry shortly", defaultRetryAfter}
	errClientGone       = newError(statusClientClosed, "client_closed", "the client closed the connection")
	errBadRequestBody   = newError(http.StatusBadRequest, "request_invalid", "the request body is not valid JSON")

	errUpstreamCredentials = newError(http.StatusBadGateway, "upstream_credentials_rejected",
		"the upstream rejected this server's credentials; the operator must check the Kinescope API token")
	errUpstreamLimit      = newError(http.StatusForbidden, "upstream_limit", "Kinescope refused the upload")
	errUpstreamBadRequest = newError(http.StatusBadRequest, "upstream_bad_request", "Kinescope rejected the upload")
	errUpstreamBusy       = &Error{http.StatusServiceUnavailable, "upstream_unavailable", "Kinescope is unavailable; retry later", defaultRetryAfter}
	errUpstreamTimeout    = &Error{http.StatusGatewayTimeout, "upstream_timeout", "Kinescope did not answer in time; retry later", defaultRetryAfter}
	errUpstreamBadAnswer  = newError(http.StatusBadGateway, "upstream_bad_response", "Kinescope answered with something tusproxy cannot use")
	errUpstreamEndpoint   = newError(http.StatusBadGateway, "upstream_endpoint_refused",
		"Kinescope issued an upload endpoint that this server is not allowed to use")
	errUpstreamConflict = newError(http.StatusConflict, "upstream_offset_conflict",
		"the upstream holds a different offset; send HEAD and resume from its Upload-Offset")
	errUpstreamFailed = newError(http.StatusBadGateway, "upstream_failed", "the upload to Kinescope failed; send HEAD and resume")

	errAuthRequired    = newError(http.StatusUnauthorized, "auth_required", "a valid Bearer token is required")
	errAuthUnavailable = &Error{http.StatusServiceUnavailable, "auth_unavailable", "the auth hook is unavailable; retry later", defaultRetryAfter}
	// errAuthHookBadAnswer is a hook that allowed a creation with an answer
	// tusproxy may not use (a context that is too large or not an object):
	// the operator's bug, not the client's, and retrying cannot fix it, so
	// a 502 (a bad answer from the server tusproxy asked) without Retry-After.
	errAuthHookBadAnswer = newError(http.StatusBadGateway, "auth_hook_bad_answer",
		"the auth hook allowed this upload with an answer tusproxy cannot use; the operator must fix the hook")
	errCreateRate     = newError(http.StatusTooManyRequests, "rate_limited", "too many uploads started from this address; retry later")
	errTooManyPatches = &Error{http.StatusTooManyRequests, "too_many_patches", "too many uploads in progress from this address; retry later", time.Second}
	errBusy           = &Error{http.StatusServiceUnavailable, "busy", "tusproxy has too many uploads in progress; retry later", defaultRetryAfter}
	errClientStalled  = newError(http.StatusRequestTimeout, "client_stalled", "no body bytes arrived for too long; send HEAD and resume")
	errClientTooSlow  = newError(http.StatusRequestTimeout, "client_too_slow",
		"the body arrived slower than this server's minimum rate; send HEAD and resume from its Upload-Offset")
	errBodyTimeout  = newError(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time")
	errSeedTooLarge = newError(http.StatusRequestEntityTooLarge, "request_too_large",
		"the JSON body is larger than 8 KiB; send only filename, filesize, title and description")

	errStateUnavailable = &Error{http.StatusServiceUnavailable, "state_unavailable", "tusproxy cannot reach its state store; retry shortly", 2 * time.Second}
	errInternal         = newError(http.StatusInternalServerError, "internal_error", "internal error")
)

// defaultRetryAfter is what 503 and 504 answers advise when the upstream gave
// no Retry-After of its own.
const defaultRetryAfter = 5 * time.Second

// answer writes err as a tus answer: the one place an error becomes a status,
// a code, a message and headers. Domain errors (package upload) are mapped
// by toAnswer; an error that is neither one of them nor an *Error is an
// internal failure, answered as a generic 500 whose body carries none of
// its text (the request's log line does).
//
// A client that went away gets nothing: its request is logged and counted
// as 499 and its connection is closed, the same whichever step noticed.
func answer(w http.ResponseWriter, r *http.Request, err error) {
	e := toAnswer(err)
	info := infoFrom(r)
	if info != nil {
		info.errorCode = e.Code
		if e == errInternal && err != errInternal {
			info.internal = err
		}
	}
	if e.Status == statusClientClosed {
		dropConnection(w, info)
		return
	}
	if r.Method == http.MethodHead && e.Status >= 500 {
		// tus-js-client answers a 5xx to HEAD by creating a brand-new upload
		// (a second Kinescope video); 423 makes it wait and HEAD again.
		c := *e
		c.Status, c.RetryAfter = http.StatusLocked, max(e.RetryAfter, time.Second)
		e = &c
	}
	h := w.Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="tusproxy"`)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = e.Code, e.Message
	_ = json.NewEncoder(w).Encode(body)
}

// dropConnection ends the answer to a client that went away (or half-closed
// mid-body) without sending anything: returning would make net/http send
// an implicit 200 for a PATCH that did not finish. Over HTTP/1 the
// connection is taken over, and closed once the request is logged (by
// logRequests; at once outside it); where that is not possible (HTTP/2)
// the stream gets a bare 499, which no client is there to read.
func dropConnection(w http.ResponseWriter, info *requestInfo) {
	if info != nil {
		info.status = statusClientClosed
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	switch {
	case err != nil:
		w.WriteHeader(statusClientClosed)
	case info != nil:
		info.dropped = conn
	default:
		_ = conn.Close()
	}
}

// toAnswer maps an error to the answer for the client.
func toAnswer(err error) *Error {
	var (
		e        *Error
		locked   *upload.LockedError
		mismatch *upload.OffsetMismatchError
		tooLarge *upload.BodyTooLargeError
		upstream *upload.UpstreamError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, upload.ErrClientGone):
		return errClientGone
	case errors.Is(err, upload.ErrNotFound):
		return errUploadNotFound
	case errors.Is(err, upload.ErrGone):
		return errUploadGone
	case errors.Is(err, upload.ErrExpired):
		return errUploadExpired
	case errors.Is(err, upload.ErrSuperseded):
		return errInterrupted
	case errors.Is(err, upload.ErrStoreUnavailable):
		return errStateUnavailable
	case errors.As(err, &locked):
		c := *errLocked
		c.RetryAfter = locked.RetryAfter
		return &c
	case errors.As(err, &mismatch):
		return errOffsetMismatch.withMessage(fmt.Sprintf(
			"Upload-Offset is %d but the upload is at %d; send HEAD and resume from its Upload-Offset", mismatch.Got, mismatch.Have))
	case errors.As(err, &tooLarge):
		if tooLarge.Size < 0 {
			return errBodyTooLarge
		}
		return errBodyTooLarge.withMessage(err.Error())
	case errors.As(err, &upstream):
		return upstreamAnswer(upstream)
	}
	return errInternal
}

// upstreamAnswer is the answer for an upstream failure. For Kinescope's init
// it quotes Kinescope's request id when it gave one, so that the client can
// quote it to support; Kinescope's own text is never shown.
func upstreamAnswer(u *upload.UpstreamError) *Error {
	withID := func(e *Error) *Error {
		if id := clientRequestID(u.RequestID); id != "" {
			return e.withMessage(e.Message + " (Kinescope request id " + id + ")")
		}
		return e
	}
	wait := func(e *Error) *Error {
		c := *withID(e)
		c.RetryAfter = max(u.RetryAfter, defaultRetryAfter)
		return &c
	}
	switch u.Kind {
	case upload.KindCredentials:
		return withID(errUpstreamCredentials)
	case upload.KindRefused:
		return withID(errUpstreamLimit)
	case upload.KindBadRequest:
		return withID(errUpstreamBadRequest)
	case upload.KindBusy:
		return wait(errUpstreamBusy)
	case upload.KindTimeout:
		if u.Op == "init" {
			return wait(errUpstreamTimeout)
		}
		return errUpstreamTimeout
	case upload.KindBadResponse:
		return withID(errUpstreamBadAnswer)
	case upload.KindEndpointRefused:
		return errUpstreamEndpoint
	case upload.KindConflict:
		return errUpstreamConflict
	}
	if u.Op == "delete" {
		return errUpstreamFailed.withMessage("the upstream could not delete the upload; retry")
	}
	return errUpstreamFailed
}

// maxClientRequestID bounds the request id quoted to clients.
const maxClientRequestID = 128

// clientRequestID returns Kinescope's request id if it looks like one (a
// token of letters, digits and . _ : -), else "": the header is upstream
// text too, and only an id is worth passing on.
func clientRequestID(id string) string {
	if id == "" || len(id) > maxClientRequestID {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return ""
		}
	}
	return id
}
