package upload

import (
	"errors"
	"fmt"
	"time"
)

// The lifecycle's failures. They say what happened to the upload, never how
// to answer it: the HTTP adapter maps each to a tus answer in one place.
// errors.Is and errors.As work on all of them.
var (
	// ErrNotFound: no such upload (or the caller may not know of it).
	ErrNotFound = errors.New("upload not found")
	// ErrGone: the upstream answered 410 for the upload; its record is dropped.
	ErrGone = errors.New("the upstream no longer has this upload")
	// ErrExpired: the upload was idle longer than the upload TTL.
	ErrExpired = errors.New("upload expired")
	// ErrStoreUnavailable: the state store (or the lock service next to it)
	// failed; nothing was changed and the caller may retry.
	ErrStoreUnavailable = errors.New("the state store is unavailable")
	// ErrClientGone: the caller's context was canceled (the client left)
	// before the operation could finish.
	ErrClientGone = errors.New("the client went away")
	// ErrSuperseded: another request took the upload over after this write
	// arrived and before it had the lock (a HEAD answered meanwhile); the
	// write moved nothing.
	ErrSuperseded = errors.New("a later request took the upload over")
)

// LockedError: another request holds the upload and did not let go in time.
type LockedError struct {
	RetryAfter time.Duration
}

func (e *LockedError) Error() string { return "another request is using this upload" }

// OffsetMismatchError: a write started at Got while the upload is at Have.
type OffsetMismatchError struct {
	Have, Got int64
}

func (e *OffsetMismatchError) Error() string {
	return fmt.Sprintf("write at offset %d, but the upload is at %d", e.Got, e.Have)
}

// BodyTooLargeError: a body longer than what remains of the upload.
// Size is -1 when the body's length was not announced (it went on past the
// end).
type BodyTooLargeError struct {
	Size, Remaining int64
}

func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("the body has %d bytes but only %d remain of the upload", e.Size, e.Remaining)
}

// UpstreamKind sorts an upstream failure into what the caller can do about it.
type UpstreamKind int

const (
	// KindFailed: the upstream failed, cut the connection, redirected or
	// answered something unusable during a HEAD, PATCH or DELETE.
	KindFailed UpstreamKind = iota + 1
	// KindConflict: the upstream holds another offset than the one written at.
	KindConflict
	// KindTimeout: no answer in time.
	KindTimeout
	// KindCredentials: Kinescope refused the API token.
	KindCredentials
	// KindRefused: Kinescope refused the upload (a quota or billing limit).
	KindRefused
	// KindBadRequest: Kinescope found the init request invalid.
	KindBadRequest
	// KindBusy: Kinescope asked to slow down or is unavailable; see RetryAfter.
	KindBusy
	// KindBadResponse: Kinescope answered something tusproxy cannot use.
	KindBadResponse
	// KindEndpointRefused: Kinescope issued an upload endpoint outside the
	// allowlist.
	KindEndpointRefused
)

// UpstreamError is a failure of the upstream (Kinescope's init or the
// upload's tus endpoint). It never carries the endpoint or the upstream's
// own text: Cause is for logs only.
type UpstreamError struct {
	Op         string // init, head, patch, delete
	Kind       UpstreamKind
	RetryAfter time.Duration // what the upstream asked for, 0 if nothing
	RequestID  string        // Kinescope's request id, when it gave one (init)
	Cause      error
}

func (e *UpstreamError) Error() string {
	if e.Cause != nil {
		return "upstream " + e.Op + " failed: " + e.Cause.Error()
	}
	return "upstream " + e.Op + " failed"
}

func (e *UpstreamError) Unwrap() error { return e.Cause }
