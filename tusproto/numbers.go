package tusproto

import (
	"errors"
	"math"
	"mime"
	"strconv"
)

// Errors returned by ParseSize. They name no header and no value, so callers
// can prefix the header name (fmt.Errorf("Upload-Offset: %w", err)) and show
// the result to a client.
var (
	// ErrSizeSyntax means the value is empty or holds something other than
	// ASCII digits.
	ErrSizeSyntax = errors.New("not a non-negative integer")
	// ErrSizeRange means the value is made of digits but exceeds the int64
	// range.
	ErrSizeRange = errors.New("too large")
)

// ParseSize parses an Upload-Offset or Upload-Length value. The spec defines
// both as "a non-negative integer", so only ASCII digits are accepted: no
// sign, no spaces, no base prefix, no empty string. strconv.ParseInt is not
// used because it accepts a leading "+" and "-". Leading zeros are allowed.
// Syntax errors take precedence over range errors, so "99999999999999999999x"
// is ErrSizeSyntax.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, ErrSizeSyntax
	}
	var n int64
	overflow := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrSizeSyntax
		}
		if overflow {
			// Keep scanning so a later non-digit still reports a syntax error.
			continue
		}
		digit := int64(c - '0')
		if n > (math.MaxInt64-digit)/10 {
			overflow = true
			continue
		}
		n = n*10 + digit
	}
	if overflow {
		return 0, ErrSizeRange
	}
	return n, nil
}

// FormatSize formats an Upload-Offset or Upload-Length value.
func FormatSize(n int64) string {
	return strconv.FormatInt(n, 10)
}

// IsOffsetStream reports whether contentType is
// application/offset+octet-stream. Media types are case-insensitive
// (RFC 9110, section 8.3.1) and the spec defines no parameters for this one,
// so parameters are ignored, even malformed ones.
func IsOffsetStream(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return false
	}
	// ParseMediaType has lower-cased the media type already.
	return mediaType == ContentTypeOffsetStream
}
