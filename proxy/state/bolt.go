package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ Store = (*Bolt)(nil)

// boltLockTimeout bounds how long OpenBolt waits for the file lock. bbolt
// waits forever by default, which would make a second tusproxy pointed at the
// same file hang silently at start instead of failing with ErrInUse.
const boltLockTimeout = time.Second

// offsetFlushDelay is how long an offset-only update may wait in memory
// before it is committed to the file; it is also the most a crash can take
// back (see Bolt).
const offsetFlushDelay = 100 * time.Millisecond

// Bucket names. A later version that changes the layout of a bucket should
// use a new name and rebuild it from the records, so an old file is never
// misread.
var (
	// uploadsBucket maps an upload id to its JSON-encoded record.
	uploadsBucket = []byte("uploads")
	// expiryBucket indexes the records by UpdatedAt, so Sweep finds the
	// oldest records by walking a cursor from the start instead of
	// decoding every record. Keys are expiryKey(UpdatedAt, ID); values
	// are empty.
	expiryBucket = []byte("uploads_by_updated_at")
	// intentsBucket maps an intent's id to its JSON-encoded Intent.
	intentsBucket = []byte("intents")
	// intentIndexBucket indexes the intents by CreatedAt, as expiryBucket
	// does the records: keys are expiryKey(CreatedAt, ID).
	intentIndexBucket = []byte("intents_by_created_at")
	// The outbox's buckets are described in bolt_outbox.go.
)

// Bolt is a Store kept in a bbolt file: the embedded default, which survives
// restarts and crashes. Only one process can open the file at a time, which
// lets the store keep the newest state of recently changed records in memory
// (the overlay) in front of the file.
//
// Durability. Create, Delete, Sweep and every Update that changes anything
// besides Offset, OffsetUncertain and UpdatedAt return only once their
// change is committed and fsynced: after a crash they are there. An Update
// that changes only those three fields (what a PATCH records when it ends)
// returns at once; its change is visible to every later call of this store
// and reaches the file with the next commit, at most offsetFlushDelay later,
// or at Close. A crash (kill -9, power loss) can therefore leave a record
// with an offset up to offsetFlushDelay old. That is safe because the
// recorded offset is a hint, never the truth: HEAD always asks the upstream
// and corrects the record, and a PATCH at an offset the record does not
// know is refused with 409, after which the client HEADs. In exchange a PATCH
// no longer waits for an fsync (two, with bbolt) before its answer, and
// concurrent writes share commits (BENCHMARKS.md).
//
// All writes go through one committer goroutine, which takes every change
// staged while the previous commit ran and commits them together: a group
// commit without a timer for the writes that wait, so a burst of creations
// costs one fsync per commit, not one each.
type Bolt struct {
	db *bolt.DB

	mu   sync.Mutex
	cond *sync.Cond // signals the committer: work staged, flush due, or closing
	// overlay holds the newest state of every record changed since its
	// last commit, including deletions; the file holds the rest.
	overlay  map[string]*stagedRecord
	dirty    map[string]struct{} // ids in overlay that the next commit writes
	orphans  [][]byte            // expiry keys without a record, for the next commit
	waiters  []chan<- error      // writers waiting for the next commit
	seq      uint64              // numbers the changes, so a commit knows which it wrote
	timer    *time.Timer         // pending flush of deferred changes; nil when none
	due      bool                // the deferred changes are to be committed now
	closing  bool                // Close was called: no new changes
	stopped  chan struct{}       // closed when the committer has exited
	closeErr error               // what the committer's last commits failed with, for Close

	// intentOverlay and intentDirty are overlay and dirty for intents,
	// committed in the same transactions as the records: that is what
	// makes Create's removal of its intent atomic with the record.
	intentOverlay map[string]*stagedIntent
	intentDirty   map[string]struct{}

	// outboxOps are the outbox changes staged for the next commit, in the
	// order they were made (an upload's events are stored in that order);
	// leases are the claims on events, held in memory only (see
	// bolt_outbox.go); pending counts the events in the file.
	outboxOps []outboxOp
	leases    map[string]time.Time
	pending   int
}

// stagedRecord is a record's newest state, not yet in the file.
type stagedRecord struct {
	rec     Record
	value   []byte // rec encoded; nil when deleted
	deleted bool
	seq     uint64
}

