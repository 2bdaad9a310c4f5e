package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	// Every target has a column and no failed run, unless nginx is missing
	// (and not required), which the report then says.
	failedRuns := "| failed runs | 0 | 0 | 0 | 0 | 0 |"
	if _, missing := findNginx(os.Getenv); missing != "" {
		failedRuns = "| failed runs | 0 | 0 | 0 |"
		if !strings.Contains(stdout.String(), "nginx left out") {
			t.Errorf("nginx is missing and the report does not say so:\n%s", stdout.String())
		}
	}
	for _, want := range []string{
		"| 32 MiB in one PATCH: MB/s |", "| creations at 200/s for 500ms: achieved/s |",
		"| HEAD latency p50 / p95 / p99, ms |", failedRuns,
		"| target | upstream | measured | verdict |",
		"plain HTTP upstream", "TLS upstream",
		"| 50 slow uploads at 64 KiB/s each, all open for 500ms: failed / most open at once |",
		"hop RSS per open slow upload at 25 / 50 / 75% and most open, KiB",
		"issue 15: 10000 slow uploads open at once", "| issue 15: creation at 200/s: p99 ≤ 20ms in every repetition | tls |",
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
	checkCharts(t, filepath.Dir(out), md)
}

// checkCharts checks that the markdown links a chart of each kind for both
// upstream modes, and that each is an SVG document with a line or bars and
// a legend entry for every hop it shows.
func checkCharts(t *testing.T, dir, md string) {
	t.Helper()
	hops := []string{"reverse proxy", "tusproxy"}
	if _, missing := findNginx(os.Getenv); missing == "" {
		hops = append(hops, "nginx 16k", "nginx 256k")
	}
	for _, name := range []string{"throughput", "slow-rss", "creation-latency"} {
		for _, mode := range []string{"plain", "tls"} {
			link := chartsDir + "/" + name + "-" + mode + ".svg"
			if !strings.Contains(md, "]("+link+")") {
				t.Errorf("the markdown does not embed %s", link)
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, link))
			if err != nil {
				t.Error(err)
				continue
			}
			root, texts, shapes, err := parseSVG(raw)
			if err != nil {
				t.Errorf("%s: %v", link, err)
				continue
			}
			if root != "svg" {
				t.Errorf("%s: root element %q, want svg", link, root)
			}
			for _, hop := range hops {
				if !slices.Contains(texts, hop) {
					t.Errorf("%s: no legend entry %q among %q", link, hop, texts)
				}
			}
			// The frame, the axes and their ticks are paths too: a chart
			// with data has many more.
			if shapes < 3*len(hops) {
				t.Errorf("%s: %d paths, too few for %d series", link, shapes, len(hops))
			}
		}
	}
}

// parseSVG returns an SVG document's root element name, the text of its
// <text> elements and how many <path> elements it has.
func parseSVG(raw []byte) (root string, texts []string, paths int, err error) {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return root, texts, paths, nil
		}
		if err != nil {
			return "", nil, 0, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
			if tok.Name.Local == "path" {
				paths++
			}
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(tok)))
			}
		case xml.EndElement:
			inText = false
		}
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
		{args: nil, check: func(o options) bool {
			return o.only[slow] && o.targets[nginx16k] && o.targets[direct] &&
				slices.Equal(o.upstreams, []upstreamMode{plainUpstream, tlsUpstream}) && o.slowUploads == 0
		}},
		{args: []string{"-only", "slow", "-targets", "tusproxy,nginx256k", "-upstream", "tls", "-slow-uploads", "2000"},
			check: func(o options) bool {
				return o.only[slow] && !o.only[single] && o.targets[viaTusproxy] && o.targets[nginx256k] &&
					!o.targets[nginx16k] && !o.targets[direct] && slices.Equal(o.upstreams, []upstreamMode{tlsUpstream}) &&
					o.slowUploads == 2000
			}},
		{args: []string{"-targets", "squid"}, wantErr: true},
		{args: []string{"-upstream", "quic"}, wantErr: true},
		{args: []string{"-slow-uploads", "-5"}, wantErr: true},
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

// TestSlowSizes checks that the slow uploads are whole writes and end
// together: upload i, opened i/slowOpening seconds in, lasts the rest of
// the ramp plus the plateau at slowRate.
func TestSlowSizes(t *testing.T) {
	sz := fullSizes()
	ramp := float64(sz.slowUploads) / float64(sz.slowOpening)
	for _, i := range []int{0, 1, sz.slowUploads / 2, sz.slowUploads - 1} {
		got := sz.slowSize(i)
		if got%sz.slowWrite != 0 {
			t.Errorf("slowSize(%d) = %d, not a whole number of %d-byte writes", i, got, sz.slowWrite)
		}
		endsAt := float64(i)/float64(sz.slowOpening) + float64(got)/float64(sz.slowRate)
		if want := ramp + sz.slowPlateau.Seconds(); endsAt < want || endsAt > want+float64(sz.slowWrite)/float64(sz.slowRate) {
			t.Errorf("upload %d ends at %.2fs, want %.2fs", i, endsAt, want)
		}
	}
}

