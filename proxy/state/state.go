// Package state keeps tusproxy's one record per upload: which Kinescope
// video and tus endpoint an upload belongs to, and how many bytes the
// upstream is known to hold.
//
// Every backend implements Store and must pass the contract suite in
// package statetest, so the proxy can rely on the same semantics whether the
// records live in memory (tests, `tusproxy dev`), in a bbolt file (the
// embedded default, one process) or in Redis (OpenRedis), which several
// tusproxy replicas share. Replicas also need a shared upload lock: see
// package proxy/lock/redislock, which can use the Redis store's client.
package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kinescope-tools/tusproxy/internal/storespec"
)

// Record is everything tusproxy knows about one upload.
//
// All fields are plain values, so copying a Record copies everything: stores
// hand out copies and callers never alias stored data.
type Record struct {
	// ID is our upload id; it is URL-safe and appears in the upload URL.
	ID string
	// VideoID is Kinescope's video id, returned by POST /v2/init.
	VideoID string
	// Endpoint is the Kinescope tus endpoint for this upload. It is a
	// secret (it grants write access to the video): never log it, never put
	// it in an error string or a metric.
	Endpoint string
	// Length is the total size of the upload in bytes (Upload-Length).
	Length int64
	// Offset is the number of bytes the upstream holds, as last confirmed.
	Offset int64
	// OffsetUncertain is set when the last PATCH failed and the upstream
	// could not be asked where it stopped: HEAD the upstream before
	// trusting Offset.
	OffsetUncertain bool
	// Metadata is the Upload-Metadata header exactly as the client sent it.
	Metadata string
	// Owner is who created the upload ("" when no auth is configured).
	Owner string
	// ParentID is the Kinescope project or folder the video went to.
	ParentID string
	// ClientIP is the creating client's address as tusproxy resolved it
	// (what Kinescope was told as client_ip); "" when unknown.
	ClientIP string
	// URL is the absolute upload URL answered in Location at creation, so
	// that what happens later without a request (expiry) can still name it.
	URL string
	// Context is the application's context for the upload: the compact
	// bytes of a JSON object (valid UTF-8, at most 4 KiB) that the auth
	// hook or the JWT gave at creation, "" when none. It is never sent to
	// Kinescope; stores keep it byte for byte.
	Context string
	// CreatedAt is when the upload was created.
	CreatedAt time.Time
	// UpdatedAt is the time of the last activity; expiry is measured from
	// it. Stores never set it themselves: the caller does, in Create and in
	// the function it passes to Update.
	UpdatedAt time.Time
}

// Intent is a creation under way, recorded before Kinescope's /v2/init is
// called: if the process dies (or the store fails) between init and storing
// the record, the Kinescope video exists with no record, and the intent left
// behind is how an operator finds it. Create removes the intent with the
// record's id in the same write, so a finished creation leaves none.
//
// Intents live in a keyspace of their own, beside the records and swept on
// their own (SweepIntents), so other companions of a state change, such as
// an outbox of events written with it, can be added the same way.
type Intent struct {
	// ID is the id the upload's record will have.
	ID string
	// VideoID is Kinescope's video id, "" until known: it is set only when
	// init answered but the record could not be stored (SetIntentVideo).
	VideoID string
	// Length is the file size announced to Kinescope, which helps find the
	// video when its id is unknown.
	Length int64
	// CreatedAt is when the creation began; SweepIntents goes by it.
	CreatedAt time.Time
}

// ErrNotFound is returned by Get and Update when no record has the id, and
// by SetIntentVideo when no intent has it.
var ErrNotFound = errors.New("upload not found")

// ErrExists is returned by Create and CreateIntent when the id is already
// taken.
var ErrExists = errors.New("upload already exists")

// ErrClosed is returned by the stores of this package once Close has been
// called.
var ErrClosed = errors.New("state store is closed")

// ErrInUse is returned by OpenBolt when another process holds the file.
var ErrInUse = errors.New("state file is in use by another process")

// errIDChanged guards the primary key: a record must not move to another id
// behind the caller's back, and allowing it would let one upload overwrite
// another.
var errIDChanged = errors.New("state: the function passed to Update must not change Record.ID")

// errEmptyID is returned by Create for a record without an id.
var errEmptyID = errors.New("state: record has an empty ID")

// errBadLimit is returned by Sweep and SweepIntents for a limit below 1.
var errBadLimit = errors.New("state: Sweep limit must be at least 1")

// errEmptyIntentID is returned by CreateIntent for an intent without an id.
var errEmptyIntentID = errors.New("state: intent has an empty ID")