// stagedIntent is an intent's newest state, not yet in the file.
type stagedIntent struct {
	in      Intent
	value   []byte // in encoded; nil when deleted
	deleted bool
	seq     uint64
}

// boltInitialMmapSize is how much address space OpenBolt maps for the file
// up front (not memory: only the pages the store touches are ever loaded).
// bbolt otherwise maps the file at the next power of two and remaps it
// whenever a commit outgrows the mapping, and a remap waits for every open
// read transaction and holds off new ones: Create and CreateIntent read the
// file under the store's lock, so every write of the service stopped behind
// the commit that grew the file (issue 15). Beyond this size the file is
// remapped as before, in steps of 1 GiB. 32-bit builds keep bbolt's
// growth: a 1 GiB reservation there could fail for want of address space.
const boltInitialMmapSize = (1 << 30) * (strconv.IntSize / 64)

// boltOptions are the bbolt settings of every state file.
func boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:         boltLockTimeout,
		InitialMmapSize: boltInitialMmapSize,
		// Commits keep bbolt's defaults (fsync on every commit, NoSync
		// false): see Bolt for which changes wait for one.
	}
}

// OpenBolt opens the bbolt file at path, creating it with mode 0600 (the
// records hold upstream endpoints, which are secrets) if it does not exist.
// The directory must exist. When another process holds the file, OpenBolt
// fails after about a second with an error wrapping ErrInUse.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: %w (no lock within %v; is another tusproxy running with the same state file?)",
			path, ErrInUse, boltLockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append([][]byte{uploadsBucket, expiryBucket, intentsBucket, intentIndexBucket}, outboxBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close() // the bucket error is the one worth reporting
		return nil, fmt.Errorf("state: prepare %s: %w", path, err)
	}
	pending, err := countEvents(db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: read the outbox of %s: %w", path, err)
	}
	b := &Bolt{
		db:            db,
		overlay:       make(map[string]*stagedRecord),
		dirty:         make(map[string]struct{}),
		intentOverlay: make(map[string]*stagedIntent),
		intentDirty:   make(map[string]struct{}),
		leases:        make(map[string]time.Time),
		pending:       pending,
		stopped:       make(chan struct{}),
	}
	b.cond = sync.NewCond(&b.mu)
	go b.commitLoop()
	return b, nil
}

// Create implements Store.
func (b *Bolt) Create(ctx context.Context, rec Record, opts ...WriteOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.ID == "" {
		return errEmptyID
	}
	value, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap("create", rec.ID, ErrClosed)
	}
	exists, err := b.existsLocked(rec.ID)
	if err != nil || exists {
		b.mu.Unlock()
		if exists {
			return ErrExists
		}
		return b.wrap("create", rec.ID, err)
	}
	if _, err := b.stageEventsLocked(collectOptions(opts), rec.ID, Record{}, rec); err != nil {
		b.mu.Unlock()
		return err
	}
	// Staged under the same lock as the record, so the same commit writes
	// both; removing an intent that does not exist costs one lookup.
	b.stageIntentLocked(rec.ID, &stagedIntent{in: Intent{ID: rec.ID}, deleted: true})
	committed := b.stageLocked(rec.ID, &stagedRecord{rec: rec, value: value}, true)
	b.mu.Unlock()
	if err := <-committed; err != nil {
		return b.wrap("create", rec.ID, err)
	}
	return nil
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	b.mu.Lock()
	staged, ok := b.overlay[id]
	b.mu.Unlock()
	if ok {
		if staged.deleted {
			return Record{}, ErrNotFound
		}
		// Records hold only values, and staged ones are never changed in
		// place: this is a copy.
		return staged.rec, nil
	}
	// Not staged: the file has the newest state. A change staged from now
	// on is newer than this read, which is fine.
	rec, err := b.load(id)
	if err == nil || errors.Is(err, ErrNotFound) {
		return rec, err
	}
	return Record{}, b.wrap("get", id, err)
}

