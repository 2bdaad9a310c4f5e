package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// recordEvery is how often a long write records the offsets the upstream
// confirmed while it streams. The record is the upstream's offset as last
// seen, not the truth (Offset asks the upstream), so it needs no store write
// per upstream PATCH; it is always written when the write ends.
const recordEvery = time.Second

// Write streams body to the upstream, starting at offset, which must be the
// upload's. size is the body's length, or -1 when it is not known (a
// chunked request). A body longer than the chunk size goes upstream as
// consecutive PATCHes, each checked by the upstream against its offset.
//
// Whatever fails, the upstream is then asked what it kept and exactly that
// is recorded, so the client resumes at the right byte. Write returns the
// upload as it stands afterwards, also on error; the error says why it
// stopped (Body.Failure's error when the body did).
//
// A write whose upload's record changed between the request's arrival and
// its lock is refused with ErrSuperseded, before any byte moves: another
// request held the upload meanwhile, most often the HEAD of a client whose
// connection dropped mid-PATCH. That client was told an offset, and the
// dead PATCH, whose bytes the server still had buffered, must not move the
// upload past it (issue 14: the resumed PATCH would get 409 or 423).
func (h *Handle) Write(ctx context.Context, offset int64, body Body, size int64) (Status, error) {
	l, rec := h.l, h.rec
	if h.superseded() {
		l.log.Info("patch superseded by a later request", slog.String("upload_id", rec.ID), slog.Int64("offset", rec.Offset))
		return l.status(rec), ErrSuperseded
	}
	if rec.OffsetUncertain {
		// The last write failed before the upstream could be asked; try
		// now. If it still cannot be asked, go on: the upstream checks the
		// offset of every PATCH itself.
		synced, err := l.syncOffset(ctx, rec)
		if isGone(err) {
			return l.status(rec), err
		}
		if err == nil {
			rec = synced
		}
	}
	if offset != rec.Offset {
		l.publish(Event{Kind: OffsetMismatch, At: l.now(), Upload: rec, Detail: SideClient})
		return l.status(rec), &OffsetMismatchError{Have: rec.Offset, Got: offset}
	}
	if size > rec.Length-rec.Offset {
		return l.status(rec), &BodyTooLargeError{Size: size, Remaining: rec.Length - rec.Offset}
	}
	stream := &Stream{Start: rec.Offset, Began: l.now(), Received: body.Received, wall: time.Now()}
	l.publish(Event{Kind: StreamStarted, At: stream.Began, Upload: rec, Stream: stream})
	w := &write{l: l, rec: rec, body: body, size: size, stored: rec.Offset, confirmed: rec.Offset, stream: stream}
	err := w.run(ctx)
	h.rec = w.rec
	l.publish(Event{Kind: StreamEnded, At: l.now(), Upload: w.rec, Stream: stream})
	if w.completed && stream.Start < w.rec.Length {
		l.publish(l.event(Completed, w.rec))
	}
	return l.status(w.rec), err
}

// superseded reports whether another request took the upload over after
// body's request arrived: its record was written while this one waited for
// the lock (any replica), or its offset was answered here after the request
// was accepted (this process, which sees what a read of the record cannot: a
// request accepted before the answer but handled after it).
func (h *Handle) superseded() bool {
	if !h.write {
		return false // Hold (a creation's body) or a handle opened for reading
	}
	return !h.rec.UpdatedAt.Equal(h.seen) || h.l.settles.after(h.rec.ID, h.arrived)
}

// write is one Write in progress.
type write struct {
	l      *Lifecycle
	rec    state.Record // the offset in it is what the upstream confirmed
	body   Body
	size   int64 // what remains of the body's declared length, -1 if unknown
	stream *Stream

	stored     int64     // the offset last stored
	lastStored time.Time // when
	confirmed  int64     // the offset the upstream last confirmed, counted as accepted
	completed  bool      // a store write recorded the upload's last byte
	// segmentOffset and segmentReceived are the offset and the body's byte
	// count when the current segment began: every body byte read since went
	// into that segment, so the body's own counter tells how far the
	// upstream PATCH can have got (see reach), without a second count per
	// read.
	segmentOffset, segmentReceived int64
}

