package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// maxContextBytes bounds the application's context of one upload, compact.
// It is stored with the record for as long as the upload lives and sent in
// every event about it, so it must stay small: 4 KiB holds a few ids and
// names many times over (the same bound as Upload-Metadata's default).
const maxContextBytes = 4 << 10

// appContext checks the application's context for a new upload, as the
// auth hook answered it or a JWT's context claim carries it, and returns
// what is stored: the object's compact JSON, its keys, values and their
// order exactly as given, or "" when there is none (absent or null).
//
// The context must be a JSON object, so that a receiver of the upload's
// events can always add to it and read it by key, and valid UTF-8, so the
// events that embed it are valid JSON (RFC 8259 §8.1). It is never sent to
// Kinescope.
func appContext(raw json.RawMessage) (string, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return "", nil
	}
	if trimmed[0] != '{' {
		return "", errors.New("is not a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return "", errors.New("is not valid JSON")
	}
	if !utf8.Valid(compact.Bytes()) {
		return "", errors.New("is not valid UTF-8")
	}
	if compact.Len() > maxContextBytes {
		return "", fmt.Errorf("has %d bytes of compact JSON; at most %d are accepted", compact.Len(), maxContextBytes)
	}
	return compact.String(), nil
}