// Update implements Store. fn runs under the store's lock, which every write
// takes: that is the atomicity. An update that changes only Offset,
// OffsetUncertain and UpdatedAt, and carries no event, is committed later
// (see Bolt); any other waits for its commit.
func (b *Bolt) Update(ctx context.Context, id string, fn func(*Record) error, opts ...WriteOption) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return Record{}, b.wrap("update", id, ErrClosed)
	}
	old, err := b.currentLocked(id)
	if err != nil {
		b.mu.Unlock()
		if errors.Is(err, ErrNotFound) {
			return Record{}, err
		}
		return Record{}, b.wrap("update", id, err)
	}
	rec := old
	if err := fn(&rec); err != nil {
		b.mu.Unlock()
		return Record{}, err // the contract: fn's error comes back unchanged
	}
	if rec.ID != id {
		b.mu.Unlock()
		return Record{}, errIDChanged
	}
	value, err := encodeRecord(rec)
	if err != nil {
		b.mu.Unlock()
		return Record{}, err
	}
	// An update that stores an event is not deferred: the event must be
	// as durable as Update's return says. One whose events func finds
	// nothing to say (most of a PATCH's progress) still is.
	events, err := b.stageEventsLocked(collectOptions(opts), id, old, rec)
	if err != nil {
		b.mu.Unlock()
		return Record{}, err
	}
	wait := !onlyOffsetChanged(old, rec) || events > 0
	committed := b.stageLocked(id, &stagedRecord{rec: rec, value: value}, wait)
	b.mu.Unlock()
	if !wait {
		return rec, nil
	}
	if err := <-committed; err != nil {
		return Record{}, b.wrap("update", id, err)
	}
	return rec, nil
}

// onlyOffsetChanged reports whether next differs from old in Offset,
// OffsetUncertain and UpdatedAt only: the fields a PATCH records, whose
// commit may be deferred.
func onlyOffsetChanged(old, next Record) bool {
	old.Offset, old.OffsetUncertain, old.UpdatedAt = next.Offset, next.OffsetUncertain, next.UpdatedAt
	return old == next
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, id string, opts ...WriteOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap("delete", id, ErrClosed)
	}
	if o := collectOptions(opts); o.any() {
		// The events are computed from the record, so it must be read:
		// unlike a plain Delete, this one fails on a record it cannot
		// decode.
		old, err := b.currentLocked(id)
		if err == nil {
			_, err = b.stageEventsLocked(o, id, old, Record{})
		}
		if err != nil {
			b.mu.Unlock()
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return b.wrap("delete", id, err)
		}
		return b.commitDelete(id)
	}
	// A record staged as deleted is deleted again: this caller too returns
	// once the deletion is in the file.
	if _, staged := b.overlay[id]; !staged {
		// A record that cannot be decoded is still deleted, so an operator
		// can always get rid of it: only its presence is checked.
		var present bool
		err := b.db.View(func(tx *bolt.Tx) error {
			uploads, _ := buckets(tx)
			present = uploads.Get([]byte(id)) != nil
			return nil
		})
		if err != nil || !present {
			b.mu.Unlock()
			if err != nil {
				return b.wrap("delete", id, err)
			}
			return nil
		}
	}
	return b.commitDelete(id)
}

// commitDelete stages the deletion of the record and waits for its commit;
// the caller holds b.mu, which it releases.
func (b *Bolt) commitDelete(id string) error {
	committed := b.stageLocked(id, &stagedRecord{rec: Record{ID: id}, deleted: true}, true)
	b.mu.Unlock()
	if err := <-committed; err != nil {
		return b.wrap("delete", id, err)
	}
	return nil
}

