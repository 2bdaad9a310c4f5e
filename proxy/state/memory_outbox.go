package state

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// memEvent is a pending event of the memory store.
type memEvent struct {
	ev    Event
	seq   uint64    // the order it was stored in
	lease time.Time // claimed until then; zero when never claimed
}

// appendEventsLocked adds events to the outbox, each at the end of its
// upload's queue. It checks every id first, so an error adds none.
func (m *Memory) appendEventsLocked(events []Event) error {
	for _, ev := range events {
		if _, taken := m.events[ev.ID]; taken {
			return ErrEventExists
		}
	}
	for _, ev := range events {
		m.eventSeq++
		m.events[ev.ID] = &memEvent{ev: ev, seq: m.eventSeq}
		m.queues[ev.UploadID] = append(m.queues[ev.UploadID], ev.ID)
	}
	return nil
}

// ClaimEvents implements Outbox. It looks at the head of every upload's
// queue, which is fine for the sizes a test or a dev server holds.
func (m *Memory) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadClaimLimit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	var due []*memEvent
	for _, queue := range m.queues {
		head := m.events[queue[0]]
		if !head.ev.NextAt.After(now) && !head.lease.After(now) {
			due = append(due, head)
		}
	}
	// First attempts before scheduled ones (see compareEvents).
	slices.SortFunc(due, func(a, b *memEvent) int {
		return cmp.Or(cmp.Compare(rankClass(a.ev), rankClass(b.ev)), rankTime(a.ev).Compare(rankTime(b.ev)),
			cmp.Compare(a.seq, b.seq))
	})
	due = due[:min(len(due), limit)]
	claimed := make([]Event, len(due))
	for i, e := range due {
		e.lease = now.Add(lease)
		claimed[i] = e.ev
		claimed[i].Body = slices.Clone(e.ev.Body)
	}
	slices.SortFunc(claimed, compareEvents)
	return claimed, nil
}

// AckEvent implements Outbox.
func (m *Memory) AckEvent(ctx context.Context, id string) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	e, ok := m.events[id]
	if !ok {
		return nil
	}
	delete(m.events, id)
	upload := e.ev.UploadID
	queue := slices.DeleteFunc(m.queues[upload], func(q string) bool { return q == id })
	if len(queue) == 0 {
		delete(m.queues, upload)
	} else {
		m.queues[upload] = queue
	}
	return nil
}

// RetryEvent implements Outbox.
func (m *Memory) RetryEvent(ctx context.Context, id string, next time.Time) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if e, ok := m.events[id]; ok {
		e.ev.Attempts++
		e.ev.NextAt = next
		e.lease = time.Time{}
	}
	return nil
}

// OutboxStats implements Outbox.
func (m *Memory) OutboxStats(ctx context.Context) (int, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, time.Time{}, ErrClosed
	}
	var oldest time.Time
	for _, e := range m.events {
		if oldest.IsZero() || e.ev.CreatedAt.Before(oldest) {
			oldest = e.ev.CreatedAt
		}
	}
	return len(m.events), oldest, nil
}

// rankClass and rankTime order the deliverable events a claim picks from:
// never scheduled first (class 0, by CreatedAt), then scheduled ones (class
// 1, by NextAt).
func rankClass(ev Event) int {
	if ev.NextAt.IsZero() {
		return 0
	}
	return 1
}

func rankTime(ev Event) time.Time {
	if ev.NextAt.IsZero() {
		return ev.CreatedAt
	}
	return ev.NextAt
}
