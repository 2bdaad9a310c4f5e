// Package kinescope talks to Kinescope's uploader: it asks POST /v2/init for a
// one-off tus endpoint, and decides which endpoints the proxy may forward to.
package kinescope

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinescope-tools/tusproxy/internal/netfail"
	"github.com/kinescope-tools/tusproxy/internal/safetext"
)

// maxAnswerBytes bounds how much of any answer Init reads: a success body is a
// few hundred bytes, and a misbehaving upstream must not make us buffer more.
const maxAnswerBytes = 1 << 20

// codeLimitReached is Kinescope's LIMIT_REACHED error code. It wins over the
// status because Kinescope has been seen to send it with 403 as well as 402.
const codeLimitReached = 100106

// Limits for the sanitized strings we keep from an answer.
const (
	maxMessageBytes   = 300
	maxRequestIDBytes = 128
	maxTitleRunes     = 140
)

// Client calls Kinescope's POST /v2/init. It is safe for concurrent use once
// its fields are set.
type Client struct {
	// InitURL is the absolute URL of /v2/init, such as
	// https://uploader.kinescope.io/v2/init.
	InitURL string
	// Token is the workspace API token, sent as a Bearer credential.
	Token string
	// HTTP sends the request; its Transport carries the dial, TLS and
	// response-header timeouts. Redirects are never followed whatever its
	// CheckRedirect says: a 3xx from /v2/init is reported as KindBadResponse.
	// nil means http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds the whole call, answer body included; 0 means only the
	// caller's context and the transport bound it.
	Timeout time.Duration
}

// InitRequest is the JSON body of POST /v2/init.
type InitRequest struct {
	// ParentID is the project or folder the video goes to.
	ParentID string `json:"parent_id"`
	// Type is "video" for video uploads.
	Type string `json:"type"`
	// Title is the video's title; see TitleFor.
	Title string `json:"title"`
	// Filename is the client's file name, if known.
	Filename string `json:"filename,omitempty"`
	// Filesize is the exact upload length in bytes; Kinescope requires it.
	Filesize int64 `json:"filesize"`
	// Description is an optional video description.
	Description string `json:"description,omitempty"`
	// ClientIP is the uploading client's address, if known.
	ClientIP string `json:"client_ip,omitempty"`
}

// Upload is what a successful init returns.
type Upload struct {
	// VideoID is Kinescope's id for the new video (data.id).
	VideoID string
	// Endpoint is the one-off tus upload URL (data.endpoint). It is a secret
	// and is not checked here: callers apply an EndpointPolicy.
	Endpoint string
	// RequestID is Kinescope's X-Request-ID, for logs.
	RequestID string
}

// Init asks Kinescope for a new upload. Every failure is an *Error.
func (c *Client) Init(ctx context.Context, req InitRequest) (Upload, error) {
	callCtx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}

	body, err := json.Marshal(req)
	if err != nil {
		// InitRequest holds only strings and an int64: this cannot happen.
		return Upload{}, &Error{Kind: KindBadRequest, reason: "cannot encode request", cause: err}
	}
	httpReq, err := http.NewRequestWithContext(callCtx, http.MethodPost, c.InitURL, bytes.NewReader(body))
	if err != nil {
		// The error text quotes the URL, which may carry a query we must not
		// log; the configuration check should have caught this anyway.
		return Upload{}, &Error{Kind: KindUnavailable, reason: "invalid init URL"}
	}
	httpReq.Header.Set("Authorization", "Bearer "+c.Token)
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Accept", "application/json")

	resp, err := c.httpClient().Do(httpReq)
	if err != nil {
		return Upload{}, transportError(callCtx, err)
	}
	defer resp.Body.Close()

	answer, readErr := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if readErr != nil && isSuccess(resp.StatusCode) {
		// Half a success body is no success; an error status is still
		// meaningful without its body, so that case falls through.
		e := transportError(callCtx, readErr)
		e.Status = resp.StatusCode
		e.RequestID = sanitize(resp.Header.Get("X-Request-ID"), c.Token, maxRequestIDBytes)
		return Upload{}, e
	}
	return interpret(resp.StatusCode, resp.Header, answer, c.Token, time.Now())
}

// httpClient returns a copy of the configured client that never follows
// redirects: following one would resend the token to wherever it points.
func (c *Client) httpClient() *http.Client {
	hc := http.DefaultClient
	if c.HTTP != nil {
		hc = c.HTTP
	}
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &noRedirect
}

func isSuccess(status int) bool { return status == http.StatusOK || status == http.StatusCreated }