// Sweep implements Store. It walks the expiry index from the oldest entry, so
// one call costs time in proportion to limit, not to the number of records;
// records staged in the overlay are judged by their newest state.
func (b *Bolt) Sweep(ctx context.Context, cutoff time.Time, limit int, opts ...WriteOption) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	o := collectOptions(opts)
	if len(o.fixed) > 0 {
		return nil, errFixedSweepEvents
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil, b.wrap("sweep", "", ErrClosed)
	}
	var swept []Record
	var orphans [][]byte
	err := b.db.View(func(tx *bolt.Tx) error {
		uploads, expiry := buckets(tx)
		cutoffPrefix := expiryKey(cutoff, "")
		cursor := expiry.Cursor()
		for key, _ := cursor.First(); key != nil && len(swept) < limit; key, _ = cursor.Next() {
			// Times beyond the int64 nanosecond range share a clamped prefix,
			// so an equal prefix is decided below on the real UpdatedAt.
			if bytes.Compare(key[:len(cutoffPrefix)], cutoffPrefix) > 0 {
				break
			}
			id := string(key[len(cutoffPrefix):])
			if _, staged := b.overlay[id]; staged {
				continue // judged below by its newest state
			}
			value := uploads.Get([]byte(id))
			if value == nil {
				// Left behind by Delete of an undecodable record.
				orphans = append(orphans, bytes.Clone(key))
				continue
			}
			rec, err := decodeRecord(id, value)
			if err != nil {
				return err
			}
			if rec.UpdatedAt.Before(cutoff) {
				swept = append(swept, rec)
			}
		}
		return nil
	})
	if err != nil {
		b.mu.Unlock()
		return nil, b.wrap("sweep", "", err)
	}
	for _, staged := range b.overlay {
		if !staged.deleted && staged.rec.UpdatedAt.Before(cutoff) {
			swept = append(swept, staged.rec)
		}
	}
	// Oldest first, in index order (which breaks ties by id).
	slices.SortFunc(swept, func(x, y Record) int {
		return bytes.Compare(expiryKey(x.UpdatedAt, x.ID), expiryKey(y.UpdatedAt, y.ID))
	})
	swept = swept[:min(len(swept), limit)]
	if len(swept) == 0 && len(orphans) == 0 {
		b.mu.Unlock()
		return nil, nil
	}
	// Every record's events first: an error must leave nothing staged.
	var events []Event
	for _, rec := range swept {
		more, err := o.events(rec.ID, rec, Record{})
		if err != nil {
			b.mu.Unlock()
			return nil, err
		}
		events = append(events, more...)
	}
	if err := b.stageEventListLocked(events); err != nil {
		b.mu.Unlock()
		return nil, b.wrap("sweep", "", err)
	}
	b.orphans = append(b.orphans, orphans...)
	for _, rec := range swept {
		b.stageLocked(rec.ID, &stagedRecord{rec: Record{ID: rec.ID}, deleted: true}, false)
	}
	committed := b.waitLocked()
	b.mu.Unlock()
	if err := <-committed; err != nil {
		return nil, b.wrap("sweep", "", err)
	}
	if len(swept) == 0 {
		return nil, nil
	}
	return swept, nil
}

// CreateIntent implements Store. It returns once the intent is committed.
func (b *Bolt) CreateIntent(ctx context.Context, in Intent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.ID == "" {
		return errEmptyIntentID
	}
	value, err := encodeIntent(in)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap("create intent", in.ID, ErrClosed)
	}
	_, err = b.currentIntentLocked(in.ID)
	if err == nil || !errors.Is(err, ErrNotFound) {
		b.mu.Unlock()
		if err == nil {
			return ErrExists
		}
		return b.wrap("create intent", in.ID, err)
	}
	b.stageIntentLocked(in.ID, &stagedIntent{in: in, value: value})
	return b.commitIntent("create intent", in.ID)
}

// SetIntentVideo implements Store. It returns once the change is committed.
func (b *Bolt) SetIntentVideo(ctx context.Context, id, videoID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap("set intent video", id, ErrClosed)
	}
	in, err := b.currentIntentLocked(id)
	if err != nil {
		b.mu.Unlock()
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return b.wrap("set intent video", id, err)
	}
	in.VideoID = videoID
	value, err := encodeIntent(in)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	b.stageIntentLocked(id, &stagedIntent{in: in, value: value})
	return b.commitIntent("set intent video", id)
}

// DeleteIntent implements Store. It returns once the removal is committed.
func (b *Bolt) DeleteIntent(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap("delete intent", id, ErrClosed)
	}
	b.stageIntentLocked(id, &stagedIntent{in: Intent{ID: id}, deleted: true})
	return b.commitIntent("delete intent", id)
}

// commitIntent waits for the commit of an intent change staged by the
// caller, who holds b.mu; it releases it.
func (b *Bolt) commitIntent(op, id string) error {
	committed := b.waitLocked()
	b.mu.Unlock()
	if err := <-committed; err != nil {
		return b.wrap(op, id, err)
	}
	return nil
}

