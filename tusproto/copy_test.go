package tusproto_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Smallest and largest buffers of these tests: small enough to write
// scripts by hand.
const (
	testSmall = 8
	testLarge = 64
)

// arrival is what a client sends at once: n bytes, which the copy finds
// waiting (wait false) or waits for (wait true: the clock moves on by a
// second while the read blocks).
type arrival struct {
	n    int
	wait bool
}

// scriptedReader serves data as its script of arrivals says, as a server
// connection's buffered reader does: a read returns what arrived and was
// not read yet, at most len(p), and blocks for the next arrival only when
// nothing is left. It records the length of every p it was offered and how
// many buffers were taken at that moment.
type scriptedReader struct {
	data    []byte
	script  []arrival
	waiting int // bytes arrived and not read yet
	pools   *tusproto.CopyPools
	offered []int
	taken   []int64
	err     error // returned once the script is done; io.EOF when nil
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	r.offered = append(r.offered, len(p))
	r.taken = append(r.taken, sum(r.pools.Out()))
	if r.waiting == 0 {
		if len(r.script) == 0 {
			if r.err != nil {
				return 0, r.err
			}
			return 0, io.EOF
		}
		next := r.script[0]
		r.script = r.script[1:]
		r.waiting = next.n
		if next.wait {
			r.pools.Advance(time.Second)
		}
	}
	n := min(r.waiting, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	r.waiting -= n
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
	// Buffers of 8, 16, 32 and 64 bytes. Each step: the size of the buffer
	// a read is offered, and how many buffers are taken meanwhile.
	type read struct {
		offered int
		taken   int64
	}
	full := func(size, reads int) []read { // reads filling a buffer of size
		steps := make([]read, reads)
		for i := range steps {
			steps[i] = read{size, 1}
		}
		return steps
	}
	grow := tusproto.FillsToGrow
	wait := read{1, 0} // a one-byte read waiting for the client, no buffer taken
	script := []arrival{
		// A slow client, whose writes sometimes arrive in two pieces: the
		// second is waiting when the copy looks, which is not being ahead.
		{3, true}, {5, false}, {3, true}, {5, false},
		{3, true}, {5, true},
		// A client ahead of the copy: after grow one-byte reads in a row
		// that found their byte waiting, the buffer is kept and doubles
		// every grow full reads up to the largest, which stays while reads
		// fill it.
		{8*grow + 8*(grow-1) + (16+32)*grow + 64*2 + 10, false},
		{20, true}, {3, true}, {3, true}, {3, true}, // slow again
		{4, true},
	}
	var want []read
	for range 6 {
		want = append(want, wait, read{7, 1}) // the rest of what arrived, then given back
	}
	for range grow {
		want = append(want, wait, read{7, 1}) // the last of these keeps the buffer
	}
	want = append(want, full(8, grow-1)...)       // and 8 bytes read in all: grow full reads
	want = append(want, full(16, grow)...)        // double it
	want = append(want, full(32, grow)...)        //
	want = append(want, full(64, 2)...)           // the largest is kept
	want = append(want, read{64, 1})              // 10 bytes, which would fit in 32
	want = append(want, read{32, 1})              // 20, more than half: kept
	want = append(want, read{32, 1}, read{16, 1}) // one size down at a time
	want = append(want, read{8, 1})               // a short read on the smallest: caught up
	want = append(want, wait, read{7, 1})
	want = append(want, wait) // the end
	total := 0
	for _, a := range script {
		total += a.n
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
	var got []read
	for i := range r.offered {
		got = append(got, read{r.offered[i], r.taken[i]})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reads (offered, buffers taken):\n got %v\nwant %v", got, want)
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
	// A client ahead of the copy: it ends holding the largest buffer, after
	// 4×grow writes (grow of 8 bytes after a one-byte read, then grow-1 of
	// 8, grow of 16 and of 32, and 64).
	grow := tusproto.FillsToGrow
	fastBytes := int64(8*grow + 8*(grow-1) + (16+32)*grow + 64)
	fast := []arrival{{int(fastBytes), false}}
	fastWrites := 4 * grow
	slow := []arrival{{3, true}, {5, true}}
	readFailure := errors.New("client went away")
	writeFailure := errors.New("upstream went away")
	tests := []struct {
		name        string
		script      []arrival
		readErr     error // after the script
		writer      io.Writer
		wantWritten int64
		wantErr     error
	}{
		{"EOF after a slow body", slow, nil, &bytes.Buffer{}, 8, nil},
		{"read error while waiting", slow[:1], readFailure, &bytes.Buffer{}, 3, readFailure},
		{"read error on the large buffer", fast, readFailure, &bytes.Buffer{}, fastBytes, readFailure},
		{"write error", slow, nil, &failingWriter{after: 1, err: writeFailure}, 3, writeFailure},
		{"write error on the large buffer", fast, nil, &failingWriter{after: fastWrites - 1, err: writeFailure},
			fastBytes - 64, writeFailure},
		{"short write", slow, nil, &failingWriter{after: 1, short: true}, 4, io.ErrShortWrite},
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
