package tusproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/kinescope-tools/tusproxy/internal/netfail"
)

// Client talks tus 1.0.0 to one upstream upload URL at a time: the endpoint
// Kinescope's /v2/init hands out. It only resumes and terminates uploads;
// creating them is Kinescope's business.
//
// Endpoint URLs are capabilities (whoever holds one can write to the video),
// so no error this client returns mentions them.
type Client struct {
	// HTTP sends the requests. Required. Its Transport should carry dial,
	// TLS-handshake and response-header timeouts; its Timeout should be 0,
	// since a PATCH may stream for hours: bound each call with its ctx.
	// Redirects are never followed whatever its CheckRedirect says: a 3xx is
	// reported as KindBadResponse (see do).
	HTTP *http.Client
	// Conns, when set, carries the PATCHes instead of HTTP: over HTTP/1.1
	// connections of its own, on the caller's goroutine, which keeps what
	// an upload streaming costs to its buffer (see Conns). HTTP still
	// carries HEAD and DELETE.
	Conns *Conns
	// UserAgent, when not empty, is sent as User-Agent.
	UserAgent string
}

// UploadState is what the upstream reports about an upload in a HEAD answer.
type UploadState struct {
	// Offset is the number of bytes the upstream holds.
	Offset int64
	// Length is the total size of the upload, or -1 when the answer has no
	// Upload-Length (creation-defer-length).
	Length int64
}

// maxDrain bounds how much of a response body is read before closing it.
// Reading the body to its end lets the transport reuse the connection; tus
// answers carry at most a short error text, and anything longer is not worth
// reading just to save a TCP handshake.
const maxDrain = 64 << 10

// Head asks the upstream how much of the upload at endpoint it holds
// (tus 1.0.0, "HEAD"). It succeeds on 200 (204 also accepted) with a valid
// Upload-Offset and, when present, a valid Upload-Length no smaller than the
// offset. Failures are *Error, except a nil HTTP client or an endpoint that
// is not a URL.
func (c *Client) Head(ctx context.Context, endpoint string) (UploadState, error) {
	const op = "head"
	req, err := c.newRequest(ctx, http.MethodHead, endpoint, nil)
	if err != nil {
		return UploadState{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return UploadState{}, requestError(ctx, op, endpoint, err)
	}
	defer drainAndClose(resp)

	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return UploadState{}, statusError(op, resp)
	}
	offset, err := ParseSize(resp.Header.Get(HeaderUploadOffset))
	if err != nil {
		return UploadState{}, badResponse(op, resp, -1, badOffsetReason(resp.Header, err))
	}
	state := UploadState{Offset: offset, Length: -1}
	if lengthValue := resp.Header.Get(HeaderUploadLength); lengthValue != "" {
		length, err := ParseSize(lengthValue)
		if err != nil {
			return UploadState{}, badResponse(op, resp, offset, "Upload-Length is "+err.Error())
		}
		if offset > length {
			return UploadState{}, badResponse(op, resp, offset,
				fmt.Sprintf("Upload-Offset %d is beyond Upload-Length %d", offset, length))
		}
		state.Length = length
	}
	return state, nil
}

