// Package safetext makes text that came from a peer (an upstream's error
// message or request id, a client's file name, an auth hook's refusal) safe
// to write into a log line, a header, an error text or a video title: valid
// UTF-8 without control characters, so that nobody can forge log lines or
// send terminal escapes through us.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strip drops invalid UTF-8 and every control character (C0, DEL and C1, as
// unicode.IsControl has them) from s.
func Strip(s string) string {
	return replaceControls(s, -1)
}

// Blank is Strip that puts a space in place of each control character, for
// text read as words: "refused\nby policy" stays two words.
func Blank(s string) string {
	return replaceControls(s, ' ')
}

// replaceControls maps every control character of s to replacement, or drops
// it when replacement is negative, after dropping invalid UTF-8 (which
// strings.Map would turn into U+FFFD).
func replaceControls(s string, replacement rune) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return replacement
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

// Printable reports whether s is valid UTF-8 without control characters:
// whether Strip would leave it as it is.
func Printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// HasASCIIControl reports whether s holds an ASCII control character (below
// 0x20, or DEL), tab included: the test for the ASCII tokens of protocols
// and settings, which have no use for any of them.
func HasASCIIControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
