package kinescope

import (
	"strconv"
	"strings"
	"time"
)

// Kind sorts every failure of Init into a small fixed set, so that callers can
// choose an HTTP status and a metric label without looking at error text.
type Kind int

// The kinds of Init failure. The zero Kind is deliberately not one of them, so
// an Error built by mistake without a Kind shows up as "unknown".
const (
	// KindAuth: Kinescope rejected the API token (401, 403).
	KindAuth Kind = iota + 1
	// KindLimit: the workspace hit a quota or billing limit (402, or error
	// code 100106 LIMIT_REACHED on any status).
	KindLimit
	// KindBadRequest: Kinescope found the request invalid (400), for example
	// an unknown parent_id.
	KindBadRequest
	// KindRateLimited: Kinescope asked us to slow down (429); see RetryAfter.
	KindRateLimited
	// KindUnavailable: Kinescope answered 5xx or could not be reached at all
	// (refused, reset, closed without an answer, DNS, TLS).
	KindUnavailable
	// KindTimeout: no complete answer within the time allowed.
	KindTimeout
	// KindBadResponse: Kinescope answered something this client does not
	// understand: an unexpected status (3xx, 404, 405...) or a success body
	// without an id and an endpoint.
	KindBadResponse
	// KindCanceled: the caller's context was canceled before an answer came.
	KindCanceled
)

// String returns a stable lowercase name, fit for a metric label or a log
// field. The names never change once published.
func (k Kind) String() string {
	switch k {
	case KindAuth:
		return "auth"
	case KindLimit:
		return "limit"
	case KindBadRequest:
		return "bad_request"
	case KindRateLimited:
		return "rate_limited"
	case KindUnavailable:
		return "unavailable"
	case KindTimeout:
		return "timeout"
	case KindBadResponse:
		return "bad_response"
	case KindCanceled:
		return "canceled"
	}
	return "unknown"
}

// describe is the human wording used in Error().
func (k Kind) describe() string {
	switch k {
	case KindAuth:
		return "credentials rejected"
	case KindLimit:
		return "limit reached"
	case KindBadRequest:
		return "request rejected as invalid"
	case KindRateLimited:
		return "rate limited"
	case KindUnavailable:
		return "service unavailable"
	case KindTimeout:
		return "timed out"
	case KindBadResponse:
		return "unexpected answer"
	case KindCanceled:
		return "canceled by caller"
	}
	return "failed"
}

// Error is every failure returned by Client.Init. Its text is safe to log: it
// never carries the API token, the init URL or an upload endpoint.
type Error struct {
	// Kind says what went wrong, coarsely.
	Kind Kind
	// Status is Kinescope's HTTP status, 0 when no answer came.
	Status int
	// Code is Kinescope's numeric error code (error.code), 0 when absent.
	Code int
	// Message is Kinescope's own error.message, followed by error.detail when
	// there is one, sanitized: invalid UTF-8 and control characters removed,
	// the API token redacted, trimmed, at most 300 bytes cut on a rune
	// boundary. "" when Kinescope gave none. It is for logs only: whoever
	// answers at the init URL writes it, so it is never shown to clients.
	Message string
	// RequestID is Kinescope's X-Request-ID (sanitized the same way, at most
	// 128 bytes): quote it when asking Kinescope's support.
	RequestID string
	// RetryAfter is the parsed Retry-After header (delta-seconds or HTTP
	// date), 0 when absent, unparseable or already past.
	RetryAfter time.Duration

	// reason narrows a network failure ("connection refused"...) without
	// repeating the underlying error text, which would name the init URL.
	reason string
	// cause is the underlying error for errors.Is/As. It is never a
	// *url.Error, whose text holds the init URL.
	cause error
}

// Error formats the failure as
// "kinescope init: credentials rejected (status 401, code 100102, request id abc): message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kinescope init: ")
	b.WriteString(e.Kind.describe())
	details := make([]string, 0, 5)
	if e.reason != "" {
		details = append(details, e.reason)
	}
	if e.Status != 0 {
		details = append(details, "status "+strconv.Itoa(e.Status))
	}
	if e.Code != 0 {
		details = append(details, "code "+strconv.Itoa(e.Code))
	}
	if e.RequestID != "" {
		details = append(details, "request id "+e.RequestID)
	}
	if e.RetryAfter > 0 {
		details = append(details, "retry after "+e.RetryAfter.String())
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, ", "))
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap gives errors.Is access to the underlying cause, such as
// context.Canceled or syscall.ECONNREFUSED.
func (e *Error) Unwrap() error { return e.cause }