// Patch sends body to the upload at endpoint, starting at offset
// (tus 1.0.0, "PATCH"), and returns the upstream's new offset.
//
// When size >= 0, exactly size bytes of body are sent with a Content-Length;
// body is not read past them, so one client body can feed several PATCHes.
// When size < 0, body is sent to its end with chunked encoding.
//
// Patch succeeds only on 204 (200 also accepted) whose Upload-Offset equals
// offset plus the bytes read from body. On any failure the upstream may hold
// some of the bytes or none: ask with Head. Failures are *Error; a failure of
// body itself (a read error, or fewer than size bytes) is KindBody and
// unwraps to the reader's error (io.ErrUnexpectedEOF for a short body). Plain
// errors are returned for a negative offset, a nil HTTP client or an endpoint
// that is not a URL.
//
// With Conns, body is read on the caller's goroutine; without, the HTTP
// transport reads it on its own. Either way Patch does not return while a
// read is in progress, so body is never touched once Patch has returned; a
// body whose Read can block forever must therefore be unblocked by its
// owner (a read deadline, or closing it when ctx ends).
func (c *Client) Patch(ctx context.Context, endpoint string, offset int64, body io.Reader, size int64) (newOffset int64, err error) {
	const op = "patch"
	if offset < 0 {
		return 0, errors.New("tusproto: negative upload offset")
	}
	if body == nil {
		body = strings.NewReader("")
	}

	var source *bodySource
	var requestBody io.Reader = http.NoBody
	if size != 0 {
		source = &bodySource{source: body, remaining: max(size, -1)}
		requestBody = source
	}
	req, err := c.newRequest(ctx, http.MethodPatch, endpoint, requestBody)
	if err != nil {
		return 0, err
	}
	// -1 makes the transport use chunked encoding; NewRequest could not know
	// either length because bodySource is not a type it recognises.
	req.ContentLength = max(size, -1)
	req.Header.Set("Content-Type", ContentTypeOffsetStream)
	req.Header.Set(HeaderUploadOffset, FormatSize(offset))

	var resp *http.Response
	var doErr error
	if c.Conns != nil {
		var x *exchange
		x, doErr = c.Conns.patch(ctx, req.URL, req.Header, requestBody, size)
		if x != nil {
			resp = x.resp
			defer x.finish()
		}
	} else {
		resp, doErr = c.do(req)
		if resp != nil {
			defer drainAndClose(resp)
		}
	}
	var bytesRead int64
	var sourceErr error
	if source != nil {
		// After this, the transport can no longer reach body.
		bytesRead, sourceErr = source.detach()
	}

	if sourceErr != nil {
		// The source failing explains whatever the upstream did next, so it
		// takes precedence over a transport error or an upstream answer.
		e := &Error{Op: op, Kind: KindBody, Offset: -1, cause: sourceErr,
			detail: "reading the upload body: " + sourceErr.Error()}
		if resp != nil {
			e.Status = resp.StatusCode
			e.Offset = answeredOffset(resp.Header)
		}
		return 0, e
	}
	if doErr != nil {
		return 0, requestError(ctx, op, endpoint, doErr)
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return 0, statusError(op, resp)
	}
	newOffset, err = ParseSize(resp.Header.Get(HeaderUploadOffset))
	if err != nil {
		return 0, badResponse(op, resp, -1, badOffsetReason(resp.Header, err))
	}
	if expected := offset + bytesRead; newOffset != expected {
		return 0, badResponse(op, resp, newOffset,
			fmt.Sprintf("Upload-Offset %d does not match the %d expected after sending %d bytes at %d",
				newOffset, expected, bytesRead, offset))
	}
	return newOffset, nil
}

// Delete terminates the upload at endpoint (tus termination extension). It
// succeeds on 204 (200 also accepted). Kinescope does not document DELETE, so
// callers should expect 404 and 405 too (Error.Status tells).
func (c *Client) Delete(ctx context.Context, endpoint string) error {
	const op = "delete"
	req, err := c.newRequest(ctx, http.MethodDelete, endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return requestError(ctx, op, endpoint, err)
	}
	defer drainAndClose(resp)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return statusError(op, resp)
	}
	return nil
}

// do sends req without following a redirect. The endpoint was checked
// against the operator's allowlist; a Location header was not, so following
// it would send the request (a DELETE, the endpoint as Referer, a PATCH
// turned into a GET) to any host the upstream names: server-side request
// forgery. The 3xx itself comes back and is reported as a bad response.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	client := *c.HTTP
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return client.Do(req)
}

func (c *Client) newRequest(ctx context.Context, method, endpoint string, body io.Reader) (*http.Request, error) {
	if c.HTTP == nil {
		return nil, errors.New("tusproto: Client.HTTP is nil")
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		// The parse error would quote the endpoint.
		return nil, errors.New("tusproto: upstream endpoint is not a valid URL")
	}
	req.Header.Set(HeaderTusResumable, Version)
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	return req, nil
}

func drainAndClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
}

// ErrorKind says which side of an upstream call failed and how; it decides
// the status tusproxy answers with and whether a retry can help.
type ErrorKind int

