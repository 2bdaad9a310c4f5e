package proxy

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// handleHead answers an upload's offset (tus 1.0.0 "HEAD"). The upstream is
// the source of truth: it is asked, and the record corrected to its answer.
// When it cannot be asked (timeout, 5xx, unreachable), the answer comes from
// the record, whose offset the upstream confirmed earlier: never a 5xx,
// because tus-js-client answers a 5xx to HEAD by starting a brand-new upload
// (a new Kinescope video). A stale offset is harmless: the upstream refuses a
// PATCH at the wrong offset, tusproxy then re-asks it, and the client gets a
// 409 and HEADs again.
func (s *Service) handleHead(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	if !s.checkAccess(w, r, id, "head") {
		return
	}
	// Taking the lock asks a stale PATCH of the same upload (a client that
	// lost its connection and is resuming) to stop, so the offset answered
	// is final; this is tusd's behaviour too.
	lock, err := s.lockUpload(r.Context(), id, func() {})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer lock.Unlock()

	rec, ok := s.loadUpload(w, r, id)
	if !ok {
		return
	}
	synced, err := s.syncOffset(r.Context(), rec)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			writeError(w, r, e) // the upstream no longer has it
			return
		}
		s.log.Warn("answering HEAD from the record", slog.String("upload_id", id), slog.Int64("offset", rec.Offset))
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(synced.Offset))
	h.Set(tusproto.HeaderUploadLength, tusproto.FormatSize(synced.Length))
	if synced.Metadata != "" {
		h.Set(tusproto.HeaderUploadMetadata, synced.Metadata)
	}
	s.setExpires(h, synced)
	w.WriteHeader(http.StatusOK)
}

// loadUpload reads an upload's record for a request that holds its lock,
// answering 404 or 410 itself when there is none to use.
func (s *Service) loadUpload(w http.ResponseWriter, r *http.Request, id string) (state.Record, bool) {
	rec, err := s.store.Get(r.Context(), id)
	if err != nil {
		if errors.Is(err, state.ErrNotFound) {
			writeError(w, r, errUploadNotFound)
		} else {
			s.fail(w, r, err)
		}
		return rec, false
	}
	noteUpload(r, rec.ID, rec.VideoID)
	if s.expired(rec) {
		writeError(w, r, errUploadExpired)
		return rec, false
	}
	return rec, true
}

// checkAccess answers 404 itself (and returns false) when auth is configured
// and the caller does not own the upload. It runs before the upload's lock
// is taken, so a stranger cannot even interrupt a PATCH in flight; an
// upload's owner never changes, so reading its record unlocked is safe.
func (s *Service) checkAccess(w http.ResponseWriter, r *http.Request, id, op string) bool {
	if s.jwt == nil && s.hook == nil {
		return true
	}
	rec, err := s.store.Get(r.Context(), id)
	if err != nil {
		if errors.Is(err, state.ErrNotFound) {
			writeError(w, r, errUploadNotFound)
		} else {
			s.fail(w, r, err)
		}
		return false
	}
	if err := s.authorizeAccess(r, op, rec); err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}

// fail answers err; anything that is not an *Error is logged here, where
// its text is known, and answered as a bare 500.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error("request failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	writeError(w, r, err)
}