// Store holds upload records. Implementations are safe for concurrent use.
// Every method returns ctx.Err() without doing anything when ctx is already
// done.
type Store interface {
	// Create stores a new record and, in the same atomic write, removes the
	// intent with the same id if there is one: a crash leaves the intent or
	// the record, never both. It returns ErrExists when the id is taken
	// (the intent then stays) and an error when rec.ID is empty.
	//
	// Options add the events of the creation (upload.created) to the same
	// write: WithEvents, or WithEventsFunc, whose before is the zero Record.
	Create(ctx context.Context, rec Record, opts ...WriteOption) error
	// Get returns the record with the id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Update atomically reads the record, lets fn change it and stores the
	// result, which it returns. No other write to the record can happen
	// between the read and the write. An error from fn aborts the update
	// (nothing is stored) and is returned unchanged. fn must not change the
	// ID, must not call the Store, and should be quick: it may run while the
	// store holds a lock, and some backends may run it more than once (a
	// retried optimistic transaction), so it must not have side effects
	// outside the record. Update returns ErrNotFound, without calling fn,
	// when the record does not exist.
	//
	// Options add events to the write. WithEventsFunc computes them from
	// the record before and after fn, in the same attempt (so an event such
	// as upload.completed can depend on what this very update changed: the
	// offset reaching the length), and may run as often as fn. An Update
	// that carries events is durable when it returns (bbolt does not defer
	// it, whatever it changed).
	Update(ctx context.Context, id string, fn func(*Record) error, opts ...WriteOption) (Record, error)
	// Delete removes the record. It is idempotent: deleting a missing
	// record returns nil.
	//
	// Options add events to the write (upload.terminated, upload.failed):
	// they are stored only when this call removes the record, so an upload
	// deleted twice, or swept meanwhile, gets one terminal event.
	// WithEventsFunc gets the record as it was last stored as before.
	Delete(ctx context.Context, id string, opts ...WriteOption) error
	// Sweep deletes and returns up to limit records whose UpdatedAt is
	// strictly before cutoff, oldest first. The limit bounds the work done
	// in one call, so callers sweep repeatedly until fewer than limit
	// records come back. A limit below 1 is an error.
	//
	// WithEventsFunc runs once for each record swept (its before) and its
	// events (upload.expired) are stored in the write that removes the
	// record. WithEvents is an error here. With events, a store may return
	// fewer than limit records while more are due (Redis skips a record
	// written to while it was swept); the next sweep takes them.
	Sweep(ctx context.Context, cutoff time.Time, limit int, opts ...WriteOption) ([]Record, error)
	// CreateIntent durably stores an intent (it is there after a crash once
	// CreateIntent returns). It returns ErrExists when an intent has the id
	// and an error when in.ID is empty.
	CreateIntent(ctx context.Context, in Intent) error
	// SetIntentVideo records the Kinescope video id in an existing intent.
	// It returns ErrNotFound when no intent has the id (the record was
	// stored after all, or the intent was swept): it never creates one.
	SetIntentVideo(ctx context.Context, id, videoID string) error
	// DeleteIntent removes the intent. It is idempotent.
	DeleteIntent(ctx context.Context, id string) error
	// SweepIntents deletes and returns up to limit intents whose CreatedAt
	// is strictly before cutoff, oldest first; like Sweep, callers repeat
	// until fewer than limit come back, and a limit below 1 is an error.
	// Two concurrent calls (two replicas) never return the same intent, so
	// each is reported once. Records are not touched.
	SweepIntents(ctx context.Context, cutoff time.Time, limit int) ([]Intent, error)
	// Outbox holds the events the writes above carried until they are
	// delivered.
	Outbox
	// Ping returns nil when the store answers; readiness checks use it.
	Ping(ctx context.Context) error
	// Close releases the store. Calling Close again returns nil.
	Close() error
}

// Open opens the store described by spec (see package storespec): "memory"
// for an in-memory store, or "bolt:PATH" for a bbolt file at PATH. A Redis
// store needs a context and options: it is opened with OpenRedis.
func Open(spec string) (Store, error) {
	parsed, err := storespec.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("state: store spec %w", err)
	}
	switch parsed.Kind {
	case storespec.Memory:
		return NewMemory(), nil
	case storespec.Bolt:
		b, err := OpenBolt(parsed.Path)
		if err != nil {
			// Return a nil interface, not an interface holding a nil *Bolt.
			return nil, err
		}
		return b, nil
	}
	// The URL is not quoted: it may carry a password.
	return nil, errors.New("state: a Redis store is opened with OpenRedis, not Open")
}
