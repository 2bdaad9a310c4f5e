package tusproto_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Smallest and largest buffers of these tests: small enough to write
// scripts by hand.
const (
	testSmall = 8
	testLarge = 64
)

// scriptedReader returns, for each Read, the next count of its script (at
// most len(p)) from data, and records the length of every p it was offered
// and how many buffers were taken at that moment.
type scriptedReader struct {
	data    []byte
	script  []int
	pools   *tusproto.CopyPools
	offered []int
	taken   []int64
	err     error // returned once the script is done; io.EOF when nil
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	r.offered = append(r.offered, len(p))
	r.taken = append(r.taken, sum(r.pools.Out()))
	if len(r.script) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := min(r.script[0], len(p), len(r.data))
	r.script = r.script[1:]
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestBodyCopyPassesBytesExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	// Reads of every size from 1 byte to past the large buffer: slow and
	// fast phases alternate, so the copy switches buffers many times.
	pools := tusproto.NewCopyPools(4<<10, 16<<10)
	r := &randomReader{r: bytes.NewReader(data), rng: rng, short: 2 << 10}
	var out bytes.Buffer
	n, err := pools.Copy(&out, r)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Copy = %d, %v; want %d, nil", n, err, len(data))
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the bytes copied differ from the bytes read")
	}
	if out := pools.Out(); sum(out) != 0 {
		t.Fatalf("buffers not given back, by size: %v", out)
	}
	if r.switches < 20 {
		t.Fatalf("the reads offered switched size %d times; the test wants both buffers used often", r.switches)
	}
}

// randomReader reads runs of short and of full reads from r.
type randomReader struct {
	r        io.Reader
	rng      *rand.Rand
	short    int  // a read that does not fill returns at most this
	run      int  // reads left in the current run
	full     bool // the current run fills every read
	last     int  // len(p) of the last Read
	switches int
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(p) != r.last && r.last != 0 {
		r.switches++
	}
	r.last = len(p)
	if r.run == 0 {
		r.run, r.full = 1+r.rng.IntN(8), r.rng.IntN(2) == 0
	}
	r.run--
	n := len(p)
	if !r.full {
		n = 1 + r.rng.IntN(min(len(p), r.short))
	}
	return r.r.Read(p[:n])
}

func TestBodyCopySizesTheBufferToWhatIsWaiting(t *testing.T) {
	// Buffers of 8, 16, 32 and 64 bytes. Each step: what the read returns,
	// and the size of the buffer it is offered.
	type step struct{ n, offered int }
	full := func(size, reads int) []step { // reads filling a buffer of size
		steps := make([]step, reads)
		for i := range steps {
			steps[i] = step{size, size}
		}
		return steps
	}
	grow := tusproto.FillsToGrow
	var steps []step
	steps = append(steps, step{3, 8})                // a short read keeps the smallest
	steps = append(steps, full(8, grow-1)...)        // full reads, but too few
	steps = append(steps, step{5, 8})                // and the count starts again
	steps = append(steps, full(8, grow)...)          // enough full reads in a row double it
	steps = append(steps, step{9, 16}, step{16, 16}) // more than half: kept, and the count starts again
	steps = append(steps, full(16, grow-1)...)
	steps = append(steps, full(32, grow)...)
	steps = append(steps, full(64, grow+1)...) // full at the largest: kept
	steps = append(steps, step{33, 64})
	steps = append(steps, step{32, 64}) // would have fit in half: halved
	steps = append(steps, step{3, 32})  // one size at a time
	steps = append(steps, step{3, 16})
	steps = append(steps, step{3, 8})
	steps = append(steps, step{2, 8})
	var script []int
	total := 0
	for _, s := range steps {
		script = append(script, s.n)
		total += s.n
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 256)
	pools := tusproto.NewCopyPools(testSmall, testLarge)
	r := &scriptedReader{data: data, script: script, pools: pools}
	var out bytes.Buffer
	n, err := pools.Copy(&out, r)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(total) || !bytes.Equal(out.Bytes(), data[:total]) {
		t.Fatalf("copied %d bytes (%q); want the first %d of the data", n, out.Bytes(), total)
	}
	for i, s := range steps {
		if r.offered[i] != s.offered || r.taken[i] != 1 {
			t.Fatalf("read %d: offered %d bytes with %d buffers taken; want %d with 1\noffered %v",
				i, r.offered[i], r.taken[i], s.offered, r.offered)
		}
	}
	if out := pools.Out(); sum(out) != 0 {
		t.Fatalf("buffers not given back, by size: %v", out)
	}
}

func sum(counts []int64) int64 {
	var total int64
	for _, c := range counts {
		total += c
	}
	return total
}

func TestBodyCopyFailures(t *testing.T) {
	// Full reads: the copy ends holding the largest buffer.
	var fast []int
	for _, size := range []int{8, 16, 32} {
		for range tusproto.FillsToGrow {
			fast = append(fast, size)
		}
	}
	fast = append(fast, 64)
	fastBytes := int64(tusproto.FillsToGrow*(8+16+32) + 64)
	readFailure := errors.New("client went away")
	writeFailure := errors.New("upstream went away")
	tests := []struct {
		name        string
		script      []int
		readErr     error // after the script
		writer      io.Writer
		wantWritten int64
		wantErr     error
	}{
		{"EOF after a slow body", []int{3, 5}, nil, &bytes.Buffer{}, 8, nil},
		{"read error on the small buffer", []int{3}, readFailure, &bytes.Buffer{}, 3, readFailure},
		{"read error on the large buffer", fast, readFailure, &bytes.Buffer{}, fastBytes, readFailure},
		{"write error", []int{3, 5}, nil, &failingWriter{after: 1, err: writeFailure}, 3, writeFailure},
		{"write error on the large buffer", fast, nil, &failingWriter{after: len(fast) - 1, err: writeFailure},
			fastBytes - 64, writeFailure},
		{"short write", []int{3, 5}, nil, &failingWriter{after: 1, short: true}, 4, io.ErrShortWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := tusproto.NewCopyPools(testSmall, testLarge)
			r := &scriptedReader{data: bytes.Repeat([]byte("x"), 1024), script: tt.script, pools: pools, err: tt.readErr}
			n, err := pools.Copy(tt.writer, r)
			if n != tt.wantWritten || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Copy = %d, %v; want %d, %v", n, err, tt.wantWritten, tt.wantErr)
			}
			if out := pools.Out(); sum(out) != 0 {
				t.Fatalf("buffers not given back, by size: %v", out)
			}
		})
	}
}

// failingWriter accepts after writes, then fails: with err, or by writing
// one byte of the next and no error (a short write).
type failingWriter struct {
	after int
	short bool
	err   error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after > 0 {
		w.after--
		return len(p), nil
	}
	if w.short {
		return 1, nil
	}
	return 0, w.err
}
