package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox in the bbolt file. Events are numbered by the outbox bucket's
// sequence in the order they are committed, which is the order they were
// staged: an upload's events are numbered in the order they were stored.
//
//	outbox                    seq (8 bytes, big-endian) -> the event as JSON
//	outbox_ids                event id -> seq
//	outbox_by_upload          uploadKey(upload id, seq) -> empty: each
//	                          upload's events in order, the first its head
//	outbox_due                dueKey(event, seq) -> empty, for the heads only:
//	                          first the never-scheduled ones by CreatedAt,
//	                          then the scheduled ones by NextAt
//	outbox_by_created_at      expiryKey(CreatedAt, "") + seq -> empty, for
//	                          OutboxStats' oldest event
//
// Claims walk outbox_due from its start, so one costs time in proportion to
// its limit (plus the heads leased at the moment), not to the number of
// pending events. Leases live in memory only: one process holds the file,
// and when it stops, its leases should end with it, so a restart delivers
// at once what was in flight. Appends are committed with the record change
// that carries them, in the same transaction; AckEvent and RetryEvent wait
// for their commit (group commit shares it among concurrent deliveries).
var (
	outboxBucket         = []byte("outbox")
	outboxIDsBucket      = []byte("outbox_ids")
	outboxByUploadBucket = []byte("outbox_by_upload")
	outboxDueBucket      = []byte("outbox_due")
	outboxCreatedBucket  = []byte("outbox_by_created_at")
	outboxBuckets        = [][]byte{outboxBucket, outboxIDsBucket, outboxByUploadBucket, outboxDueBucket, outboxCreatedBucket}
)

// outboxOp is an outbox change staged for the next commit.
type outboxOp struct {
	kind  outboxOpKind
	ev    Event  // opAppend: the event
	value []byte // opAppend: ev encoded
	id    string // opAck, opRetry: the event's id
	next  time.Time
}

type outboxOpKind int

const (
	opAppend outboxOpKind = iota + 1
	opAck
	opRetry
)

// heldForCommit is the lease of an event whose ack or retry is being
// committed: no claim takes it meanwhile.
var heldForCommit = time.Unix(1<<62, 0)

// stageEventsLocked stages the events of a record write, for the commit
// that writes the record, and returns how many there are.
func (b *Bolt) stageEventsLocked(o writeOptions, id string, before, after Record) (int, error) {
	events, err := o.events(id, before, after)
	if err != nil {
		return 0, err
	}
	return len(events), b.stageEventListLocked(events)
}

// stageEventListLocked checks and encodes every event, then stages them all,
// or none.
func (b *Bolt) stageEventListLocked(events []Event) error {
	if len(events) == 0 {
		return nil
	}
	ops := make([]outboxOp, len(events))
	for i, ev := range events {
		value, err := encodeEvent(ev)
		if err != nil {
			return err
		}
		ops[i] = outboxOp{kind: opAppend, ev: ev, value: value}
	}
	for _, op := range b.outboxOps {
		if op.kind == opAppend && slices.ContainsFunc(events, func(ev Event) bool { return ev.ID == op.ev.ID }) {
			return ErrEventExists
		}
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		ids := tx.Bucket(outboxIDsBucket)
		for _, ev := range events {
			if ids.Get([]byte(ev.ID)) != nil {
				return ErrEventExists
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.outboxOps = append(b.outboxOps, ops...)
	return nil
}

// ClaimEvents implements Outbox. Nothing is written: leases are in memory.
func (b *Bolt) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadClaimLimit
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return nil, b.wrap("claim events", "", ErrClosed)
	}
	for id, until := range b.leases {
		if !until.After(now) {
			delete(b.leases, id)
		}
	}
	var claimed []Event
	err := b.db.View(func(tx *bolt.Tx) error {
		events := tx.Bucket(outboxBucket)
		cursor := tx.Bucket(outboxDueBucket).Cursor()
		nowKey := dueTimeKey(1, now)
		for key, _ := cursor.First(); key != nil && len(claimed) < limit; key, _ = cursor.Next() {
			if bytes.Compare(key[:len(nowKey)], nowKey) > 0 {
				break // scheduled after now, and so is every later key
			}
			seq := key[len(key)-8:]
			ev, err := decodeEvent(seq, events.Get(seq))
			if err != nil {
				return err
			}
			if key[0] == 1 && ev.NextAt.After(now) {
				break // the key's time is clamped; the event decides
			}
			if b.leases[ev.ID].After(now) {
				continue
			}
			claimed = append(claimed, ev)
		}
		return nil
	})
	if err != nil {
		return nil, b.wrap("claim events", "", err)
	}
	for _, ev := range claimed {
		b.leases[ev.ID] = now.Add(lease)
	}
	slices.SortFunc(claimed, compareEvents)
	return claimed, nil
}

// AckEvent implements Outbox. It returns once the removal is committed.
func (b *Bolt) AckEvent(ctx context.Context, id string) error {
	return b.changeEvent(ctx, "ack event", outboxOp{kind: opAck, id: id})
}

// RetryEvent implements Outbox. It returns once the change is committed.
func (b *Bolt) RetryEvent(ctx context.Context, id string, next time.Time) error {
	if _, err := encodeEvent(Event{ID: id, NextAt: next}); err != nil {
		return err // a time JSON cannot hold would fail the whole commit
	}
	return b.changeEvent(ctx, "retry event", outboxOp{kind: opRetry, id: id, next: next})
}

// changeEvent stages an ack or a retry of a pending event and waits for its
// commit. The event stays leased until then, so no claim takes an event
// whose removal is on its way to the file; afterwards the lease is dropped.
func (b *Bolt) changeEvent(ctx context.Context, op string, change outboxOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return b.wrap(op, change.id, ErrClosed)
	}
	var pending bool
	err := b.db.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(outboxIDsBucket).Get([]byte(change.id)) != nil
		return nil
	})
	if err != nil || !pending {
		b.mu.Unlock()
		if err != nil {
			return b.wrap(op, change.id, err)
		}
		return nil // gone already: acked by an earlier call
	}
	b.leases[change.id] = heldForCommit
	b.outboxOps = append(b.outboxOps, change)
	committed := b.waitLocked()
	b.mu.Unlock()
	err = <-committed
	b.mu.Lock()
	delete(b.leases, change.id)
	b.mu.Unlock()
	if err != nil {
		return b.wrap(op, change.id, err)
	}
	return nil
}

