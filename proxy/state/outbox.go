package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"
)

// Event is a lifecycle event waiting for delivery, written in the same store
// write as the change that caused it.
type Event struct {
	ID        string    // unique per event, the webhook-id; "msg_" + 32 lowercase hex (128 random bits)
	UploadID  string    // one upload's events are claimed strictly in the order they were stored
	Type      string    // "upload.created", "upload.completed", "upload.terminated", "upload.expired", "upload.failed"
	Body      []byte    // the exact JSON body to POST (signed as is, never re-serialized)
	CreatedAt time.Time // when it happened: its age for TUSPROXY_WEBHOOK_MAX_AGE and the metrics
	Attempts  int       // delivery attempts made so far
	NextAt    time.Time // not to be claimed before this (zero: at once)
}

// Outbox is the events' side of a Store: the pending events, written by the
// record writes that carry them (see WithEvents), read by a dispatcher.
//
// The outbox is a keyspace of its own, like the intents: records can come
// and go (a terminated upload's record is gone when its event is still
// pending), and the events stay until they are acked.
type Outbox interface {
	// ClaimEvents leases up to limit deliverable events until now+lease and returns them oldest first.
	// Deliverable: the oldest pending event of its upload (later ones wait until it is acked), NextAt <= now,
	// and no unexpired lease on it. Two replicas claiming at once never get the same event.
	ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Event, error)
	// AckEvent removes a delivered or given-up event; removing one already gone is not an error.
	AckEvent(ctx context.Context, id string) error
	// RetryEvent releases the lease and schedules the next attempt: Attempts+1, NextAt = next.
	// Retrying an event that is gone (acked meanwhile) is not an error and does nothing.
	RetryEvent(ctx context.Context, id string, next time.Time) error
	// OutboxStats reports the number of pending events and when the oldest was created (zero if none).
	OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error)
}

// WriteOption adds to a record write (Create, Update, Delete, Sweep) the
// events that belong to it: they are stored in the same atomic write as the
// change (one bbolt transaction, one Redis script, one critical section in
// memory), so a crash or a failed write can never keep one without the
// other. A write whose change does not happen (Create of a taken id, Update
// aborted by fn, Delete of a missing record) stores no event.
type WriteOption func(*writeOptions)

// EventsFunc computes the events of a write from the record it changes:
// before is the record as stored before the write (the zero Record for
// Create), after as the write leaves it (the zero Record for Delete and for
// each record Sweep removes). It runs inside the write, like Update's fn:
// it must be quick, must not call the Store, and may run more than once (an
// optimistic retry) or for a write that then does not happen, so it must
// have no side effects. An error aborts the write (nothing is stored) and is
// returned unchanged.
type EventsFunc func(before, after Record) ([]Event, error)

// WithEvents stores the given events with the write. For Sweep, which picks
// its records itself, use WithEventsFunc.
func WithEvents(events ...Event) WriteOption {
	return func(o *writeOptions) { o.fixed = append(o.fixed, events...) }
}

// WithEventsFunc stores with the write the events fn computes from the
// record as changed by it: for Update the events can depend on what fn did
// (upload.completed only when the update stored the last byte), for Sweep fn
// runs once per swept record (its before).
func WithEventsFunc(fn EventsFunc) WriteOption {
	return func(o *writeOptions) { o.funcs = append(o.funcs, fn) }
}

// writeOptions is what the WriteOptions of one write add up to.
type writeOptions struct {
	fixed []Event
	funcs []EventsFunc
}

func collectOptions(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// any reports whether the write carries events, or may.
func (o writeOptions) any() bool { return len(o.fixed) > 0 || len(o.funcs) > 0 }

// events returns the events of a write on the record id, each checked and
// given the upload id when it has none.
func (o writeOptions) events(id string, before, after Record) ([]Event, error) {
	if !o.any() {
		return nil, nil
	}
	events := make([]Event, 0, len(o.fixed))
	events = append(events, o.fixed...)
	for _, fn := range o.funcs {
		more, err := fn(before, after)
		if err != nil {
			return nil, err
		}
		events = append(events, more...)
	}
	seen := make(map[string]struct{}, len(events))
	for i := range events {
		ev := &events[i]
		if ev.ID == "" {
			return nil, errEmptyEventID
		}
		if _, dup := seen[ev.ID]; dup {
			return nil, fmt.Errorf("state: event %s is twice in one write", ev.ID)
		}
		seen[ev.ID] = struct{}{}
		if ev.UploadID == "" {
			ev.UploadID = id
		}
		if !storableTime(ev.CreatedAt) || !storableTime(ev.NextAt) {
			return nil, fmt.Errorf("state: event %s has a time outside the years 0-9999", ev.ID)
		}
		if ev.UploadID != id {
			return nil, fmt.Errorf("state: event %s is about upload %s, not %s whose write carries it", ev.ID, ev.UploadID, id)
		}
		// The caller's slice is not kept: a stored event never aliases it.
		ev.Body = append([]byte(nil), ev.Body...)
	}
	return events, nil
}

// errEmptyEventID is returned by a write that carries an event without an id.
var errEmptyEventID = errors.New("state: event has an empty ID")

// errFixedSweepEvents is returned by Sweep given WithEvents: it cannot know
// which of the records it picks the events belong to.
var errFixedSweepEvents = errors.New("state: Sweep takes WithEventsFunc, not WithEvents")

// errBadClaimLimit is returned by ClaimEvents for a limit below 1.
var errBadClaimLimit = errors.New("state: ClaimEvents limit must be at least 1")

// ErrEventExists is returned by a write that carries an event whose id is
// already pending: event ids are random and never reused, so it is a bug.
var ErrEventExists = errors.New("state: an event with this id is already pending")

// compareEvents orders claimed events oldest first: by CreatedAt, then by
// id (one claim holds at most one event per upload, so ties are between
// uploads and any fixed order will do).
func compareEvents(a, b Event) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// Which deliverable events a claim takes when there are more than its limit
// is each store's choice, documented with it; all three take first the
// events never scheduled (NextAt zero: first attempts, by CreatedAt), then
// the scheduled ones by NextAt, so a backlog of retries never holds back a
// new upload's first delivery and no event waits behind newer ones of its
// kind.

// storableTime reports whether every store can write t: RFC 3339 (and so
// JSON) has four-digit years.
func storableTime(t time.Time) bool {
	return t.IsZero() || t.Year() >= 0 && t.Year() <= 9999
}