// SweepIntents implements Store, walking the intents' index like Sweep.
func (b *Bolt) SweepIntents(ctx context.Context, cutoff time.Time, limit int) ([]Intent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil, b.wrap("sweep intents", "", ErrClosed)
	}
	var swept []Intent
	err := b.db.View(func(tx *bolt.Tx) error {
		intents, index := tx.Bucket(intentsBucket), tx.Bucket(intentIndexBucket)
		cutoffPrefix := expiryKey(cutoff, "")
		cursor := index.Cursor()
		for key, _ := cursor.First(); key != nil && len(swept) < limit; key, _ = cursor.Next() {
			if bytes.Compare(key[:len(cutoffPrefix)], cutoffPrefix) > 0 {
				break
			}
			id := string(key[len(cutoffPrefix):])
			if _, staged := b.intentOverlay[id]; staged {
				continue // judged below by its newest state
			}
			value := intents.Get([]byte(id))
			if value == nil {
				continue // commit keeps the index in step; nothing to report
			}
			in, err := decodeIntent(id, value)
			if err != nil {
				return err
			}
			if in.CreatedAt.Before(cutoff) {
				swept = append(swept, in)
			}
		}
		return nil
	})
	if err != nil {
		b.mu.Unlock()
		return nil, b.wrap("sweep intents", "", err)
	}
	for _, staged := range b.intentOverlay {
		if !staged.deleted && staged.in.CreatedAt.Before(cutoff) {
			swept = append(swept, staged.in)
		}
	}
	slices.SortFunc(swept, func(x, y Intent) int {
		return bytes.Compare(expiryKey(x.CreatedAt, x.ID), expiryKey(y.CreatedAt, y.ID))
	})
	swept = swept[:min(len(swept), limit)]
	if len(swept) == 0 {
		b.mu.Unlock()
		return nil, nil
	}
	for _, in := range swept {
		b.stageIntentLocked(in.ID, &stagedIntent{in: Intent{ID: in.ID}, deleted: true})
	}
	if err := b.commitIntent("sweep intents", ""); err != nil {
		return nil, err
	}
	return swept, nil
}

// Ping implements Store. A local file has no network to fail; what Ping
// catches is a closed store or a file whose buckets have gone.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing {
		return b.wrap("ping", "", ErrClosed)
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(uploadsBucket) == nil || tx.Bucket(expiryBucket) == nil {
			return errors.New("buckets missing")
		}
		return nil
	})
	if err != nil {
		return b.wrap("ping", "", err)
	}
	return nil
}

// Close implements Store. It commits every change still in memory, then
// releases the file lock.
func (b *Bolt) Close() error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	b.cond.Signal()
	b.mu.Unlock()
	<-b.stopped
	err := b.closeErr
	if cerr := b.db.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("state: close %s: %w", b.db.Path(), err)
	}
	return nil
}

// existsLocked reports whether a record with the id exists, staged or in
// the file (decodable or not).
func (b *Bolt) existsLocked(id string) (bool, error) {
	if staged, ok := b.overlay[id]; ok {
		return !staged.deleted, nil
	}
	var exists bool
	err := b.db.View(func(tx *bolt.Tx) error {
		uploads, _ := buckets(tx)
		exists = uploads.Get([]byte(id)) != nil
		return nil
	})
	return exists, err
}

// currentLocked returns the newest state of the record: staged, or read
// from the file.
func (b *Bolt) currentLocked(id string) (Record, error) {
	if staged, ok := b.overlay[id]; ok {
		if staged.deleted {
			return Record{}, ErrNotFound
		}
		return staged.rec, nil
	}
	return b.load(id)
}

// currentIntentLocked returns the newest state of the intent: staged, or
// read from the file.
func (b *Bolt) currentIntentLocked(id string) (Intent, error) {
	if staged, ok := b.intentOverlay[id]; ok {
		if staged.deleted {
			return Intent{}, ErrNotFound
		}
		return staged.in, nil
	}
	var in Intent
	err := b.db.View(func(tx *bolt.Tx) error {
		value := tx.Bucket(intentsBucket).Get([]byte(id))
		if value == nil {
			return ErrNotFound
		}
		var err error
		in, err = decodeIntent(id, value)
		return err
	})
	return in, err
}

// stageIntentLocked makes staged the newest state of the intent, for the
// next commit, which the caller starts (waitLocked).
func (b *Bolt) stageIntentLocked(id string, staged *stagedIntent) {
	b.seq++
	staged.seq = b.seq
	b.intentOverlay[id] = staged
	b.intentDirty[id] = struct{}{}
}

// load reads a record from the file.
func (b *Bolt) load(id string) (Record, error) {
	var rec Record
	err := b.db.View(func(tx *bolt.Tx) error {
		uploads, _ := buckets(tx)
		value := uploads.Get([]byte(id))
		if value == nil {
			return ErrNotFound
		}
		var err error
		rec, err = decodeRecord(id, value)
		return err
	})
	return rec, err
}

