package safetext_test

import (
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/safetext"
)

func TestScrubbing(t *testing.T) {
	tests := []struct {
		in, strip, blank string
		printable, ascii bool
	}{
		{in: "plain text", strip: "plain text", blank: "plain text", printable: true},
		{in: "héllo 世界", strip: "héllo 世界", blank: "héllo 世界", printable: true},
		{in: "a\nb", strip: "ab", blank: "a b", ascii: true},
		{in: "tab\there", strip: "tabhere", blank: "tab here", ascii: true},
		{in: "\x1b[31mred", strip: "[31mred", blank: " [31mred", ascii: true},
		{in: "del\x7f", strip: "del", blank: "del ", ascii: true},
		{in: "c1\u0085next", strip: "c1next", blank: "c1 next"},
		{in: "bad\xffutf8", strip: "badutf8", blank: "badutf8"},
		{in: "", strip: "", blank: "", printable: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := safetext.Strip(tt.in); got != tt.strip {
				t.Errorf("Strip = %q, want %q", got, tt.strip)
			}
			if got := safetext.Blank(tt.in); got != tt.blank {
				t.Errorf("Blank = %q, want %q", got, tt.blank)
			}
			if got := safetext.Printable(tt.in); got != tt.printable {
				t.Errorf("Printable = %v, want %v", got, tt.printable)
			}
			if got := safetext.HasASCIIControl(tt.in); got != tt.ascii {
				t.Errorf("HasASCIIControl = %v, want %v", got, tt.ascii)
			}
		})
	}
}
