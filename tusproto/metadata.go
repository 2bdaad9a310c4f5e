package tusproto

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kinescope-tools/tusproxy/internal/safetext"
)

// MaxMetadataLength is the longest Upload-Metadata header ParseMetadata
// accepts, in bytes. The spec sets no limit; this one keeps a single header
// from costing more than a bounded amount of memory and CPU, and is far above
// what real clients send (a file name and a type).
const MaxMetadataLength = 64 << 10

// Metadata is the decoded Upload-Metadata of an upload: keys to values.
// Values are raw bytes after base64 decoding and need not be UTF-8.
type Metadata map[string]string

// MetadataError describes why an Upload-Metadata header was rejected.
type MetadataError struct {
	// Key is the key of the offending pair, or "" when the problem is not
	// tied to one key (an empty element, an over-long header).
	Key string
	// Reason says what is wrong, as a lower-case phrase.
	Reason string
}

// maxKeyInError bounds how much of a key an error message quotes: keys come
// from clients and may be up to MaxMetadataLength long.
const maxKeyInError = 64

// Error returns, for example,
// `Upload-Metadata: key "name": value is not valid base64`.
func (e *MetadataError) Error() string {
	if e.Key == "" {
		return "Upload-Metadata: " + e.Reason
	}
	key := e.Key
	if len(key) > maxKeyInError {
		key = key[:maxKeyInError] + "..."
	}
	return fmt.Sprintf("Upload-Metadata: key %q: %s", key, e.Reason)
}

// ParseMetadata decodes an Upload-Metadata header (tus 1.0.0, "Upload-Metadata"):
// comma-separated elements, each a key, optionally followed by one space and
// the base64 of the value; a key alone means an empty value.
//
// Unlike tusd, which drops malformed pairs silently, ParseMetadata rejects the
// whole header with a *MetadataError: a client whose metadata (say, the file
// name that becomes the video title) vanished without a word would be worse
// off than one told what is wrong. Rejected are: an empty element (",,", a
// trailing comma), a key with a control character, a repeated key, more than
// one space-separated value, a value that is not standard base64, and a
// header longer than MaxMetadataLength.
//
// Tolerated are: spaces and tabs around each element (RFC 9110 lists allow
// optional whitespace around commas), and base64 without its "=" padding,
// which some clients omit. An empty or whitespace-only header yields an empty,
// non-nil map.
func ParseMetadata(header string) (Metadata, error) {
	if len(header) > MaxMetadataLength {
		return nil, &MetadataError{Reason: fmt.Sprintf("header is longer than %d bytes", MaxMetadataLength)}
	}
	metadata := Metadata{}
	if strings.Trim(header, " \t") == "" {
		return metadata, nil
	}
	for i, element := range strings.Split(header, ",") {
		element = strings.Trim(element, " \t")
		if element == "" {
			return nil, &MetadataError{Reason: fmt.Sprintf("element %d is empty", i+1)}
		}
		// After trimming, the element neither starts nor ends with a space, so
		// parts[0] (the key) is never empty and no part is empty unless two
		// spaces follow each other.
		parts := strings.Split(element, " ")
		key := parts[0]
		if safetext.HasASCIIControl(key) {
			return nil, &MetadataError{Key: key, Reason: "key contains a control character"}
		}
		if len(parts) > 2 {
			if slices.Contains(parts, "") {
				return nil, &MetadataError{Key: key, Reason: "key and value must be separated by a single space"}
			}
			return nil, &MetadataError{Key: key, Reason: "more than one space-separated value"}
		}
		if _, seen := metadata[key]; seen {
			return nil, &MetadataError{Key: key, Reason: "duplicate key"}
		}
		value := ""
		if len(parts) == 2 {
			decoded, ok := decodeMetadataValue(parts[1])
			if !ok {
				return nil, &MetadataError{Key: key, Reason: "value is not valid base64"}
			}
			value = decoded
		}
		metadata[key] = value
	}
	return metadata, nil
}

// Encode returns the Upload-Metadata header for m. Keys are sorted so equal
// maps give equal headers; an empty value is written as the key alone, as the
// spec allows. Keys are not checked: a key holding a space, a comma or a
// control character, or an empty key, yields a header that ParseMetadata
// rejects. Maps returned by ParseMetadata always encode to a header it
// accepts, as long as the result fits in MaxMetadataLength.
func (m Metadata) Encode() string {
	var header strings.Builder
	for i, key := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			header.WriteByte(',')
		}
		header.WriteString(key)
		if value := m[key]; value != "" {
			header.WriteByte(' ')
			header.WriteString(base64.StdEncoding.EncodeToString([]byte(value)))
		}
	}
	return header.String()
}

// decodeMetadataValue decodes standard base64 (RFC 4648, section 4), padded
// or not. Strict decoding rejects non-zero trailing bits, so every accepted
// value has exactly one encoding and Encode reproduces it (up to padding).
func decodeMetadataValue(encoded string) (string, bool) {
	// encoding/base64 skips CR and LF even in strict mode; nothing but the
	// alphabet and trailing padding belongs in a header value.
	unpadded := strings.TrimRight(encoded, "=")
	for i := 0; i < len(unpadded); i++ {
		if !isBase64Alphabet(unpadded[i]) {
			return "", false
		}
	}
	encoding := base64.RawStdEncoding.Strict()
	if len(unpadded) != len(encoded) {
		encoding = base64.StdEncoding.Strict()
	}
	decoded, err := encoding.DecodeString(encoded)
	if err != nil {
		return "", false
	}
	return string(decoded), true
}

func isBase64Alphabet(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}