// OutboxStats implements Outbox.
func (b *Bolt) OutboxStats(ctx context.Context) (int, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		return 0, time.Time{}, b.wrap("outbox stats", "", ErrClosed)
	}
	var oldest time.Time
	err := b.db.View(func(tx *bolt.Tx) error {
		key, _ := tx.Bucket(outboxCreatedBucket).Cursor().First()
		if key == nil {
			return nil
		}
		seq := key[len(key)-8:]
		ev, err := decodeEvent(seq, tx.Bucket(outboxBucket).Get(seq))
		oldest = ev.CreatedAt
		return err
	})
	if err != nil {
		return 0, time.Time{}, b.wrap("outbox stats", "", err)
	}
	return b.pending, oldest, nil
}

// countEvents counts the events in the file, once at open; commits keep
// the count since.
func countEvents(db *bolt.DB) (int, error) {
	var n int
	err := db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(outboxIDsBucket).Stats().KeyN
		return nil
	})
	return n, err
}

// commitOutbox applies the staged outbox changes in order, within the
// commit's transaction. It returns how many events were added (negative
// when more were acked).
func commitOutbox(tx *bolt.Tx, ops []outboxOp) (int, error) {
	o := outboxTx{
		events: tx.Bucket(outboxBucket), ids: tx.Bucket(outboxIDsBucket), byUpload: tx.Bucket(outboxByUploadBucket),
		due: tx.Bucket(outboxDueBucket), created: tx.Bucket(outboxCreatedBucket),
	}
	added := 0
	for _, op := range ops {
		var err error
		switch op.kind {
		case opAppend:
			err = o.append(op.ev, op.value)
			added++
		case opAck:
			var removed bool
			removed, err = o.ack(op.id)
			if removed {
				added--
			}
		case opRetry:
			err = o.retry(op.id, op.next)
		}
		if err != nil {
			return 0, err
		}
	}
	return added, nil
}

// outboxTx is the outbox's buckets in one transaction.
type outboxTx struct {
	events, ids, byUpload, due, created *bolt.Bucket
}

func (o outboxTx) append(ev Event, value []byte) error {
	n, err := o.events.NextSequence()
	if err != nil {
		return err
	}
	seq := binary.BigEndian.AppendUint64(nil, n)
	if o.ids.Get([]byte(ev.ID)) != nil {
		return fmt.Errorf("%w: %s", ErrEventExists, ev.ID) // staging checks; this is the last guard
	}
	for _, put := range []struct {
		bucket     *bolt.Bucket
		key, value []byte
	}{
		{o.events, seq, value},
		{o.ids, []byte(ev.ID), seq},
		{o.byUpload, uploadKey(ev.UploadID, seq), nil},
		{o.created, append(expiryKey(ev.CreatedAt, ""), seq...), nil},
	} {
		if err := put.bucket.Put(put.key, put.value); err != nil {
			return err
		}
	}
	if head, _ := o.head(ev.UploadID); bytes.Equal(head, seq) {
		return o.due.Put(dueKey(ev, seq), nil)
	}
	return nil
}