// stageLocked makes staged the newest state of the record, for the next
// commit. When wait is true it returns a channel that gets the outcome of
// that commit, and the commit starts at once; otherwise the change waits up
// to offsetFlushDelay for a commit and the channel is nil.
func (b *Bolt) stageLocked(id string, staged *stagedRecord, wait bool) <-chan error {
	b.seq++
	staged.seq = b.seq
	b.overlay[id] = staged
	b.dirty[id] = struct{}{}
	if wait {
		return b.waitLocked()
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(offsetFlushDelay, func() {
			b.mu.Lock()
			b.due = true
			b.cond.Signal()
			b.mu.Unlock()
		})
	}
	return nil
}

// waitLocked registers a writer for the next commit, which starts at once.
func (b *Bolt) waitLocked() <-chan error {
	committed := make(chan error, 1)
	b.waiters = append(b.waiters, committed)
	b.cond.Signal()
	return committed
}

// stagedChange is a staged record as a commit writes it.
type stagedChange struct {
	id string
	*stagedRecord
}

// stagedIntentChange is a staged intent as a commit writes it.
type stagedIntentChange struct {
	id string
	*stagedIntent
}

// commitLoop is the committer: it commits whatever was staged while the
// previous commit ran, as soon as a writer waits for it (no timer: under
// load, commits follow each other and each takes everything that queued
// meanwhile), or offsetFlushDelay after a deferred change, or at Close.
func (b *Bolt) commitLoop() {
	defer close(b.stopped)
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for len(b.waiters) == 0 && !b.due && !b.closing {
			b.cond.Wait()
		}
		if b.closing && len(b.waiters) == 0 && len(b.dirty) == 0 && len(b.intentDirty) == 0 && len(b.orphans) == 0 &&
			len(b.outboxOps) == 0 {
			if b.timer != nil {
				b.timer.Stop()
				b.timer = nil
			}
			return
		}
		changes := make([]stagedChange, 0, len(b.dirty))
		for id := range b.dirty {
			changes = append(changes, stagedChange{id, b.overlay[id]})
		}
		intentChanges := make([]stagedIntentChange, 0, len(b.intentDirty))
		for id := range b.intentDirty {
			intentChanges = append(intentChanges, stagedIntentChange{id, b.intentOverlay[id]})
		}
		orphans, waiters, ops := b.orphans, b.waiters, b.outboxOps
		b.dirty, b.orphans, b.waiters, b.due, b.outboxOps = make(map[string]struct{}), nil, nil, false, nil
		if len(intentChanges) > 0 {
			b.intentDirty = make(map[string]struct{})
		}
		if b.timer != nil {
			b.timer.Stop()
			b.timer = nil
		}
		b.mu.Unlock()

		added, err := b.commit(changes, intentChanges, orphans, ops)

		b.mu.Lock()
		if err == nil {
			b.pending += added
		}
		for _, c := range changes {
			// A change staged during the commit is newer: it stays.
			if staged := b.overlay[c.id]; staged != nil && staged.seq == c.seq {
				delete(b.overlay, c.id)
			}
		}
		for _, c := range intentChanges {
			if staged := b.intentOverlay[c.id]; staged != nil && staged.seq == c.seq {
				delete(b.intentOverlay, c.id)
			}
		}
		if err != nil && b.closing {
			b.closeErr = errors.Join(b.closeErr, err)
		}
		// A failed commit dropped its changes from the overlay above: the
		// file's state is the truth again, and the writers that waited are
		// told. Deferred offsets in it are lost, as in a crash.
		for _, w := range waiters {
			w <- err
		}
	}
}