// reach is the most the upstream can hold: where the current segment
// started plus the body bytes read since, all of them handed to it (a
// chunked body's peeked byte counts from the peek on: an upper bound).
func (w *write) reach() int64 {
	return max(w.segmentOffset+w.body.Received()-w.segmentReceived, w.rec.Offset)
}

func (w *write) run(ctx context.Context) error {
	l := w.l
	chunk := l.cfg.ChunkSize
	if chunk <= 0 {
		// Never split: each split costs an upstream request turnaround
		// (BENCHMARKS.md), and Kinescope takes whole-file PATCHes, which is
		// what tus-js-client sends by default (chunkSize Infinity).
		chunk = math.MaxInt64
	}
	remaining := w.rec.Length - w.rec.Offset
	w.lastStored = time.Now()
	for remaining > 0 {
		w.segmentOffset, w.segmentReceived = w.rec.Offset, w.body.Received()
		segment, size, err := w.nextSegment(chunk, remaining)
		if err != nil {
			return w.fail(ctx, err)
		}
		if segment == nil {
			break
		}
		moved, err := w.send(ctx, segment, size)
		if err != nil {
			return err
		}
		remaining -= moved
		if w.size >= 0 {
			w.size -= moved
		} else if moved < min(chunk, remaining+moved) {
			break // the chunked body ended inside this segment
		}
	}
	if w.rec.Offset != w.stored {
		if err := w.record(ctx); err != nil {
			return err
		}
	}
	if w.size < 0 && remaining == 0 {
		// Nothing past the declared length is forwarded; a chunked body that
		// still has bytes is told so.
		var extra [1]byte
		if n, _ := w.body.Read(extra[:]); n > 0 {
			return &BodyTooLargeError{Size: -1, Remaining: 0}
		}
	}
	return nil
}

// nextSegment is the part of the body the next upstream PATCH carries, and
// its size (-1: unknown, sent chunked); a nil segment when the body ended.
func (w *write) nextSegment(chunk, remaining int64) (io.Reader, int64, error) {
	if w.size >= 0 {
		if w.size == 0 {
			return nil, 0, nil
		}
		size := min(chunk, w.size)
		return io.LimitReader(w.body, size), size, nil
	}
	// Chunked from the client: the segment's length is unknown, so it goes
	// upstream chunked too. Peek one byte first so an ended body costs no
	// empty upstream PATCH.
	var first [1]byte
	n, err := io.ReadFull(w.body, first[:])
	if n == 0 {
		if err != nil && err != io.EOF {
			return nil, 0, err
		}
		return nil, 0, nil
	}
	return io.MultiReader(bytes.NewReader(first[:n]), io.LimitReader(w.body, min(chunk, remaining)-1)), -1, nil
}