// The kinds of Error. The zero ErrorKind is not one of them.
const (
	// KindStatus: the upstream answered with a status the operation does not
	// expect (404, 409, 410, 5xx...). Error.Status holds it. A 3xx is
	// KindBadResponse instead: redirects are never followed.
	KindStatus ErrorKind = iota + 1
	// KindBadResponse: the upstream answered with a redirect (3xx, not
	// followed), or with a success status but a missing, malformed or
	// unexpected Upload-Offset or Upload-Length.
	KindBadResponse
	// KindTimeout: the call's context deadline passed, or a network or
	// transport timeout fired.
	KindTimeout
	// KindNetwork: no usable answer arrived: connection refused or reset,
	// closed early, DNS or TLS failure, a malformed response.
	KindNetwork
	// KindCanceled: the call's context was canceled.
	KindCanceled
	// KindBody: reading the request body failed; the upstream is not at
	// fault. Error unwraps to the reader's error.
	KindBody
)

// String returns a short lower-case name, fit for a metric label.
func (k ErrorKind) String() string {
	switch k {
	case KindStatus:
		return "status"
	case KindBadResponse:
		return "bad_response"
	case KindTimeout:
		return "timeout"
	case KindNetwork:
		return "network"
	case KindCanceled:
		return "canceled"
	case KindBody:
		return "body"
	}
	return "unknown"
}

// Error is the failure of a Client call. Its message never holds the
// endpoint URL, so it can be logged and, with care, shown.
type Error struct {
	// Op is the operation: "head", "patch" or "delete".
	Op string
	// Kind classifies the failure.
	Kind ErrorKind
	// Status is the upstream's HTTP status, 0 when no response arrived.
	Status int
	// Offset is the Upload-Offset the upstream answered with, -1 when none
	// (or when it was not a number).
	Offset int64

	cause  error
	detail string
}

// Error returns a message such as "upstream patch: unexpected status 409 Conflict".
func (e *Error) Error() string {
	detail := e.detail
	if detail == "" {
		detail = e.defaultDetail()
	}
	return "upstream " + e.Op + ": " + detail
}

func (e *Error) defaultDetail() string {
	switch e.Kind {
	case KindStatus:
		return strings.TrimSpace(fmt.Sprintf("unexpected status %d %s", e.Status, http.StatusText(e.Status)))
	case KindBadResponse:
		return "malformed response"
	case KindTimeout:
		return "timed out"
	case KindCanceled:
		return "canceled"
	case KindNetwork:
		return "network error"
	case KindBody:
		return "reading the upload body failed"
	}
	return "failed"
}

// Unwrap returns the underlying error: the body reader's error for KindBody,
// the context's or the network's error for KindCanceled, KindTimeout and
// KindNetwork (never a *url.Error, which would quote the endpoint), and nil
// or a parse error otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Gone reports whether the upstream no longer knows the upload (404 or 410):
// resuming is pointless, the upload must start over.
func (e *Error) Gone() bool {
	return e.Status == http.StatusNotFound || e.Status == http.StatusGone
}

// Temporary reports whether the same call may succeed later: timeouts,
// network failures, 5xx, 423 Locked and 429 Too Many Requests. These are the
// failures tus-js-client retries as well, except 409, which means the caller
// must re-synchronise its offset with Head first.
func (e *Error) Temporary() bool {
	switch e.Kind {
	case KindTimeout, KindNetwork:
		return true
	case KindStatus:
		return e.Status >= 500 || e.Status == http.StatusLocked || e.Status == http.StatusTooManyRequests
	}
	return false
}

func statusError(op string, resp *http.Response) *Error {
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		// Not followed (see do), and not a tus answer: the upstream is
		// misbehaving, like any other answer that cannot be used.
		return badResponse(op, resp, -1, fmt.Sprintf("redirect (status %d) not followed", resp.StatusCode))
	}
	return &Error{Op: op, Kind: KindStatus, Status: resp.StatusCode, Offset: answeredOffset(resp.Header)}
}

func badResponse(op string, resp *http.Response, offset int64, reason string) *Error {
	return &Error{Op: op, Kind: KindBadResponse, Status: resp.StatusCode, Offset: offset,
		detail: "bad response: " + reason}
}