// commit writes the changes in one bbolt transaction, fsynced. It returns
// how many events the outbox gained (negative: lost).
func (b *Bolt) commit(changes []stagedChange, intentChanges []stagedIntentChange, orphans [][]byte, ops []outboxOp) (int, error) {
	if len(changes) == 0 && len(intentChanges) == 0 && len(orphans) == 0 && len(ops) == 0 {
		return 0, nil
	}
	var added int
	err := b.db.Update(func(tx *bolt.Tx) error {
		added = 0 // bbolt may not retry, but a value from a failed attempt must not count
		uploads, expiry := buckets(tx)
		for _, c := range changes {
			key := []byte(c.id)
			// The stored version's index entry; a record that cannot be
			// decoded keeps its entry, which Sweep drops when it reaches it.
			var oldIndex []byte
			if value := uploads.Get(key); value != nil {
				if old, err := decodeRecord(c.id, value); err == nil {
					oldIndex = expiryKey(old.UpdatedAt, c.id)
				}
			}
			var newIndex []byte
			if !c.deleted {
				newIndex = expiryKey(c.rec.UpdatedAt, c.id)
			}
			if oldIndex != nil && !bytes.Equal(oldIndex, newIndex) {
				if err := expiry.Delete(oldIndex); err != nil {
					return err
				}
			}
			if c.deleted {
				if err := uploads.Delete(key); err != nil {
					return err
				}
				continue
			}
			if err := uploads.Put(key, c.value); err != nil {
				return err
			}
			if err := expiry.Put(newIndex, nil); err != nil {
				return err
			}
		}
		for _, key := range orphans {
			if err := expiry.Delete(key); err != nil {
				return err
			}
		}
		if err := commitIntents(tx, intentChanges); err != nil {
			return err
		}
		var err error
		added, err = commitOutbox(tx, ops)
		return err
	})
	return added, err
}

// commitIntents writes the intent changes of a commit, keeping the intents'
// index in step.
func commitIntents(tx *bolt.Tx, changes []stagedIntentChange) error {
	intents, index := tx.Bucket(intentsBucket), tx.Bucket(intentIndexBucket)
	for _, c := range changes {
		key := []byte(c.id)
		value := intents.Get(key)
		if value == nil && c.deleted {
			continue // the common case: a Create whose upload had no intent
		}
		var oldIndex []byte
		if value != nil {
			if old, err := decodeIntent(c.id, value); err == nil {
				oldIndex = expiryKey(old.CreatedAt, c.id)
			}
		}
		var newIndex []byte
		if !c.deleted {
			newIndex = expiryKey(c.in.CreatedAt, c.id)
		}
		if oldIndex != nil && !bytes.Equal(oldIndex, newIndex) {
			if err := index.Delete(oldIndex); err != nil {
				return err
			}
		}
		if c.deleted {
			if err := intents.Delete(key); err != nil {
				return err
			}
			continue
		}
		if err := intents.Put(key, c.value); err != nil {
			return err
		}
		if err := index.Put(newIndex, nil); err != nil {
			return err
		}
	}
	return nil
}

// wrap turns a bbolt or decoding error into one that names the operation and
// the upload, and maps a closed database to ErrClosed.
func (b *Bolt) wrap(op, id string, err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	if id == "" {
		return fmt.Errorf("state: %s: %w", op, err)
	}
	return fmt.Errorf("state: %s %s: %w", op, id, err)
}

// buckets returns the two buckets OpenBolt created.
func buckets(tx *bolt.Tx) (uploads, expiry *bolt.Bucket) {
	return tx.Bucket(uploadsBucket), tx.Bucket(expiryBucket)
}

// recordFormat is the version written into every stored record. Bump it when
// the encoding changes in a way an older reader would misread, and teach
// decodeRecord to migrate the older versions.
//
// Adding an optional field does not bump it: an older reader skips a JSON
// field it does not know, and this one reads a record without the field as
// the zero value. So ParentID, ClientIP, URL and Context (issue 13) are
// format 1 still, and during a rolling upgrade replicas of both versions
// keep reading each other's records from Redis (a bumped format would make
// the older ones refuse every upload the newer ones create). The price: a
// record an older version rewrites loses the fields it does not know.
const recordFormat = 1

