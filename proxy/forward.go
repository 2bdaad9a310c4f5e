package proxy

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

// recordEvery is how often a long client PATCH records the offsets the
// upstream confirmed while it streams. The record is the upstream's offset
// as last seen, not the truth (HEAD asks the upstream), so it needs no write
// per upstream PATCH; it is always written when the client PATCH ends.
const recordEvery = time.Second

// forward streams a client's body to the upstream, starting at rec.Offset.
// declared is the body's Content-Length, or -1 when the client sends it
// chunked. A body longer than the upstream chunk size goes upstream as
// consecutive PATCHes, each checked by the upstream against its offset; with
// chunk size 0 it goes as one. It returns the record as it stands
// afterwards, also on error.
func (s *Service) forward(r *http.Request, rec state.Record, body *bodyReader, declared int64) (state.Record, error) {
	chunk := s.cfg.UpstreamChunkSize
	if chunk <= 0 {
		// Never split: each split costs an upstream request turnaround
		// (BENCHMARKS.md), and Kinescope takes whole-file PATCHes, which is
		// what tus-js-client sends by default (chunkSize Infinity).
		chunk = math.MaxInt64
	}
	remaining := rec.Length - rec.Offset
	stored, lastStored := rec.Offset, time.Now()
	confirmed := rec.Offset // what the upstream confirmed, counted as accepted

	progress := s.metrics.series.patchStarted(rec, body.bytesRead())
	defer func() { s.patchDone(progress, rec, body.bytesRead().Load()) }()

	// fail hands a failure over with the record as stored: what the
	// upstream confirmed since is asked again there.
	fail := func(err error) (state.Record, error) {
		rec.Offset = stored
		var ferr error
		rec, ferr = s.afterFailure(r, rec, body, err)
		s.metrics.acceptedBytes(rec.Offset - confirmed)
		return rec, ferr
	}
	for remaining > 0 {
		var segment io.Reader
		var size int64
		if declared >= 0 {
			if declared == 0 {
				break
			}
			size = min(chunk, declared)
			segment = io.LimitReader(body, size)
		} else {
			// Chunked from the client: the segment's length is unknown, so
			// it goes upstream chunked too. Peek one byte first so an ended
			// body costs no empty upstream PATCH.
			var first [1]byte
			n, err := io.ReadFull(body, first[:])
			if n == 0 {
				if err != nil && err != io.EOF {
					return fail(err)
				}
				break
			}
			size = -1
			segment = io.MultiReader(bytes.NewReader(first[:n]), io.LimitReader(body, min(chunk, remaining)-1))
		}
		began := time.Now()
		newOffset, err := s.upstream.Patch(r.Context(), rec.Endpoint, rec.Offset, segment, size)
		if err == nil {
			err = s.checkUpstreamOffset("patch", rec, newOffset, rec.Offset)
		}
		s.metrics.upstream(opPatch, err, time.Since(began))
		if err != nil {
			return fail(err)
		}
		moved := newOffset - rec.Offset
		s.metrics.acceptedBytes(moved)
		confirmed = newOffset
		rec.Offset = newOffset
		if time.Since(lastStored) >= recordEvery {
			if rec, err = s.recordProgress(r.Context(), rec, newOffset); err != nil {
				return rec, err
			}
			stored, lastStored = newOffset, time.Now()
		}
		remaining -= moved
		if declared >= 0 {
			declared -= moved
		} else if moved < min(chunk, remaining+moved) {
			break // the chunked body ended inside this segment
		}
	}
	if rec.Offset != stored {
		var err error
		if rec, err = s.recordProgress(r.Context(), rec, rec.Offset); err != nil {
			return rec, err
		}
	}
	if declared < 0 && remaining == 0 {
		// Nothing past the declared length is forwarded; a chunked body that
		// still has bytes is told so.
		var extra [1]byte
		if n, _ := body.Read(extra[:]); n > 0 {
			return rec, errBodyTooLarge
		}
	}
	return rec, nil
}