func badOffsetReason(header http.Header, parseErr error) string {
	if header.Get(HeaderUploadOffset) == "" {
		return "Upload-Offset is missing"
	}
	return "Upload-Offset is " + parseErr.Error()
}

// answeredOffset returns the Upload-Offset of an answer, -1 when absent or
// malformed. It is informational on error answers, which tus does not
// require to carry one.
func answeredOffset(header http.Header) int64 {
	offset, err := ParseSize(header.Get(HeaderUploadOffset))
	if err != nil {
		return -1
	}
	return offset
}

// requestError classifies an error returned by http.Client.Do.
func requestError(ctx context.Context, op, endpoint string, err error) *Error {
	// *url.Error quotes the method and the full URL; only its inner error is
	// kept, as message and as cause.
	cause := err
	for {
		var urlErr *url.Error
		if !errors.As(cause, &urlErr) || urlErr.Err == nil {
			break
		}
		cause = urlErr.Err
	}

	e := &Error{Op: op, Offset: -1, cause: cause}
	if ctx.Err() != nil {
		// The caller's context ended: that is the cause, whatever the
		// transport made of it.
		e.cause = ctx.Err()
	}
	switch class := netfail.Classify(ctx, err); class {
	case netfail.Timeout:
		e.Kind = KindTimeout
	case netfail.Canceled:
		e.Kind = KindCanceled
	case netfail.Network:
		// No fixed words fit: the text itself, without the endpoint.
		e.Kind = KindNetwork
		e.detail = redact(cause.Error(), endpoint)
	default:
		e.Kind = KindNetwork
		e.detail = class.String()
	}
	return e
}

// redact removes endpoint, its path and its query from s: a last line of
// defence for error texts this package did not write.
func redact(s, endpoint string) string {
	if endpoint == "" {
		return s
	}
	s = strings.ReplaceAll(s, endpoint, "[endpoint]")
	u, err := url.Parse(endpoint)
	if err != nil {
		return s
	}
	for _, secret := range []string{u.EscapedPath(), u.Path, u.RawQuery} {
		if len(secret) > 1 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// errBodyDetached is what the transport reads from a bodySource once Patch
// has returned; it makes the transport abandon the request.
var errBodyDetached = errors.New("tusproto: upload body read after the request ended")

// bodySource is the request body of a PATCH. It counts bytes, stops at the
// declared size, and records the first failure of the caller's reader so that
// Patch can tell it from an upstream failure: the transport folds body errors
// into its own.
//
// It deliberately implements only Read: no WriteTo, so io.Copy in the
// transport cannot bypass the counting and error recording, and copies go
// through the transport's bounded buffer.
type bodySource struct {
	// mu is held across source.Read, so that detach waits for a read in
	// progress and the counters below are consistent when Patch looks at them.
	mu        sync.Mutex
	source    io.Reader
	remaining int64 // bytes still to send; -1 when the size is not declared
	read      int64
	err       error // the first failure of source, or io.ErrUnexpectedEOF
	done      bool  // source is exhausted or the declared size was read
	detached  bool
}

func (b *bodySource) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done:
		// Still EOF after detach: the transport probes for extra bytes after
		// a Content-Length body, possibly after the answer has arrived.
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.detached:
		return 0, errBodyDetached
	case len(p) == 0:
		return 0, nil
	}
	if b.remaining >= 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.source.Read(p)
	if n < 0 || n > len(p) {
		b.err = fmt.Errorf("tusproto: upload body reader returned an invalid count %d", n)
		return 0, b.err
	}
	b.read += int64(n)
	if b.remaining >= 0 {
		b.remaining -= int64(n)
	}
	switch {
	case err == io.EOF && b.remaining > 0:
		b.err = io.ErrUnexpectedEOF
		return n, b.err
	case err == io.EOF:
		b.done = true
		return n, io.EOF
	case err != nil:
		b.err = err
		return n, err
	case b.remaining == 0:
		b.done = true
		return n, io.EOF
	}
	return n, nil
}

// detach cuts the transport off from the source, after any read in progress
// has returned, and reports the bytes read and the source's failure.
func (b *bodySource) detach() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detached = true
	return b.read, b.err
}