// storedRecord is the JSON form of a Record in the bbolt file. It is its own
// type, with explicit names, so renaming a Go field never silently changes
// the file format.
type storedRecord struct {
	Format          int       `json:"format"`
	ID              string    `json:"id"`
	VideoID         string    `json:"video_id"`
	Endpoint        string    `json:"endpoint"`
	Length          int64     `json:"length"`
	Offset          int64     `json:"offset"`
	OffsetUncertain bool      `json:"offset_uncertain"`
	Metadata        string    `json:"metadata"`
	Owner           string    `json:"owner"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	// Added in issue 13, optional (see recordFormat). Context is kept as a
	// JSON string, not embedded as raw JSON, so its bytes come back exactly
	// as stored whatever encoding/json does to raw messages.
	ParentID string `json:"parent_id,omitempty"`
	ClientIP string `json:"client_ip,omitempty"`
	URL      string `json:"url,omitempty"`
	Context  string `json:"context,omitempty"`
}

func encodeRecord(rec Record) ([]byte, error) {
	value, err := json.Marshal(storedRecord{
		Format:          recordFormat,
		ID:              rec.ID,
		VideoID:         rec.VideoID,
		Endpoint:        rec.Endpoint,
		Length:          rec.Length,
		Offset:          rec.Offset,
		OffsetUncertain: rec.OffsetUncertain,
		Metadata:        rec.Metadata,
		Owner:           rec.Owner,
		CreatedAt:       rec.CreatedAt,
		UpdatedAt:       rec.UpdatedAt,
		ParentID:        rec.ParentID,
		ClientIP:        rec.ClientIP,
		URL:             rec.URL,
		Context:         rec.Context,
	})
	if err != nil {
		// json only fails here on a time outside years 0-9999; the message
		// names the time, never the endpoint.
		return nil, fmt.Errorf("state: encode record %s: %w", rec.ID, err)
	}
	return value, nil
}

func decodeRecord(id string, value []byte) (Record, error) {
	var stored storedRecord
	if err := json.Unmarshal(value, &stored); err != nil {
		return Record{}, fmt.Errorf("state: decode record %s: %w", id, err)
	}
	if stored.Format != recordFormat {
		return Record{}, fmt.Errorf("state: record %s has format %d, this tusproxy reads format %d",
			id, stored.Format, recordFormat)
	}
	return Record{
		ID:              stored.ID,
		VideoID:         stored.VideoID,
		Endpoint:        stored.Endpoint,
		Length:          stored.Length,
		Offset:          stored.Offset,
		OffsetUncertain: stored.OffsetUncertain,
		Metadata:        stored.Metadata,
		Owner:           stored.Owner,
		CreatedAt:       stored.CreatedAt,
		UpdatedAt:       stored.UpdatedAt,
		ParentID:        stored.ParentID,
		ClientIP:        stored.ClientIP,
		URL:             stored.URL,
		Context:         stored.Context,
	}, nil
}

// intentFormat is recordFormat for intents.
const intentFormat = 1

// storedIntent is the JSON form of an Intent, in the bbolt file and in
// Redis.
type storedIntent struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	VideoID   string    `json:"video_id"`
	Length    int64     `json:"length"`
	CreatedAt time.Time `json:"created_at"`
}

func encodeIntent(in Intent) ([]byte, error) {
	value, err := json.Marshal(storedIntent{Format: intentFormat, ID: in.ID, VideoID: in.VideoID, Length: in.Length, CreatedAt: in.CreatedAt})
	if err != nil {
		return nil, fmt.Errorf("state: encode intent %s: %w", in.ID, err)
	}
	return value, nil
}

func decodeIntent(id string, value []byte) (Intent, error) {
	var stored storedIntent
	if err := json.Unmarshal(value, &stored); err != nil {
		return Intent{}, fmt.Errorf("state: decode intent %s: %w", id, err)
	}
	if stored.Format != intentFormat {
		return Intent{}, fmt.Errorf("state: intent %s has format %d, this tusproxy reads format %d",
			id, stored.Format, intentFormat)
	}
	return Intent{ID: stored.ID, VideoID: stored.VideoID, Length: stored.Length, CreatedAt: stored.CreatedAt}, nil
}

// The int64 nanosecond range: times outside it cannot be written as
// UnixNano and are clamped to its ends in the expiry index.
var (
	minIndexTime = time.Unix(0, math.MinInt64)
	maxIndexTime = time.Unix(0, math.MaxInt64)
)

// expiryKey is the index key of a record: UpdatedAt as 8 big-endian bytes
// that sort in time order, then the id, which makes the key unique.
func expiryKey(updatedAt time.Time, id string) []byte {
	var nanos int64
	switch {
	case updatedAt.Before(minIndexTime):
		nanos = math.MinInt64
	case updatedAt.After(maxIndexTime):
		nanos = math.MaxInt64
	default:
		nanos = updatedAt.UnixNano()
	}
	key := make([]byte, 8, 8+len(id))
	// Flipping the sign bit makes negative times (before 1970) sort before
	// positive ones under unsigned byte comparison.
	binary.BigEndian.PutUint64(key, uint64(nanos)^(1<<63))
	return append(key, id...)
}
