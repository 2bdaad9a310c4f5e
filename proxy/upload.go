package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// acquireUpload runs what every request for an existing upload starts with:
// the owner check, the upload's lock (asking any holder to let go; onRelease
// is how this request is asked in turn) and its record. When a step fails it
// answers the client itself and returns false; otherwise the caller must
// call release.
func (s *Service) acquireUpload(w http.ResponseWriter, r *http.Request, id, op string, onRelease func()) (rec state.Record, release func(), ok bool) {
	if !s.checkAccess(w, r, id, op) {
		return rec, nil, false
	}
	lock, err := s.lockUpload(r.Context(), id, onRelease)
	if err != nil {
		s.fail(w, r, err)
		return rec, nil, false
	}
	if rec, ok = s.loadUpload(w, r, id); !ok {
		_ = lock.Unlock()
		return rec, nil, false
	}
	return rec, func() { _ = lock.Unlock() }, true
}

// loadUpload reads an upload's record for a request that holds its lock,
// answering 404 or 410 itself when there is none to use.
func (s *Service) loadUpload(w http.ResponseWriter, r *http.Request, id string) (state.Record, bool) {
	rec, ok := s.getRecord(w, r, id)
	if !ok {
		return rec, false
	}
	noteUpload(r, rec.ID, rec.VideoID)
	if s.expired(rec) {
		writeError(w, r, errUploadExpired)
		return rec, false
	}
	return rec, true
}

// getRecord reads an upload's record, answering 404 (unknown) or the store's
// failure itself when there is none.
func (s *Service) getRecord(w http.ResponseWriter, r *http.Request, id string) (state.Record, bool) {
	rec, err := s.store.Get(r.Context(), id)
	if err == nil {
		return rec, true
	}
	if errors.Is(err, state.ErrNotFound) {
		writeError(w, r, errUploadNotFound)
	} else {
		writeError(w, r, s.storeFailed("get", id, err))
	}
	return rec, false
}

// checkAccess answers itself (and returns false) when auth is configured
// and the caller may not use the upload: 401 without a valid token in JWT
// mode, 404 when the hook refuses or the caller does not own the upload. It
// runs before the upload's lock is taken, so a stranger cannot even
// interrupt a PATCH in flight; an upload's owner never changes, so reading
// its record unlocked is safe.
func (s *Service) checkAccess(w http.ResponseWriter, r *http.Request, id, op string) bool {
	if s.jwt == nil && s.hook == nil {
		return true
	}
	claims, err := s.authenticate(r)
	if err != nil {
		writeError(w, r, err)
		return false
	}
	rec, ok := s.getRecord(w, r, id)
	if !ok {
		return false
	}
	if err := s.authorizeAccess(r, op, claims, rec); err != nil {
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

// storeFailed logs a failure of the state store (or of the lock service
// next to it) and returns the answer for the client: 503 with Retry-After
// (423 for HEAD, see writeError). Nothing stored is lost: the request did
// not change anything, and the client retries once the store is back.
func (s *Service) storeFailed(op, id string, err error) *Error {
	if errors.Is(err, context.Canceled) {
		// The client went away while the store answered: not an outage.
		return errClientGone
	}
	s.storeDown.Store(true)
	s.log.Error("state store failed", slog.String("op", op), slog.String("upload_id", id), slog.String("error", err.Error()))
	return errStateUnavailable
}

// storeUsable is false while the store is known to be failing and does not
// answer a ping. Creation checks it before asking Kinescope for a video, so
// an outage does not leave a trail of videos without records.
func (s *Service) storeUsable(ctx context.Context) bool {
	if !s.storeDown.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return false
	}
	s.storeDown.Store(false)
	return true
}
