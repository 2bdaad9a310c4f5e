package kinescopetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/tus/tusd/v2/pkg/handler"
)

// ErrDiscarded is returned by [Emulator.Data] in discard mode
// ([Options.Discard]): the bytes were hashed and dropped, only their SHA-256
// is known.
var ErrDiscarded = errors.New("kinescopetest: upload bytes are not kept in discard mode")

// discardStore is a tusd DataStore that keeps no bytes: per upload only its
// size, its offset and a running SHA-256 of everything written so far. It
// lets a load test push gigabytes through the emulator without the disk, or
// the emulator, being what limits it, while the bytes can still be checked.
// Records live in memory only, so a discard-mode emulator forgets everything
// when it is closed.
type discardStore struct {
	mu      sync.Mutex
	uploads map[string]*discardUpload
}

var (
	_ handler.DataStore           = (*discardStore)(nil)
	_ handler.TerminaterDataStore = (*discardStore)(nil)
)

func newDiscardStore() *discardStore {
	return &discardStore{uploads: make(map[string]*discardUpload)}
}

// discardUpload is one upload of a discardStore. tusd's locker gives an
// upload one writer at a time, but the emulator reads offsets (observe) and
// hashes (SHA256) while a PATCH is being written, hence mu.
type discardUpload struct {
	store *discardStore
	id    string
	size  int64

	mu     sync.Mutex
	offset int64
	hash   hash.Hash
}

var (
	_ handler.Upload             = (*discardUpload)(nil)
	_ handler.TerminatableUpload = (*discardUpload)(nil)
)

// NewUpload records an upload with no bytes.
func (s *discardStore) NewUpload(_ context.Context, info handler.FileInfo) (handler.Upload, error) {
	if info.ID == "" {
		// The emulator always chooses the id (POST /v2/init); tus creation
		// is refused before it reaches the store.
		return nil, errors.New("kinescopetest: discard store needs an upload id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.uploads[info.ID]; exists {
		return nil, fmt.Errorf("kinescopetest: upload id %s already exists", info.ID)
	}
	u := &discardUpload{store: s, id: info.ID, size: info.Size, hash: sha256.New()}
	s.uploads[info.ID] = u
	return u, nil
}

// GetUpload returns the upload, or handler.ErrNotFound as tusd expects.
func (s *discardStore) GetUpload(_ context.Context, id string) (handler.Upload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.uploads[id]
	if !ok {
		return nil, handler.ErrNotFound
	}
	return u, nil
}

// AsTerminatableUpload gives tusd the upload's Terminate (tus termination).
func (s *discardStore) AsTerminatableUpload(upload handler.Upload) handler.TerminatableUpload {
	return upload.(*discardUpload)
}

// sum returns the hex SHA-256 of what the upload has received so far.
func (s *discardStore) sum(id string) (string, error) {
	upload, err := s.GetUpload(context.Background(), id)
	if err != nil {
		return "", err
	}
	return upload.(*discardUpload).sum(), nil
}

// discardBufferSize is the size of the reads WriteChunk makes. Large reads
// keep the per-call cost of the HTTP body reader and the hash small; the
// buffers are pooled, so concurrent uploads share a few of them.
const discardBufferSize = 256 << 10

var discardBuffers = sync.Pool{New: func() any { return new([discardBufferSize]byte) }}

// WriteChunk hashes src to its end. Every byte that is read counts, also
// when src then fails (tusd's body reader turns a vanished client into EOF
// anyway): that is what a real tus server keeps of an interrupted PATCH.
func (u *discardUpload) WriteChunk(_ context.Context, offset int64, src io.Reader) (int64, error) {
	u.mu.Lock()
	current := u.offset
	u.mu.Unlock()
	if offset != current {
		// tusd checks the offset before calling the store; this guards the
		// store's own invariant.
		return 0, handler.ErrMismatchOffset
	}
	buf := discardBuffers.Get().(*[discardBufferSize]byte)
	defer discardBuffers.Put(buf)
	var written int64
	for {
		// Never accept more than the declared size, as tusd's filestore
		// never holds more than Upload-Length either.
		room := u.size - offset - written
		if room <= 0 {
			return written, nil
		}
		n, err := src.Read(buf[:min(int64(len(buf)), room)])
		if n > 0 {
			// Hashing and moving the offset under one lock keeps SHA256 and
			// GetInfo consistent with each other.
			u.mu.Lock()
			u.hash.Write(buf[:n])
			u.offset += int64(n)
			u.mu.Unlock()
			written += int64(n)
		}
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// GetInfo reports the upload's size and offset.
func (u *discardUpload) GetInfo(context.Context) (handler.FileInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return handler.FileInfo{ID: u.id, Size: u.size, Offset: u.offset, MetaData: handler.MetaData{}}, nil
}

// GetReader has nothing to read: the bytes were discarded. The emulator
// disables tus downloads, so tusd never calls it.
func (u *discardUpload) GetReader(context.Context) (io.ReadCloser, error) {
	return nil, ErrDiscarded
}

// FinishUpload has nothing to do: the hash is always up to date.
func (u *discardUpload) FinishUpload(context.Context) error { return nil }

// Terminate forgets the upload (tus termination); later requests get 404.
func (u *discardUpload) Terminate(context.Context) error {
	u.store.mu.Lock()
	defer u.store.mu.Unlock()
	delete(u.store.uploads, u.id)
	return nil
}

func (u *discardUpload) sum() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	// Sum appends to its argument without changing the hash's state, so
	// hashing can go on after it.
	return hex.EncodeToString(u.hash.Sum(nil))
}

// discardedSHA256 is SHA256 in discard mode: the running hash of the upload.
func (e *Emulator) discardedSHA256(id string) (string, error) {
	uploadID, ok := e.uploadIDOf(id)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownVideo, id)
	}
	sum, err := e.discard.sum(uploadID)
	if errors.Is(err, handler.ErrNotFound) {
		return "", fmt.Errorf("%w: video %s", ErrTerminated, id)
	}
	return sum, err
}
