package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the bench's child roles, as the bench
// executable does when it starts them.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the whole benchmark in -quick mode against a tusproxy
// built from this module, so that `go test ./...` proves the benchmark
// still works. It checks what the run produced, never the numbers: every
// upload was verified by hash, or run would have failed.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tusproxy and runs every workload; skipped with -short")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	// A hand-written note that a rewrite must keep.
	note := "\nThe analysis written by hand.\n"
	if err := os.WriteFile(out, []byte("old generated part\n"+notesMarker+note), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-quick", "-out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"| 32 MiB in one PATCH: MB/s |", "| creations at 200/s for 1s: achieved/s |",
		"| HEAD latency p50 / p95 / p99, ms |", "| failed runs | 0 | 0 | 0 |",
		"| target (issue 7) | measured | verdict |",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout.String())
		}
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(written)
	// "upstream chunk size default (": the default was read from the
	// binary's help, whatever it is.
	for _, want := range []string{"go run ./bench -quick -out " + out, "nproc", "## Targets", notesMarker + note,
		"upstream chunk size default ("} {
		if !strings.Contains(md, want) {
			t.Errorf("%s lacks %q", out, want)
		}
	}
	if strings.Contains(md, "old generated part") {
		t.Errorf("%s kept the old generated part", out)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		check   func(options) bool
	}{
		{args: nil, check: func(o options) bool { return o.reps == 3 && !o.quick && o.only[single] && o.only[heads] }},
		{args: []string{"-quick"}, check: func(o options) bool { return o.reps == 1 && o.quick }},
		{args: []string{"-reps", "5", "-only", "single,head"}, check: func(o options) bool {
			return o.reps == 5 && o.only[single] && o.only[heads] && !o.only[chunked] && !o.only[creations]
		}},
		{args: []string{"-env", "TUSPROXY_UPSTREAM_CHUNK_SIZE=32MiB"}, check: func(o options) bool {
			return len(o.env) == 1 && o.env[0] == "TUSPROXY_UPSTREAM_CHUNK_SIZE=32MiB"
		}},
		{args: []string{"-only", "sideways"}, wantErr: true},
		{args: []string{"-reps", "-1"}, wantErr: true},
		{args: []string{"-env", "NOEQUALS"}, wantErr: true},
		{args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			opts, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags(%q) error %v, want error: %v", tt.args, err, tt.wantErr)
			}
			if err == nil && !tt.check(opts) {
				t.Errorf("parseFlags(%q) = %+v", tt.args, opts)
			}
		})
	}
}

// TestPayload checks that payloads are deterministic, that a stream's
// content does not depend on where it is cut into PATCHes or reads, and
// that two seeds never give the same bytes.
func TestPayload(t *testing.T) {
	const n = 3*payloadBlock + 12345
	whole, err := io.ReadAll(newPayload(7, 0, n))
	if err != nil || len(whole) != n {
		t.Fatalf("ReadAll: %d bytes, %v", len(whole), err)
	}
	var pieced []byte
	for _, cut := range [][2]int64{{0, 5}, {5, payloadBlock + 3}, {payloadBlock + 3, n}} {
		p := newPayload(7, cut[0], cut[1])
		buf := make([]byte, 7) // odd reads cross block and stamp boundaries
		for {
			k, err := p.Read(buf)
			pieced = append(pieced, buf[:k]...)
			if err == io.EOF {
				break
			}
		}
	}
	if !bytes.Equal(whole, pieced) {
		t.Fatal("a payload read in pieces differs from the payload read whole")
	}
	other, _ := io.ReadAll(newPayload(8, 0, n))
	for block := 0; block*payloadBlock < n; block++ {
		a := whole[block*payloadBlock : min((block+1)*payloadBlock, n)]
		b := other[block*payloadBlock : min((block+1)*payloadBlock, n)]
		if bytes.Equal(a, b) {
			t.Errorf("block %d is the same for seeds 7 and 8", block)
		}
	}
	sum := sha256.Sum256(whole)
	if got := newHashCache().sum(payloadKey{7, n}); got != hex.EncodeToString(sum[:]) {
		t.Errorf("hashCache.sum = %s, want %s", got, hex.EncodeToString(sum[:]))
	}
}

func TestPercentile(t *testing.T) {
	samples := []int{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	tests := []struct {
		p    float64
		want int
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}}
	for _, tt := range tests {
		var ds []time.Duration
		for _, s := range samples {
			ds = append(ds, time.Duration(s))
		}
		if got := percentile(ds, tt.p); got != time.Duration(tt.want) {
			t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}
