package tusproto_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   tusproto.Metadata
	}{
		{"empty header", "", tusproto.Metadata{}},
		{"whitespace only", " \t ", tusproto.Metadata{}},
		{"one pair", "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==",
			tusproto.Metadata{"filename": "world_domination_plan.pdf"}},
		{"key without value", "is_confidential", tusproto.Metadata{"is_confidential": ""}},
		{"several pairs", "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,filetype YXBwbGljYXRpb24vcGRm",
			tusproto.Metadata{"filename": "world_domination_plan.pdf", "is_confidential": "", "filetype": "application/pdf"}},
		{"whitespace around elements", "  a YQ== ,\tb Yg==\t, c ",
			tusproto.Metadata{"a": "a", "b": "b", "c": ""}},
		{"unpadded base64", "one YQ,two YWI,three YWJj", tusproto.Metadata{"one": "a", "two": "ab", "three": "abc"}},
		{"padded base64", "one YQ==,two YWI=,three YWJj", tusproto.Metadata{"one": "a", "two": "ab", "three": "abc"}},
		{"base64 with + and /", "k +/+/", tusproto.Metadata{"k": "\xfb\xff\xbf"}},
		{"utf-8 value", "title 0JrQuNC90L4=", tusproto.Metadata{"title": "Кино"}},
		{"non-ascii key", "название YQ==", tusproto.Metadata{"название": "a"}},
		{"binary value", "bin AAEC/w==", tusproto.Metadata{"bin": "\x00\x01\x02\xff"}},
		{"leading space before a would-be value", " YQ==", tusproto.Metadata{"YQ==": ""}},
		{"header at the limit", "kkk " + strings.Repeat("A", tusproto.MaxMetadataLength-4),
			tusproto.Metadata{"kkk": strings.Repeat("\x00", (tusproto.MaxMetadataLength-4)/4*3)}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			got, err := tusproto.ParseMetadata(test.header)
			if err != nil {
				t.Fatalf("ParseMetadata(%.100q): %v", test.header, err)
			}
			if got == nil || !maps.Equal(got, test.want) {
				t.Fatalf("ParseMetadata(%.100q) = %.100v, want %.100v", test.header, got, test.want)
			}
			again, err := tusproto.ParseMetadata(got.Encode())
			if err != nil || !maps.Equal(again, got) {
				t.Errorf("round trip through %.100q = %.100v, %v", got.Encode(), again, err)
			}
		})
	}
}

func TestParseMetadataRejects(t *testing.T) {
	tests := []struct {
		name, header, wantKey, wantMessage string
	}{
		{"bad base64 character", "name a*==", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"base64url alphabet", "name -_-_", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"impossible length", "name YWJjZ", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"too much padding", "name YQ===", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"padding in the middle", "name YQ==YQ==", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"padding only", "name ==", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"non-zero trailing bits", "name YR==", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"newline inside value", "name YW\nJj", "name", `Upload-Metadata: key "name": value is not valid base64`},
		{"duplicate key", "a YQ==,b,a", "a", `Upload-Metadata: key "a": duplicate key`},
		{"duplicate key without values", "a,a", "a", `Upload-Metadata: key "a": duplicate key`},
		{"two values", "a YQ== Yg==", "a", `Upload-Metadata: key "a": more than one space-separated value`},
		{"two spaces", "a  YQ==", "a", `Upload-Metadata: key "a": key and value must be separated by a single space`},
		{"tab in key", "a\tb YQ==", "a\tb", `Upload-Metadata: key "a\tb": key contains a control character`},
		{"control character in key", "a\x01 YQ==", "a\x01", `Upload-Metadata: key "a\x01": key contains a control character`},
		{"DEL in key", "a\x7f", "a\x7f", `Upload-Metadata: key "a\x7f": key contains a control character`},
		{"empty element", "a YQ==,,b Yg==", "", `Upload-Metadata: element 2 is empty`},
		{"empty key", ",a", "", `Upload-Metadata: element 1 is empty`},
		{"whitespace element", "a, ,b", "", `Upload-Metadata: element 2 is empty`},
		{"trailing comma", "a YQ==,", "", `Upload-Metadata: element 2 is empty`},
		{"too long", "k " + strings.Repeat("A", tusproto.MaxMetadataLength-1), "",
			"Upload-Metadata: header is longer than 65536 bytes"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			got, err := tusproto.ParseMetadata(test.header)
			if err == nil {
				t.Fatalf("ParseMetadata(%.100q) = %.100v, want an error", test.header, got)
			}
			if got != nil {
				t.Errorf("ParseMetadata(%.100q) returned %.100v with its error", test.header, got)
			}
			var metadataErr *tusproto.MetadataError
			if !errors.As(err, &metadataErr) {
				t.Fatalf("error %q (%T) is not a *MetadataError", err, err)
			}
			if metadataErr.Key != test.wantKey || err.Error() != test.wantMessage {
				t.Errorf("got key %q, message %q; want %q, %q", metadataErr.Key, err, test.wantKey, test.wantMessage)
			}
		})
	}
}

func TestMetadataErrorQuotesLongKeysShortly(t *testing.T) {
	key := strings.Repeat("k", 10000)
	_, err := tusproto.ParseMetadata(key + "," + key)
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error for a duplicate 10000-byte key: %q", err)
	}
}

func TestMetadataEncode(t *testing.T) {
	tests := []struct {
		name     string
		metadata tusproto.Metadata
		want     string
	}{
		{"nil", nil, ""},
		{"empty", tusproto.Metadata{}, ""},
		{"sorted keys, empty value alone", tusproto.Metadata{"b": "", "a": "a", "filetype": "application/pdf"},
			"a YQ==,b,filetype YXBwbGljYXRpb24vcGRm"},
		{"padding kept", tusproto.Metadata{"k": "ab"}, "k YWI="},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			if got := test.metadata.Encode(); got != test.want {
				t.Errorf("Encode() = %q, want %q", got, test.want)
			}
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	for _, seed := range []string{
		"",
		"filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
		" a YQ ,\tb",
		"a YQ==,,b",
		"a YQ== Yg==",
		"a,a",
		"k YR==",
		"k\x00 YQ==",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		metadata, err := tusproto.ParseMetadata(header)
		if err != nil {
			var metadataErr *tusproto.MetadataError
			if metadata != nil || !errors.As(err, &metadataErr) {
				t.Fatalf("ParseMetadata(%q) = %#v, %v (%T)", header, metadata, err, err)
			}
			return
		}
		if metadata == nil {
			t.Fatalf("ParseMetadata(%q) returned a nil map", header)
		}
		encoded := metadata.Encode()
		if len(encoded) > tusproto.MaxMetadataLength {
			// Restoring padding can lengthen a header at the limit.
			return
		}
		again, err := tusproto.ParseMetadata(encoded)
		if err != nil {
			t.Fatalf("ParseMetadata(%q) gave %#v, whose encoding %q does not parse: %v", header, metadata, encoded, err)
		}
		if !maps.Equal(again, metadata) {
			t.Fatalf("round trip of %q: %#v became %#v", header, metadata, again)
		}
		if again.Encode() != encoded {
			t.Fatalf("encoding of %#v is not stable: %q then %q", metadata, encoded, again.Encode())
		}
	})
}
