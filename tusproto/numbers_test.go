package tusproto_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr error
	}{
		{"0", 0, nil},
		{"1", 1, nil},
		{"1048576", 1 << 20, nil},
		{"007", 7, nil},
		{"0000000000000000000000000000000042", 42, nil},
		{"9223372036854775807", math.MaxInt64, nil},
		{"09223372036854775807", math.MaxInt64, nil},
		{"9223372036854775808", 0, tusproto.ErrSizeRange},
		{"99999999999999999999", 0, tusproto.ErrSizeRange},
		{"99999999999999999999x", 0, tusproto.ErrSizeSyntax},
		{"", 0, tusproto.ErrSizeSyntax},
		{"-1", 0, tusproto.ErrSizeSyntax},
		{"+1", 0, tusproto.ErrSizeSyntax},
		{" 1", 0, tusproto.ErrSizeSyntax},
		{"1 ", 0, tusproto.ErrSizeSyntax},
		{"1\t", 0, tusproto.ErrSizeSyntax},
		{"0x10", 0, tusproto.ErrSizeSyntax},
		{"1e3", 0, tusproto.ErrSizeSyntax},
		{"1.0", 0, tusproto.ErrSizeSyntax},
		{"1_000", 0, tusproto.ErrSizeSyntax},
		{"١٢", 0, tusproto.ErrSizeSyntax}, // Arabic-Indic digits are not ASCII digits
	}
	for _, test := range tests {
		got, err := tusproto.ParseSize(test.in)
		if got != test.want || !errors.Is(err, test.wantErr) || (err == nil) != (test.wantErr == nil) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, %v", test.in, got, err, test.want, test.wantErr)
		}
	}
}

func TestParseSizeErrorsAreSentences(t *testing.T) {
	for _, in := range []string{"", "-5", "99999999999999999999"} {
		_, err := tusproto.ParseSize(in)
		if err == nil || strings.Contains(err.Error(), "strconv") || (in != "" && strings.Contains(err.Error(), in)) {
			t.Errorf("ParseSize(%q) error %q: want a sentence without internals or the value", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, n := range []int64{0, 1, 1 << 20, math.MaxInt64} {
		got := tusproto.FormatSize(n)
		if back, err := tusproto.ParseSize(got); err != nil || back != n || got != strconv.FormatInt(n, 10) {
			t.Errorf("FormatSize(%d) = %q, parses back to %d, %v", n, got, back, err)
		}
	}
}

func TestIsOffsetStream(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"application/offset+octet-stream", true},
		{"Application/Offset+Octet-Stream", true},
		{"application/offset+octet-stream; charset=utf-8", true},
		{"application/offset+octet-stream ; foo=bar", true},
		{"application/offset+octet-stream; broken", true},
		{" application/offset+octet-stream", true},
		{"", false},
		{"application/octet-stream", false},
		{"application/offset+octet-stream2", false},
		{"application/offset+octet-stream/x", false},
		{"text/plain; x=application/offset+octet-stream", false},
		{"application/partial-upload", false},
	}
	for _, test := range tests {
		if got := tusproto.IsOffsetStream(test.contentType); got != test.want {
			t.Errorf("IsOffsetStream(%q) = %v, want %v", test.contentType, got, test.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"0", "42", "007", "9223372036854775807", "9223372036854775808", "-1", "+1", " 1", "0x1", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := tusproto.ParseSize(in)
		allDigits := in != "" && strings.Trim(in, "0123456789") == ""
		if err != nil {
			if n != 0 {
				t.Errorf("ParseSize(%q) = %d with error %v", in, n, err)
			}
			if !allDigits && !errors.Is(err, tusproto.ErrSizeSyntax) {
				t.Errorf("ParseSize(%q): %v, want ErrSizeSyntax", in, err)
			}
			if parsed, parseErr := strconv.ParseInt(in, 10, 64); allDigits && parseErr == nil {
				t.Errorf("ParseSize(%q) failed with %v, strconv parses %d", in, err, parsed)
			}
			return
		}
		if !allDigits || n < 0 {
			t.Fatalf("ParseSize(%q) = %d, want an error", in, n)
		}
		if want := strings.TrimLeft(in, "0"); tusproto.FormatSize(n) != want && !(n == 0 && want == "") {
			t.Errorf("ParseSize(%q) = %d, which formats as %q", in, n, tusproto.FormatSize(n))
		}
	})
}