// head returns the seq of the upload's first pending event, nil if none.
func (o outboxTx) head(upload string) ([]byte, error) {
	prefix := uploadKey(upload, nil)
	key, _ := o.byUpload.Cursor().Seek(prefix)
	if key == nil || !bytes.HasPrefix(key, prefix) || len(key) != len(prefix)+8 {
		return nil, nil
	}
	return key[len(prefix):], nil
}

// load returns the pending event with the id, and its seq; nil seq when
// there is none.
func (o outboxTx) load(id string) (Event, []byte, error) {
	seq := o.ids.Get([]byte(id))
	if seq == nil {
		return Event{}, nil, nil
	}
	seq = bytes.Clone(seq)
	ev, err := decodeEvent(seq, o.events.Get(seq))
	return ev, seq, err
}

func (o outboxTx) ack(id string) (bool, error) {
	ev, seq, err := o.load(id)
	if err != nil || seq == nil {
		return false, err
	}
	head, _ := o.head(ev.UploadID)
	wasHead := bytes.Equal(head, seq)
	for _, del := range []struct {
		bucket *bolt.Bucket
		key    []byte
	}{
		{o.events, seq},
		{o.ids, []byte(id)},
		{o.byUpload, uploadKey(ev.UploadID, seq)},
		{o.created, append(expiryKey(ev.CreatedAt, ""), seq...)},
	} {
		if err := del.bucket.Delete(del.key); err != nil {
			return false, err
		}
	}
	if !wasHead {
		return true, nil
	}
	if err := o.due.Delete(dueKey(ev, seq)); err != nil {
		return false, err
	}
	// The upload's next event, if any, becomes deliverable.
	next, _ := o.head(ev.UploadID)
	if next == nil {
		return true, nil
	}
	next = bytes.Clone(next)
	nextEv, err := decodeEvent(next, o.events.Get(next))
	if err != nil {
		return false, err
	}
	return true, o.due.Put(dueKey(nextEv, next), nil)
}

func (o outboxTx) retry(id string, next time.Time) error {
	ev, seq, err := o.load(id)
	if err != nil || seq == nil {
		return err
	}
	head, _ := o.head(ev.UploadID)
	wasHead := bytes.Equal(head, seq)
	if wasHead {
		if err := o.due.Delete(dueKey(ev, seq)); err != nil {
			return err
		}
	}
	ev.Attempts++
	ev.NextAt = next
	value, err := encodeEvent(ev)
	if err != nil {
		return err
	}
	if err := o.events.Put(seq, value); err != nil {
		return err
	}
	if wasHead {
		return o.due.Put(dueKey(ev, seq), nil)
	}
	return nil
}

// uploadKey is the key of an upload's event in outbox_by_upload: the id's
// length (so no id is a prefix of another's keys), the id, the seq.
func uploadKey(upload string, seq []byte) []byte {
	key := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(upload)+len(seq)), uint32(min(len(upload), math.MaxUint32)))
	return append(append(key, upload...), seq...)
}

// dueKey is a head's key in outbox_due: the class (0: never scheduled, by
// CreatedAt; 1: scheduled, by NextAt), the time, the seq.
func dueKey(ev Event, seq []byte) []byte {
	return append(dueTimeKey(rankClass(ev), rankTime(ev)), seq...)
}

func dueTimeKey(class int, at time.Time) []byte {
	return append([]byte{byte(class)}, expiryKey(at, "")...)
}

// eventFormat is recordFormat for events.
const eventFormat = 1

// storedEvent is the JSON form of an Event in the bbolt file.
type storedEvent struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	UploadID  string    `json:"upload_id"`
	Type      string    `json:"type"`
	Body      []byte    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_at"`
}

func encodeEvent(ev Event) ([]byte, error) {
	value, err := json.Marshal(storedEvent{Format: eventFormat, ID: ev.ID, UploadID: ev.UploadID, Type: ev.Type,
		Body: ev.Body, CreatedAt: ev.CreatedAt, Attempts: ev.Attempts, NextAt: ev.NextAt})
	if err != nil {
		return nil, fmt.Errorf("state: encode event %s: %w", ev.ID, err)
	}
	return value, nil
}

func decodeEvent(seq, value []byte) (Event, error) {
	if value == nil {
		return Event{}, fmt.Errorf("state: outbox entry %x is missing", seq)
	}
	var stored storedEvent
	if err := json.Unmarshal(value, &stored); err != nil {
		return Event{}, fmt.Errorf("state: decode outbox entry %x: %w", seq, err)
	}
	if stored.Format != eventFormat {
		return Event{}, fmt.Errorf("state: event %s has format %d, this tusproxy reads format %d",
			stored.ID, stored.Format, eventFormat)
	}
	return Event{ID: stored.ID, UploadID: stored.UploadID, Type: stored.Type, Body: stored.Body,
		CreatedAt: stored.CreatedAt, Attempts: stored.Attempts, NextAt: stored.NextAt}, nil
}