// afterFailure handles an upstream PATCH that did not succeed. Whatever
// failed, the upstream may have kept part of the segment (tus servers SHOULD
// keep what they received), so it is asked, and exactly that is recorded:
// the client's next HEAD resumes at the right byte.
func (s *Service) afterFailure(r *http.Request, rec state.Record, body *bodyReader, cause error) (state.Record, error) {
	var ue *tusproto.Error
	errors.As(cause, &ue)
	if ue != nil && ue.Gone() {
		s.metrics.reconciliation(reconcileGone)
		return rec, s.forget(r.Context(), rec, ue.Status)
	}
	if ue != nil && ue.Kind == tusproto.KindStatus && ue.Status == http.StatusConflict {
		s.metrics.offsetMismatch(sideUpstream)
	}
	synced, err := s.syncOffset(context.WithoutCancel(r.Context()), rec)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e == errUploadGone || e == errUploadNotFound) {
			s.metrics.reconciliation(reconcileGone)
			return rec, err
		}
		// Bytes may have moved and the upstream cannot say how many: the
		// next PATCH asks again before trusting the record.
		s.metrics.reconciliation(reconcileUncertain)
		synced = s.markUncertain(r.Context(), rec)
	} else {
		s.metrics.reconciliation(reconcileSynced)
	}
	if stop := body.failure(); stop != nil {
		s.log.Info("patch stopped", slog.String("upload_id", rec.ID), slog.String("reason", stop.Code),
			slog.Int64("offset", synced.Offset))
		return synced, stop
	}
	if ue == nil {
		s.log.Error("upstream patch failed", slog.String("upload_id", rec.ID), slog.String("error", cause.Error()))
		return synced, errUpstreamFailed
	}
	s.log.Warn("upstream patch failed", slog.String("upload_id", rec.ID), slog.String("error", ue.Error()),
		slog.Int64("offset", synced.Offset))
	switch {
	case ue.Kind == tusproto.KindStatus && ue.Status == http.StatusConflict:
		return synced, errUpstreamConflict
	case ue.Kind == tusproto.KindTimeout:
		return synced, errUpstreamTimeout
	case ue.Kind == tusproto.KindCanceled:
		return synced, errClientGone
	default:
		return synced, errUpstreamFailed
	}
}

