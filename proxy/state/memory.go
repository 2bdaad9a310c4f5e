package state

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

var _ Store = (*Memory)(nil)

// Memory is a Store that keeps records in a map. It serves tests and
// `tusproxy dev`; everything is lost when the process exits.
type Memory struct {
	mu      sync.RWMutex
	records map[string]Record
	intents map[string]Intent
	closed  bool

	// The outbox: every pending event by id, and each upload's event ids
	// in the order they were stored.
	events   map[string]*memEvent
	queues   map[string][]string
	eventSeq uint64
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{records: make(map[string]Record), intents: make(map[string]Intent),
		events: make(map[string]*memEvent), queues: make(map[string][]string)}
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, rec Record, opts ...WriteOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.ID == "" {
		return errEmptyID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.records[rec.ID]; ok {
		return ErrExists
	}
	events, err := collectOptions(opts).events(rec.ID, Record{}, rec)
	if err != nil {
		return err
	}
	if err := m.appendEventsLocked(events); err != nil {
		return err
	}
	m.records[rec.ID] = rec
	delete(m.intents, rec.ID)
	return nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Record{}, ErrClosed
	}
	rec, ok := m.records[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Update implements Store. fn runs under the store's lock, which is what
// makes the read-modify-write atomic.
func (m *Memory) Update(ctx context.Context, id string, fn func(*Record) error, opts ...WriteOption) (Record, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	rec, ok := m.records[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	// fn works on a copy, so an error leaves the stored record untouched
	// and a pointer kept by fn cannot reach the map.
	before := rec
	if err := fn(&rec); err != nil {
		return Record{}, err
	}
	if rec.ID != id {
		return Record{}, errIDChanged
	}
	events, err := collectOptions(opts).events(id, before, rec)
	if err != nil {
		return Record{}, err
	}
	if err := m.appendEventsLocked(events); err != nil {
		return Record{}, err
	}
	m.records[id] = rec
	return rec, nil
}

// lock takes the store's lock for one call: refused once ctx is done or the
// store is closed, and released by the function it returns.
func (m *Memory) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	return m.mu.Unlock, nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, id string, opts ...WriteOption) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	rec, ok := m.records[id]
	if !ok {
		return nil
	}
	events, err := collectOptions(opts).events(id, rec, Record{})
	if err != nil {
		return err
	}
	if err := m.appendEventsLocked(events); err != nil {
		return err
	}
	delete(m.records, id)
	return nil
}

// Sweep implements Store. It scans every record, which is fine for the
// sizes a test or a dev server holds.
func (m *Memory) Sweep(ctx context.Context, cutoff time.Time, limit int, opts ...WriteOption) ([]Record, error) {
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var expired []Record
	for _, rec := range m.records {
		if rec.UpdatedAt.Before(cutoff) {
			expired = append(expired, rec)
		}
	}
	slices.SortFunc(expired, func(a, b Record) int {
		return cmp.Or(a.UpdatedAt.Compare(b.UpdatedAt), cmp.Compare(a.ID, b.ID))
	})
	if len(expired) > limit {
		expired = expired[:limit]
	}
	// Every record's events are computed before anything changes, so an
	// error leaves the store as it was.
	var events []Event
	for _, rec := range expired {
		more, err := o.events(rec.ID, rec, Record{})
		if err != nil {
			return nil, err
		}
		events = append(events, more...)
	}
	if err := m.appendEventsLocked(events); err != nil {
		return nil, err
	}
	for _, rec := range expired {
		delete(m.records, rec.ID)
	}
	return expired, nil
}

// CreateIntent implements Store.
func (m *Memory) CreateIntent(ctx context.Context, in Intent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.ID == "" {
		return errEmptyIntentID
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.intents[in.ID]; ok {
		return ErrExists
	}
	m.intents[in.ID] = in
	return nil
}

// SetIntentVideo implements Store.
func (m *Memory) SetIntentVideo(ctx context.Context, id, videoID string) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	in, ok := m.intents[id]
	if !ok {
		return ErrNotFound
	}
	in.VideoID = videoID
	m.intents[id] = in
	return nil
}

// DeleteIntent implements Store.
func (m *Memory) DeleteIntent(ctx context.Context, id string) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	delete(m.intents, id)
	return nil
}

// SweepIntents implements Store, scanning every intent like Sweep.
func (m *Memory) SweepIntents(ctx context.Context, cutoff time.Time, limit int) ([]Intent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var old []Intent
	for _, in := range m.intents {
		if in.CreatedAt.Before(cutoff) {
			old = append(old, in)
		}
	}
	slices.SortFunc(old, func(a, b Intent) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	old = old[:min(len(old), limit)]
	for _, in := range old {
		delete(m.intents, in.ID)
	}
	return old, nil
}

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Store. It drops the records.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.records, m.intents, m.events, m.queues = nil, nil, nil, nil
	return nil
}