// TestRSSPerOpenUpload checks the slow workload's measure: the highest
// sample with every upload open, less the RSS before, per upload; and the
// chart's curve, the first sample past each quarter, then that.
func TestRSSPerOpenUpload(t *testing.T) {
	res := result{rssBase: 10 << 20, rssSamples: []rssSample{
		{open: 20, rss: 11 << 20}, {open: 26, rss: 12 << 20}, {open: 55, rss: 13 << 20},
		{open: 80, rss: 14 << 20}, {open: 100, rss: 15 << 20}, {open: 100, rss: 16 << 20}, {open: 100, rss: 15 << 20},
	}}
	perUpload, ok := res.rssPerOpenUpload()
	if want := float64(6<<20) / 100; !ok || perUpload != want {
		t.Errorf("rssPerOpenUpload = %v, %v; want %v", perUpload, ok, want)
	}
	var opens []int
	for _, s := range res.rssCurve(100) {
		opens = append(opens, s.open)
	}
	if want := []int{26, 55, 80, 100}; !slices.Equal(opens, want) {
		t.Errorf("rssCurve opens = %v, want %v", opens, want)
	}
	// Two uploads failed: the most open, 98, stands for the plateau.
	res.rssSamples = res.rssSamples[:4]
	res.rssSamples = append(res.rssSamples, rssSample{open: 98, rss: 15 << 20})
	opens = nil
	for _, s := range res.rssCurve(100) {
		opens = append(opens, s.open)
	}
	if want := []int{26, 55, 80, 98}; !slices.Equal(opens, want) {
		t.Errorf("rssCurve opens = %v, want %v", opens, want)
	}
	if _, ok := (result{}).rssPerOpenUpload(); ok {
		t.Error("rssPerOpenUpload of no samples is ok")
	}
}

// TestTrickle checks that a slow upload's body is its payload, read in
// writes of at most the write size.
func TestTrickle(t *testing.T) {
	const size = 10*1000 + 7
	opened := 0
	body := &trickle{p: newPayload(3, 0, size), write: 1000, interval: time.Microsecond, opened: func() { opened++ }}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := body.Read(buf)
		if n > 1000 {
			t.Fatalf("a read of %d bytes, more than the write size", n)
		}
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
	}
	want, _ := io.ReadAll(newPayload(3, 0, size))
	if !bytes.Equal(got, want) || opened != 1 || !body.started.Load() {
		t.Errorf("trickle gave %d bytes (equal: %v), opened %d times", len(got), bytes.Equal(got, want), opened)
	}

	// With a hold, everything but the last write goes, then the body waits.
	hold := make(chan struct{})
	held := &trickle{p: newPayload(3, 0, 2500), write: 1000, interval: time.Microsecond, opened: func() {}, hold: hold}
	var sent int
	for range 2 {
		n, _ := held.Read(buf)
		sent += n
	}
	last := make(chan int)
	go func() {
		n, _ := held.Read(buf)
		last <- n
	}()
	select {
	case n := <-last:
		t.Fatalf("the last write (%d bytes) went before the release", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(hold)
	if n := <-last; sent+n != 2500 {
		t.Errorf("sent %d bytes, then %d after the release; want 2500 in all", sent, n)
	}
}

// TestPKI checks that the emulator's certificate verifies against the
// generated CA for the names the hops use, and not for another.
func TestPKI(t *testing.T) {
	p, err := writePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots, err := loadRoots(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", tlsServerName} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "kinescope.io"}); err == nil {
		t.Error("the certificate verifies for kinescope.io")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: tlsServerName}); err == nil {
		t.Error("the certificate verifies without the CA")
	}
}

// TestNginxMissing checks that a missing nginx leaves the nginx targets out
// with a note, or fails the run when TUSBENCH_NGINX_REQUIRED=1.
func TestNginxMissing(t *testing.T) {
	env := map[string]string{nginxEnv: filepath.Join(t.TempDir(), "no-nginx")}
	getenv := func(key string) string { return env[key] }
	opts, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{opts: opts, log: io.Discard}
	if err := b.findNginx(getenv); err != nil {
		t.Fatalf("findNginx: %v", err)
	}
	if b.opts.targets[nginx16k] || b.opts.targets[nginx256k] || !b.opts.targets[viaTusproxy] {
		t.Errorf("targets after a missing nginx: %v", b.opts.targets)
	}
	if len(b.notes) != 1 || !strings.Contains(b.notes[0], "nginx left out") {
		t.Errorf("notes = %q", b.notes)
	}

	env[nginxRequiredEnv] = "1"
	opts, _ = parseFlags(nil, io.Discard)
	b = &bench{opts: opts, log: io.Discard}
	if err := b.findNginx(getenv); err == nil {
		t.Error("findNginx with nginx required and missing: no error")
	}
}