// initAnswer is the union of Kinescope's success and error bodies.
type initAnswer struct {
	Data *struct {
		ID       string `json:"id"`
		Endpoint string `json:"endpoint"`
	} `json:"data"`
	Error *struct {
		// Code, message and detail are decoded loosely: a body whose error
		// part has an unexpected shape still yields its status mapping.
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"error"`
}

// interpret maps one complete answer to a result. It is separate from Init so
// that the fuzz test can feed it arbitrary answers.
func interpret(status int, header http.Header, body []byte, token string, now time.Time) (Upload, error) {
	requestID := sanitize(header.Get("X-Request-ID"), token, maxRequestIDBytes)
	tooLarge := len(body) > maxAnswerBytes

	var answer initAnswer
	decodeErr := json.Unmarshal(body, &answer)
	if tooLarge {
		decodeErr = errors.New("answer larger than 1 MiB")
	}

	if isSuccess(status) && decodeErr == nil && answer.Data != nil {
		id, endpoint := strings.TrimSpace(answer.Data.ID), strings.TrimSpace(answer.Data.Endpoint)
		if id != "" && endpoint != "" && safetext.Printable(id) && safetext.Printable(endpoint) {
			return Upload{VideoID: id, Endpoint: endpoint, RequestID: requestID}, nil
		}
	}

	e := &Error{
		Status:     status,
		RequestID:  requestID,
		RetryAfter: parseRetryAfter(header.Get("Retry-After"), now),
	}
	if decodeErr == nil && answer.Error != nil {
		e.Code = decodeCode(answer.Error.Code)
		e.Message = errorMessage(decodeString(answer.Error.Message), decodeString(answer.Error.Detail), token)
	}

	switch {
	case e.Code == codeLimitReached:
		e.Kind = KindLimit
	case isSuccess(status):
		e.Kind = KindBadResponse
		if decodeErr != nil {
			e.reason = "undecodable body"
		} else {
			e.reason = "no upload id or endpoint"
		}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		e.Kind = KindAuth
	case status == http.StatusPaymentRequired:
		e.Kind = KindLimit
	case status == http.StatusBadRequest:
		e.Kind = KindBadRequest
	case status == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
	case status >= 500 && status <= 599:
		e.Kind = KindUnavailable
	default:
		e.Kind = KindBadResponse
	}
	return Upload{}, e
}

// decodeCode accepts the code as a JSON number or a string of digits.
func decodeCode(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n
		}
	}
	return 0
}

// decodeString returns raw as a string if it is a JSON string, else "".
func decodeString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func errorMessage(message, detail, token string) string {
	message = sanitize(message, token, maxMessageBytes)
	detail = sanitize(detail, token, maxMessageBytes)
	switch {
	case detail == "" || detail == message:
	case message == "":
		message = detail
	default:
		message = message + ": " + detail
	}
	return cut(message, maxMessageBytes)
}

// sanitize makes upstream text safe for a log line: valid UTF-8, no control
// characters (no forged log lines), the token redacted in case an upstream
// echoes it, trimmed and cut to max bytes. The token is redacted after control
// characters are gone (so "to\nken" cannot slip through) and before cutting
// (so no prefix of it survives).
func sanitize(s, token string, max int) string {
	s = safetext.Strip(s)
	if token != "" {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	return cut(strings.TrimSpace(s), max)
}

// cut shortens s to at most max bytes without splitting a rune.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	end := max
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strings.TrimSpace(s[:end])
}

// maxRetryAfter caps absurd Retry-After values, which would otherwise
// overflow time.Duration.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads delta-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if strings.Trim(v, "0123456789") == "" {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			// Only a range error is possible here.
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := when.Sub(now)
	if d <= 0 {
		return 0
	}
	if d > maxRetryAfter {
		return maxRetryAfter
	}
	// Dates have whole-second precision; sub-second noise from now only
	// makes logs harder to read.
	return d.Round(time.Second)
}

// transportError classifies a failure that left us without a usable answer.
// call is the context bounded by Client.Timeout, derived from the caller's.
func transportError(call context.Context, err error) *Error {
	// A *url.Error's text names the init URL with its query: keep only what
	// it wraps.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	e := &Error{cause: err}
	switch class := netfail.Classify(call, err); class {
	case netfail.Canceled:
		e.Kind = KindCanceled
	case netfail.Timeout:
		e.Kind = KindTimeout
	default:
		e.Kind = KindUnavailable
		e.reason = class.String()
	}
	return e
}

// TitleFor picks the video title: the client's metadata title, else the file
// name, trimmed, without control characters, cut to 140 characters (runes),
// the length Kinescope's UI keeps.
func TitleFor(metadataTitle, filename string) string {
	title := cleanTitle(metadataTitle)
	if title == "" {
		title = cleanTitle(filename)
	}
	if utf8.RuneCountInString(title) <= maxTitleRunes {
		return title
	}
	runes := 0
	for i := range title {
		if runes == maxTitleRunes {
			return strings.TrimSpace(title[:i])
		}
		runes++
	}
	return title
}

func cleanTitle(s string) string {
	return strings.TrimSpace(safetext.Strip(s))
}