// send PATCHes one segment upstream and records the progress every
// recordEvery. It returns the bytes the upstream confirmed; on failure the
// error is final (the upstream was asked what it kept).
func (w *write) send(ctx context.Context, segment io.Reader, size int64) (int64, error) {
	l := w.l
	began := time.Now()
	if w.stream.firstSent.Load() == 0 {
		segment = &firstRead{r: segment, s: w.stream}
	}
	newOffset, err := l.upstream.Patch(ctx, w.rec.Endpoint, w.rec.Offset, segment, size)
	if err == nil {
		err = l.checkUpstreamOffset("patch", w.rec, newOffset, w.rec.Offset)
	}
	l.called("patch", began, err)
	if err != nil {
		return 0, w.fail(ctx, err)
	}
	moved := newOffset - w.rec.Offset
	l.accepted(moved)
	w.confirmed, w.rec.Offset = newOffset, newOffset
	if time.Since(w.lastStored) >= recordEvery {
		if err := w.record(ctx); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

// record stores the offset the upstream confirmed.
func (w *write) record(ctx context.Context) error {
	rec, err := w.l.recordProgress(ctx, w.rec, w.rec.Offset)
	w.rec = rec
	if err != nil {
		return err
	}
	w.stored, w.lastStored = rec.Offset, time.Now()
	w.completed = rec.Offset == rec.Length
	return nil
}

// fail hands a failure over with the record as stored: what the upstream
// confirmed since is asked again there.
func (w *write) fail(ctx context.Context, cause error) error {
	reach := w.reach()
	w.rec.Offset = w.stored
	rec, stored, err := w.l.afterFailure(ctx, w.rec, reach, w.body, cause)
	w.rec = rec
	if stored {
		w.completed = rec.Offset == rec.Length
	}
	w.l.accepted(rec.Offset - w.confirmed)
	return err
}

// accepted reports bytes the upstream confirmed; n <= 0 is ignored (an
// upstream that went back is a mismatch, not negative bytes).
func (l *Lifecycle) accepted(n int64) {
	if n > 0 {
		l.publish(Event{Kind: Accepted, At: l.now(), Bytes: n})
	}
}

// afterFailure handles an upstream PATCH that did not succeed. Whatever
// failed, the upstream may have kept part of the segment (tus servers SHOULD
// keep what they received), so it is asked, and exactly that is recorded
// once it can no longer move (see settle; reach is the most it can hold).
// stored says whether the record returned is as stored.
func (l *Lifecycle) afterFailure(ctx context.Context, rec state.Record, reach int64, body Body, cause error) (state.Record, bool, error) {
	var ue *tusproto.Error
	errors.As(cause, &ue)
	if ue != nil && ue.Gone() {
		l.reconciled(rec, ReconcileGone)
		return rec, false, l.forget(ctx, rec, ue.Status)
	}
	if ue != nil && ue.Kind == tusproto.KindStatus && ue.Status == http.StatusConflict {
		l.publish(Event{Kind: OffsetMismatch, At: l.now(), Upload: rec, Detail: SideUpstream})
	}
	if ue != nil && (ue.Kind == tusproto.KindStatus || ue.Kind == tusproto.KindBadResponse) {
		// The upstream answered: its request is over, nothing of it can
		// still land. One question is enough.
		reach = 0
	}
	stored := true
	synced, err := l.settle(context.WithoutCancel(ctx), rec, reach)
	if err != nil {
		if isGone(err) {
			l.reconciled(rec, ReconcileGone)
			return rec, false, err
		}
		// Bytes may have moved and the upstream cannot say how many: the
		// next write asks again before trusting the record.
		l.reconciled(rec, ReconcileUncertain)
		synced, stored = l.markUncertain(ctx, rec)
	} else {
		l.reconciled(synced, ReconcileSynced)
	}
	if stop := body.Failure(); stop != nil {
		l.log.Info("patch stopped", slog.String("upload_id", rec.ID), slog.String("reason", stop.Error()),
			slog.Int64("offset", synced.Offset))
		return synced, stored, stop
	}
	if ue == nil {
		l.log.Error("upstream patch failed", slog.String("upload_id", rec.ID), slog.String("error", cause.Error()))
		return synced, stored, &UpstreamError{Op: "patch", Kind: KindFailed, Cause: cause}
	}
	l.log.Warn("upstream patch failed", slog.String("upload_id", rec.ID), slog.String("error", ue.Error()),
		slog.Int64("offset", synced.Offset))
	switch {
	case ue.Kind == tusproto.KindStatus && ue.Status == http.StatusConflict:
		return synced, stored, &UpstreamError{Op: "patch", Kind: KindConflict, Cause: cause}
	case ue.Kind == tusproto.KindTimeout:
		return synced, stored, &UpstreamError{Op: "patch", Kind: KindTimeout, Cause: cause}
	case ue.Kind == tusproto.KindCanceled:
		return synced, stored, ErrClientGone
	default:
		return synced, stored, &UpstreamError{Op: "patch", Kind: KindFailed, Cause: cause}
	}
}

func (l *Lifecycle) reconciled(rec state.Record, result string) {
	l.publish(Event{Kind: Reconciled, At: l.now(), Upload: rec, Detail: result})
}

// settleQuiet bounds how long settle waits for an upstream offset to stay
// still: at least the floor, twice the HEAD's round trip (bytes on the wire
// take about that to land), at most the ceiling.
const (
	settleQuietFloor   = 100 * time.Millisecond
	settleQuietCeiling = time.Second
)

// settle asks the upstream's offset after a PATCH of ours failed, and asks
// again until it can no longer move: it reached reach (all the bytes handed
// to the failed PATCH), or it stayed still for a quiet period. An aborted
// upstream request is over for us when its call returns, not for the
// upstream: its handler may still be reading bytes already on the wire, or
// not have started yet, and an offset answered meanwhile is stale (the
// client resumes from it and gets 409 or 423; issue 14). The whole wait is
// bounded by the upstream timeout; past it the last answer is recorded.
func (l *Lifecycle) settle(ctx context.Context, rec state.Record, reach int64) (state.Record, error) {
	deadline := time.Now().Add(l.cfg.UpstreamTimeout)
	last := int64(-1)
	for {
		began := time.Now()
		synced, err := l.syncOffset(ctx, rec)
		if err != nil || synced.Offset >= reach || synced.Offset == last {
			return synced, err
		}
		last, rec = synced.Offset, synced
		quiet := min(max(2*time.Since(began), settleQuietFloor), settleQuietCeiling)
		if time.Now().Add(quiet).After(deadline) {
			return synced, nil
		}
		if pause(ctx, quiet); ctx.Err() != nil {
			return synced, nil
		}
	}
}

// syncOffset asks the upstream for the upload's offset and records it. On a
// transient failure the record is returned unchanged with the error: a HEAD
// that failed moved no bytes, so the record is as certain as it was. When
// the upstream no longer has the upload, the record is dropped (ErrGone or
// ErrNotFound).
func (l *Lifecycle) syncOffset(ctx context.Context, rec state.Record) (state.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.UpstreamTimeout)
	defer cancel()
	began := time.Now()
	st, err := l.upstream.Head(ctx, rec.Endpoint)
	if err == nil {
		err = l.checkUpstreamOffset("head", rec, st.Offset, 0)
	}
	l.called("head", began, err)
	if err != nil {
		var ue *tusproto.Error
		if errors.As(err, &ue) && ue.Gone() {
			return rec, l.forget(ctx, rec, ue.Status)
		}
		l.log.Warn("upstream head failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		return rec, err
	}
	if st.Offset == rec.Offset && !rec.OffsetUncertain {
		return rec, nil
	}
	if st.Offset < rec.Offset {
		l.publish(Event{Kind: OffsetMismatch, At: l.now(), Upload: rec, Detail: SideUpstream})
		l.log.Warn("upstream offset is behind the record; trusting the upstream", slog.String("upload_id", rec.ID),
			slog.Int64("recorded", rec.Offset), slog.Int64("upstream", st.Offset))
	}
	updated, err := l.recordOffset(ctx, rec.ID, st.Offset)
	if err != nil && !errors.Is(err, ErrNotFound) {
		// The store failed (logged by recordOffset), but the upstream's
		// answer is known: use it rather than fail a HEAD.
		rec.Offset, rec.OffsetUncertain = st.Offset, false
		return rec, nil
	}
	return updated, err
}

// checkUpstreamOffset refuses an offset the upstream answered that cannot be
// this upload's: below least (0 for HEAD, where the PATCH started for
// PATCH) or past the upload's length. Such an answer is an upstream failure
// like a malformed one: never stored, never shown to the client, who would
// otherwise resume from a byte that does not exist.
func (l *Lifecycle) checkUpstreamOffset(op string, rec state.Record, offset, least int64) error {
	if offset >= least && offset <= rec.Length {
		return nil
	}
	l.log.Error("upstream answered an offset outside the upload", slog.String("op", op), slog.String("upload_id", rec.ID),
		slog.Int64("upstream_offset", offset), slog.Int64("length", rec.Length))
	return &tusproto.Error{Op: op, Kind: tusproto.KindBadResponse, Offset: -1}
}

// markUncertain records that the upload's offset may be behind the
// upstream. stored is false when the store failed (rec is returned as is).
func (l *Lifecycle) markUncertain(ctx context.Context, rec state.Record) (state.Record, bool) {
	if rec.OffsetUncertain {
		return rec, true
	}
	updated, err := l.store.Update(context.WithoutCancel(ctx), rec.ID, func(r *state.Record) error {
		r.OffsetUncertain = true
		return nil
	})
	if err != nil {
		l.log.Error("state store update failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		l.storeError(OpUpdate)
		return rec, false
	}
	return updated, true
}

// recordProgress stores the offset the upstream confirmed to this write. It
// never moves the record back: a write that lost its upload's lock (its
// replica stalled past the lease) and records late must not undo what the
// new holder recorded since. The record returned carries this write's own
// offset, which its answer reports; on a store failure it is rec with that
// offset, never an empty record.
func (l *Lifecycle) recordProgress(ctx context.Context, rec state.Record, offset int64) (state.Record, error) {
	now := l.now()
	updated, err := l.store.Update(context.WithoutCancel(ctx), rec.ID, func(r *state.Record) error {
		if offset >= r.Offset || r.OffsetUncertain {
			r.Offset, r.OffsetUncertain = offset, false
		}
		r.UpdatedAt = now
		return nil
	}, l.durable(Completed, now))
	rec.Offset, rec.OffsetUncertain = offset, false
	if errors.Is(err, state.ErrNotFound) {
		return rec, ErrNotFound
	}
	if err != nil {
		return rec, l.storeFailed(OpUpdate, rec.ID, err)
	}
	updated.Offset, updated.OffsetUncertain = offset, false
	return updated, nil
}

// recordOffset stores the upstream's offset as HEAD answered it: the truth,
// which replaces the record's whatever it was.
func (l *Lifecycle) recordOffset(ctx context.Context, id string, offset int64) (state.Record, error) {
	now := l.now()
	rec, err := l.store.Update(context.WithoutCancel(ctx), id, func(r *state.Record) error {
		r.Offset = offset
		r.OffsetUncertain = false
		r.UpdatedAt = now
		return nil
	}, l.durable(Completed, now))
	if errors.Is(err, state.ErrNotFound) {
		return rec, ErrNotFound
	}
	if err != nil {
		return rec, l.storeFailed(OpUpdate, id, err)
	}
	return rec, nil
}

// forget drops a record the upstream no longer knows and returns the error
// that mirrors the upstream's status: ErrGone for 410, else ErrNotFound.
func (l *Lifecycle) forget(ctx context.Context, rec state.Record, status int) error {
	lost := l.event(Lost, rec)
	lost.UpstreamStatus = status
	if err := l.store.Delete(context.WithoutCancel(ctx), rec.ID, l.durable(Lost, lost.At)); err != nil {
		// The record stays; the next request asks the upstream again and
		// gets the same answer. The fact is reported all the same: the
		// upload is lost whatever the store holds.
		l.log.Error("state store delete failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		l.storeError(OpDelete)
	}
	l.publish(lost)
	if status == http.StatusGone {
		return ErrGone
	}
	return ErrNotFound
}
