package upload

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Authorize decides whether the caller may use an upload, given its record.
// Its errors are returned by Open as they are.
type Authorize func(rec state.Record) error

// Handle is an upload whose lock the caller holds. Close releases it.
type Handle struct {
	// Opened is the record as it was when the handle was opened (for the
	// caller's logs); Write and Offset return it as it is afterwards.
	Opened state.Record

	l    *Lifecycle
	rec  state.Record
	lock handler.Lock
	// write: opened for Write (OpenWrite); arrived is when its request
	// arrived (see WithArrival).
	write   bool
	arrived time.Time
	// seen is the record's UpdatedAt before the lock was waited for (zero
	// for Hold): a record written since was written by a request that held
	// the lock after this one arrived (see Write).
	seen time.Time
}

// Close releases the upload's lock.
func (h *Handle) Close() { _ = h.lock.Unlock() }

// Open runs what every operation on an existing upload starts with: the
// access check (authorize; nil when no auth is configured), the upload's
// lock (asking any holder to let go; onRelease is how this caller is asked
// in turn) and its record. The access check runs before the lock, so a
// stranger cannot even interrupt a write in flight; an upload's owner never
// changes, so reading its record unlocked for it is safe.
//
// The record is read before the lock even without an access check: what it
// says then is how the upload stood when this request arrived, which Write
// needs to tell a PATCH the client has already given up on (see Write).
func (l *Lifecycle) Open(ctx context.Context, id string, authorize Authorize, onRelease func()) (*Handle, error) {
	return l.open(ctx, id, authorize, onRelease, false)
}

// OpenWrite is Open for a Write. A write whose request arrived before an
// offset of the upload was answered in this process is refused with
// ErrSuperseded before it even asks for the lock: its client has moved on
// (it sent the HEAD), and asking would interrupt the write that resumed
// from that answer.
func (l *Lifecycle) OpenWrite(ctx context.Context, id string, authorize Authorize, onRelease func()) (*Handle, error) {
	return l.open(ctx, id, authorize, onRelease, true)
}

func (l *Lifecycle) open(ctx context.Context, id string, authorize Authorize, onRelease func(), write bool) (*Handle, error) {
	came := arrival(ctx)
	arrived, err := l.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if authorize != nil {
		if err := authorize(arrived); err != nil {
			return nil, err
		}
	}
	if write && l.settles.after(id, came) {
		l.log.Info("patch superseded by a later request", slog.String("upload_id", id))
		return nil, ErrSuperseded
	}
	lockCtx := ctx
	if write {
		// While it waits, a write that turns out superseded stops waiting
		// at once: a waiter keeps asking holders to let go, and the next
		// holder is the write that resumed from the answer.
		var stop func()
		lockCtx, stop = l.whileCurrent(ctx, id, came, arrived.UpdatedAt)
		defer stop()
	}
	lock, err := l.lock(lockCtx, id, onRelease)
	if err != nil {
		if errors.Is(context.Cause(lockCtx), ErrSuperseded) {
			l.log.Info("patch superseded by a later request", slog.String("upload_id", id))
			return nil, ErrSuperseded
		}
		return nil, err
	}
	rec, err := l.get(ctx, id)
	if err == nil && l.expired(rec) {
		err = ErrExpired
	}
	if err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	return &Handle{Opened: rec, l: l, rec: rec, lock: lock, write: write, arrived: came, seen: arrived.UpdatedAt}, nil
}

// Hold takes the lock of an upload just created, for the body of its
// creation request.
func (l *Lifecycle) Hold(ctx context.Context, rec state.Record, onRelease func()) (*Handle, error) {
	lock, err := l.lock(ctx, rec.ID, onRelease)
	if err != nil {
		return nil, err
	}
	return &Handle{Opened: rec, l: l, rec: rec, lock: lock}, nil
}

func (l *Lifecycle) get(ctx context.Context, id string) (state.Record, error) {
	rec, err := l.store.Get(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return rec, ErrNotFound
	}
	if err != nil {
		return rec, l.storeFailed(OpGet, id, err)
	}
	return rec, nil
}

// lock takes the upload's lock, asking any holder to release it first
// (tusd's semantics). A caller whose client leaves while it waits gets
// ErrClientGone, like everywhere else.
func (l *Lifecycle) lock(ctx context.Context, id string, onRelease func()) (handler.Lock, error) {
	lock, err := l.locker.NewLock(id)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, l.cfg.LockWait)
	defer cancel()
	if err := lock.Lock(waitCtx, onRelease); err != nil {
		if ctx.Err() != nil {
			return nil, ErrClientGone
		}
		if errors.Is(err, handler.ErrLockTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, &LockedError{RetryAfter: time.Second}
		}
		// A distributed lock lives next to the state (Redis): when it
		// cannot be taken, the store is as unreachable.
		return nil, l.storeFailed(OpLock, id, err)
	}
	return lock, nil
}

