package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ Store = (*Bolt)(nil)

// boltLockTimeout bounds how long OpenBolt waits for the file lock. bbolt
// waits forever by default, which would make a second tusproxy pointed at the
// same file hang silently at start instead of failing with ErrInUse.
const boltLockTimeout = time.Second

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
)

// Bolt is a Store kept in a bbolt file: the embedded default, which survives
// restarts and crashes. Every write is one bbolt transaction and is fsynced
// before it returns, so an offset recorded before a crash is there after the
// restart. Only one process can open the file at a time.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens the bbolt file at path, creating it with mode 0600 (the
// records hold upstream endpoints, which are secrets) if it does not exist.
// The directory must exist. When another process holds the file, OpenBolt
// fails after about a second with an error wrapping ErrInUse.
func OpenBolt(path string) (*Bolt, error) {
	// Writes keep bbolt's defaults (fsync on every commit, NoSync false):
	// durability of the recorded offsets is the point of this store.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltLockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: %w (no lock within %v; is another tusproxy running with the same state file?)",
			path, ErrInUse, boltLockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{uploadsBucket, expiryBucket} {
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
	// A lone creation waits at most this long for others to share its
	// fsync; bbolt's default of 10 ms would add that to every creation.
	db.MaxBatchDelay = time.Millisecond
	return &Bolt{db: db}, nil
}

// Create implements Store.
func (b *Bolt) Create(ctx context.Context, rec Record) error {
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
	// Creations go through bbolt's Batch: under a burst of creations many
	// share one transaction and one fsync instead of queueing for one each
	// (measured in BENCHMARKS.md). The function may run more than once, and
	// is written so that this is harmless.
	err = b.db.Batch(func(tx *bolt.Tx) error {
		uploads, expiry := buckets(tx)
		if uploads.Get([]byte(rec.ID)) != nil {
			return ErrExists
		}
		if err := uploads.Put([]byte(rec.ID), value); err != nil {
			return err
		}
		return expiry.Put(expiryKey(rec.UpdatedAt, rec.ID), nil)
	})
	if err == nil || errors.Is(err, ErrExists) {
		return err
	}
	return b.wrap("create", rec.ID, err)
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
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
	if err == nil || errors.Is(err, ErrNotFound) {
		return rec, err
	}
	return Record{}, b.wrap("get", id, err)
}

// Update implements Store. fn runs inside a bbolt write transaction, which
// bbolt serialises with every other write: that is the atomicity.
func (b *Bolt) Update(ctx context.Context, id string, fn func(*Record) error) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	var (
		rec   Record
		fnErr error
	)
	err := b.db.Update(func(tx *bolt.Tx) error {
		uploads, expiry := buckets(tx)
		value := uploads.Get([]byte(id))
		if value == nil {
			return ErrNotFound
		}
		old, err := decodeRecord(id, value)
		if err != nil {
			return err
		}
		rec = old
		if fnErr = fn(&rec); fnErr != nil {
			return fnErr
		}
		if rec.ID != id {
			return errIDChanged
		}
		value, err = encodeRecord(rec)
		if err != nil {
			return err
		}
		if err := uploads.Put([]byte(id), value); err != nil {
			return err
		}
		oldKey, newKey := expiryKey(old.UpdatedAt, id), expiryKey(rec.UpdatedAt, id)
		if bytes.Equal(oldKey, newKey) {
			return nil
		}
		if err := expiry.Delete(oldKey); err != nil {
			return err
		}
		return expiry.Put(newKey, nil)
	})
	switch {
	case fnErr != nil:
		return Record{}, fnErr // the contract: fn's error comes back unchanged
	case errors.Is(err, ErrNotFound) || errors.Is(err, errIDChanged):
		return Record{}, err
	case err != nil:
		return Record{}, b.wrap("update", id, err)
	}
	return rec, nil
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		uploads, expiry := buckets(tx)
		value := uploads.Get([]byte(id))
		if value == nil {
			return nil
		}
		// A record that cannot be decoded is still deleted, so an operator
		// can always get rid of it; its index entry then stays behind and
		// Sweep drops it when it reaches it.
		if rec, err := decodeRecord(id, value); err == nil {
			if err := expiry.Delete(expiryKey(rec.UpdatedAt, id)); err != nil {
				return err
			}
		}
		return uploads.Delete([]byte(id))
	})
	if err != nil {
		return b.wrap("delete", id, err)
	}
	return nil
}

// Sweep implements Store. It walks the expiry index from the oldest entry, so
// one call costs time in proportion to limit, not to the number of records,
// and its write transaction stays short.
func (b *Bolt) Sweep(ctx context.Context, cutoff time.Time, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	var swept []Record
	err := b.db.Update(func(tx *bolt.Tx) error {
		uploads, expiry := buckets(tx)
		cutoffPrefix := expiryKey(cutoff, "")
		// Keys are collected first and deleted after the walk: deleting
		// under a bbolt cursor can make Next skip entries.
		var doomed [][]byte
		cursor := expiry.Cursor()
		for key, _ := cursor.First(); key != nil && len(swept) < limit; key, _ = cursor.Next() {
			// Times beyond the int64 nanosecond range share a clamped prefix,
			// so an equal prefix is decided below on the real UpdatedAt.
			if bytes.Compare(key[:len(cutoffPrefix)], cutoffPrefix) > 0 {
				break
			}
			id := string(key[len(cutoffPrefix):])
			value := uploads.Get([]byte(id))
			if value == nil {
				// Left behind by Delete of an undecodable record.
				doomed = append(doomed, bytes.Clone(key))
				continue
			}
			rec, err := decodeRecord(id, value)
			if err != nil {
				return err
			}
			if !rec.UpdatedAt.Before(cutoff) {
				continue
			}
			swept = append(swept, rec)
			doomed = append(doomed, bytes.Clone(key))
		}
		for _, key := range doomed {
			if err := expiry.Delete(key); err != nil {
				return err
			}
			if err := uploads.Delete(key[len(cutoffPrefix):]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, b.wrap("sweep", "", err)
	}
	return swept, nil
}

// Ping implements Store. A local file has no network to fail; what Ping
// catches is a closed store or a file whose buckets have gone.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
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

// Close implements Store. It releases the file lock.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", b.db.Path(), err)
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
	}, nil
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