// syncOffset asks the upstream for the upload's offset and records it. On a
// transient failure the record is returned unchanged with the error: a HEAD
// that failed moved no bytes, so the record is as certain as it was. When
// the upstream no longer has the upload, the record is dropped.
func (s *Service) syncOffset(ctx context.Context, rec state.Record) (state.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamTimeout)
	defer cancel()
	began := time.Now()
	st, err := s.upstream.Head(ctx, rec.Endpoint)
	if err == nil {
		err = s.checkUpstreamOffset("head", rec, st.Offset, 0)
	}
	s.metrics.upstream(opHead, err, time.Since(began))
	if err != nil {
		var ue *tusproto.Error
		if errors.As(err, &ue) && ue.Gone() {
			return rec, s.forget(ctx, rec, ue.Status)
		}
		s.log.Warn("upstream head failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		return rec, err
	}
	if st.Offset == rec.Offset && !rec.OffsetUncertain {
		return rec, nil
	}
	if st.Offset < rec.Offset {
		s.metrics.offsetMismatch(sideUpstream)
		s.log.Warn("upstream offset is behind the record; trusting the upstream", slog.String("upload_id", rec.ID),
			slog.Int64("recorded", rec.Offset), slog.Int64("upstream", st.Offset))
	}
	updated, err := s.recordOffset(ctx, rec.ID, st.Offset)
	if err != nil && !errors.Is(err, errUploadNotFound) {
		// The store failed (logged by recordOffset), but the upstream's
		// answer is known: use it rather than fail a HEAD with a 5xx.
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
func (s *Service) checkUpstreamOffset(op string, rec state.Record, offset, least int64) error {
	if offset >= least && offset <= rec.Length {
		return nil
	}
	s.log.Error("upstream answered an offset outside the upload", slog.String("op", op), slog.String("upload_id", rec.ID),
		slog.Int64("upstream_offset", offset), slog.Int64("length", rec.Length))
	return &tusproto.Error{Op: op, Kind: tusproto.KindBadResponse, Offset: -1}
}

// markUncertain records that the upload's offset may be behind the upstream.
func (s *Service) markUncertain(ctx context.Context, rec state.Record) state.Record {
	if rec.OffsetUncertain {
		return rec
	}
	updated, err := s.store.Update(context.WithoutCancel(ctx), rec.ID, func(r *state.Record) error {
		r.OffsetUncertain = true
		return nil
	})
	if err != nil {
		s.log.Error("state store update failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
		return rec
	}
	return updated
}

// recordProgress stores the offset the upstream confirmed to this request's
// PATCH. It never moves the record back: a request that lost its upload's
// lock (its replica stalled past the lease) and records late must not undo
// what the new holder recorded since. The record returned carries this
// request's own offset, which its answer reports; on a store failure it is
// rec with that offset, never an empty record.
func (s *Service) recordProgress(ctx context.Context, rec state.Record, offset int64) (state.Record, error) {
	now := s.now()
	updated, err := s.store.Update(context.WithoutCancel(ctx), rec.ID, func(r *state.Record) error {
		if offset >= r.Offset || r.OffsetUncertain {
			r.Offset, r.OffsetUncertain = offset, false
		}
		r.UpdatedAt = now
		return nil
	})
	rec.Offset, rec.OffsetUncertain = offset, false
	if errors.Is(err, state.ErrNotFound) {
		return rec, errUploadNotFound
	}
	if err != nil {
		return rec, s.storeFailed("update", rec.ID, err)
	}
	updated.Offset, updated.OffsetUncertain = offset, false
	return updated, nil
}

// recordOffset stores the upstream's offset as HEAD answered it: the truth,
// which replaces the record's whatever it was.
func (s *Service) recordOffset(ctx context.Context, id string, offset int64) (state.Record, error) {
	now := s.now()
	rec, err := s.store.Update(context.WithoutCancel(ctx), id, func(r *state.Record) error {
		r.Offset = offset
		r.OffsetUncertain = false
		r.UpdatedAt = now
		return nil
	})
	if errors.Is(err, state.ErrNotFound) {
		return rec, errUploadNotFound
	}
	if err != nil {
		return rec, s.storeFailed("update", id, err)
	}
	return rec, nil
}

// forget drops a record the upstream no longer knows and returns the error
// that mirrors the upstream's status (404 or 410).
func (s *Service) forget(ctx context.Context, rec state.Record, status int) error {
	if err := s.store.Delete(context.WithoutCancel(ctx), rec.ID); err != nil {
		s.log.Error("state store delete failed", slog.String("upload_id", rec.ID), slog.String("error", err.Error()))
	}
	s.metrics.series.finished(rec.ID)
	s.log.Warn("upstream no longer has the upload; record dropped", slog.String("upload_id", rec.ID),
		slog.String("video_id", rec.VideoID), slog.Int("upstream_status", status))
	if status == http.StatusGone {
		return errUploadGone
	}
	return errUploadNotFound
}

// patchDone ends the metrics of one PATCH (or creation with data): the
// upload's series get its offset, and a PATCH that delivered the last byte
// completes the upload.
func (s *Service) patchDone(p *patchProgress, rec state.Record, read int64) {
	if elapsed := s.now().Sub(p.began); read >= 1<<20 && elapsed > 0 {
		s.metrics.patchRate.Observe(float64(read) / elapsed.Seconds())
	}
	if s.metrics.series.patchEnded(p, rec.Offset) {
		s.metrics.uploadsCompleted.Inc()
		s.metrics.uploadTime.Observe(s.now().Sub(rec.CreatedAt).Seconds())
	}
}