// Offset asks the upstream how much of the upload it holds, records it and
// returns the record. The upstream is the truth: a record that is behind
// (a PATCH cut before the upstream could be asked) is corrected. When the
// upstream cannot be asked, the record answers: it is the upstream's offset
// as last seen, and a stale one is harmless (the upstream refuses a PATCH at
// the wrong offset). Only ErrGone and ErrNotFound are returned: an offset
// query never fails for an outage.
//
// The offset answered is settled: no byte of a write that arrived before
// this query moves the upstream past it afterwards. A write that held the
// lock let go only once the upstream's offset stopped moving (settle); a
// write that arrived before but had not started is held off for the grace
// (a server may start a request's handler well after the kernel took it
// in: a dead PATCH's buffered bytes) and refused once it has the lock (its
// arrival predates the answer, or the record changed since it read it).
func (h *Handle) Offset(ctx context.Context) (Status, error) {
	graced := h.l.cfg.SettleGrace > 0 && h.rec.Offset < h.rec.Length
	if graced {
		pause(ctx, h.l.cfg.SettleGrace)
	}
	synced, err := h.l.syncOffset(ctx, h.rec)
	if err != nil {
		if isGone(err) {
			return Status{}, err
		}
		h.l.log.Warn("answering HEAD from the record", slog.String("upload_id", h.rec.ID), slog.Int64("offset", h.rec.Offset))
	}
	if synced.UpdatedAt.Equal(h.rec.UpdatedAt) {
		// This query wrote nothing: mark the record all the same, so a
		// PATCH that arrived before this answer and waits for the lock
		// finds it changed and does not move the offset just answered (see
		// Write). Compared with the record read under the lock, not with
		// what this query saw before it: a write in between (the holder's
		// last progress) is already what such a PATCH may have read.
		synced = h.l.settled(ctx, synced)
	}
	h.l.settles.mark(h.rec.ID)
	if graced {
		// Writes queued behind this query (on any replica) see the change
		// within a poll and stop waiting before the lock is free; otherwise
		// one could take it from, or ask it of, the write resumed from
		// this answer.
		pause(ctx, 2*supersededPoll+5*time.Millisecond)
	}
	h.rec = synced
	return h.l.status(synced), nil
}

// settled records that an offset was just answered, by moving UpdatedAt
// (it is activity, too). A store that fails leaves the record as it was: the
// HEAD is answered all the same, only that guard is lost.
func (l *Lifecycle) settled(ctx context.Context, rec state.Record) state.Record {
	now := l.now()
	updated, err := l.store.Update(context.WithoutCancel(ctx), rec.ID, func(r *state.Record) error {
		if !now.After(r.UpdatedAt) {
			// A clock that did not move (a test's) must still move it.
			now = r.UpdatedAt.Add(time.Nanosecond)
		}
		r.UpdatedAt = now
		return nil
	})
	if err != nil {
		if !errors.Is(err, state.ErrNotFound) {
			l.log.Error("state store update failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		}
		return rec
	}
	return updated
}

// isGone reports whether err says the upload no longer exists.
func isGone(err error) bool { return errors.Is(err, ErrGone) || errors.Is(err, ErrNotFound) }

// Terminate deletes the upload at the upstream and forgets its record
// (tus termination). Kinescope documents no DELETE on its tus endpoints, so
// 404, 405 and 410 from it are taken as "nothing more to delete there".
// Other upstream failures keep the record, so the client can try again.
func (h *Handle) Terminate(ctx context.Context) error {
	l, rec := h.l, h.rec
	callCtx, cancel := context.WithTimeout(ctx, l.cfg.UpstreamTimeout)
	defer cancel()
	began := time.Now()
	err := l.upstream.Delete(callCtx, rec.Endpoint)
	l.called("delete", began, err)
	if err != nil {
		var ue *tusproto.Error
		tolerated := errors.As(err, &ue) && ue.Kind == tusproto.KindStatus &&
			(ue.Status == http.StatusNotFound || ue.Status == http.StatusMethodNotAllowed || ue.Status == http.StatusGone)
		if !tolerated {
			l.log.Warn("upstream delete failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
			switch {
			case ctx.Err() != nil:
				return ErrClientGone
			case ue != nil && ue.Kind == tusproto.KindTimeout:
				return &UpstreamError{Op: "delete", Kind: KindTimeout, Cause: err}
			default:
				return &UpstreamError{Op: "delete", Kind: KindFailed, Cause: err}
			}
		}
	}
	terminated := l.event(Terminated, rec)
	if err := l.store.Delete(context.WithoutCancel(ctx), rec.ID, l.durable(Terminated, terminated.At)); err != nil {
		return l.storeFailed(OpDelete, rec.ID, err)
	}
	l.publish(terminated)
	return nil
}

// pause waits d, or less if ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
