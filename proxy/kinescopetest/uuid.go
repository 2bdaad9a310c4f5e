package kinescopetest

import (
	"crypto/rand"
	"encoding/hex"
)

// newUUID returns a random (version 4, RFC 9562 section 5.4) UUID in its
// canonical text form: the form of Kinescope's video ids, endpoint ids and
// request ids.
func newUUID() string {
	var b [16]byte
	// crypto/rand.Read never fails since Go 1.24 (it crashes the program).
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// isUUID reports whether s has the canonical lowercase UUID form newUUID
// produces. Upload ids are checked with it before tusd's filestore turns
// them into file paths, so that no path can leave the storage directory.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
