package proxy_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/kinescope-tools/tusproxy/proxy"
)

// Buffer sizes of these tests: small enough to write scripts by hand.
const (
	testSmall = 8
	testLarge = 64
)

// scriptedReader returns, for each Read, the next count of its script (at
// most len(p)) from data, and records the length of every p it was offered
// and whether a large buffer was taken at that moment.
type scriptedReader struct {
	data    []byte
	script  []int
	pools   *proxy.CopyPools
	offered []int
	large   []int64
	err     error // returned once the script is done; io.EOF when nil
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	_, large := r.pools.Out()
	r.offered = append(r.offered, len(p))
	r.large = append(r.large, large)
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
	pools := proxy.NewCopyPools(4<<10, 16<<10)
	r := &randomReader{r: bytes.NewReader(data), rng: rng, short: 2 << 10}
	var out bytes.Buffer
	n, err := pools.Copy(&out, r)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Copy = %d, %v; want %d, nil", n, err, len(data))
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the bytes copied differ from the bytes read")
	}
	if small, large := pools.Out(); small != 0 || large != 0 {
		t.Fatalf("buffers not given back: %d small, %d large", small, large)
	}
	if r.switches < 10 {
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

func TestBodyCopyTakesTheLargeBufferOnlyWhileReadsFillTheSmallOne(t *testing.T) {
	fills := proxy.FillsBeforeLarge
	var script, wantOffered []int
	var wantLarge []int64
	read := func(n, offered int, large int64) {
		script = append(script, n)
		wantOffered = append(wantOffered, offered)
		wantLarge = append(wantLarge, large)
	}
	// A backlog of fewer full reads than it takes, then a short read: the
	// small buffer stays.
	for range fills - 1 {
		read(testSmall, testSmall, 0)
	}
	read(3, testSmall, 0)
	// Full reads in a row take the large buffer for the next read.
	for range fills {
		read(testSmall, testSmall, 0)
	}
	read(testLarge, testLarge, 1)
	read(testSmall+1, testLarge, 1) // more than the small one holds: stays large
	read(testSmall, testLarge, 1)   // would have fit: the large one goes back
	read(2, testSmall, 0)

	data := bytes.Repeat([]byte("0123456789abcdef"), 64)
	pools := proxy.NewCopyPools(testSmall, testLarge)
	r := &scriptedReader{data: data, script: script, pools: pools}
	var out bytes.Buffer
	n, err := pools.Copy(&out, r)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range script {
		total += s
	}
	if n != int64(total) || !bytes.Equal(out.Bytes(), data[:total]) {
		t.Fatalf("copied %d bytes (%q); want the first %d of the data", n, out.Bytes(), total)
	}
	for i, want := range wantOffered {
		if r.offered[i] != want || r.large[i] != wantLarge[i] {
			t.Fatalf("read %d: offered %d bytes with %d large buffers taken; want %d with %d\noffered %v",
				i, r.offered[i], r.large[i], want, wantLarge[i], r.offered)
		}
	}
	if small, large := pools.Out(); small != 0 || large != 0 {
		t.Fatalf("buffers not given back: %d small, %d large", small, large)
	}
}

func TestBodyCopyFailures(t *testing.T) {
	// Full reads, then one more than the small buffer holds: the copy ends
	// holding the large buffer.
	var fast []int
	for range proxy.FillsBeforeLarge {
		fast = append(fast, testSmall)
	}
	fast = append(fast, 2*testSmall)
	fastBytes := int64(proxy.FillsBeforeLarge*testSmall + 2*testSmall)
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
		{"write error on the large buffer", fast, nil, &failingWriter{after: proxy.FillsBeforeLarge, err: writeFailure},
			proxy.FillsBeforeLarge * testSmall, writeFailure},
		{"short write", []int{3, 5}, nil, &failingWriter{after: 1, short: true}, 4, io.ErrShortWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := proxy.NewCopyPools(testSmall, testLarge)
			r := &scriptedReader{data: bytes.Repeat([]byte("x"), 1024), script: tt.script, pools: pools, err: tt.readErr}
			n, err := pools.Copy(tt.writer, r)
			if n != tt.wantWritten || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Copy = %d, %v; want %d, %v", n, err, tt.wantWritten, tt.wantErr)
			}
			if small, large := pools.Out(); small != 0 || large != 0 {
				t.Fatalf("buffers not given back: %d small, %d large", small, large)
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
