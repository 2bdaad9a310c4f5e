package proxy

import (
	"fmt"
	"net/http"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// handlePatch streams a chunk of the upload to the Kinescope endpoint
// (tus 1.0.0 "PATCH").
func (s *Service) handlePatch(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	// tus 1.0.0: a PATCH with another Content-Type SHOULD get 415 (tusd: 400).
	if !tusproto.IsOffsetStream(r.Header.Get("Content-Type")) {
		writeError(w, r, errContentType)
		return
	}
	offset, err := tusproto.ParseSize(r.Header.Get(tusproto.HeaderUploadOffset))
	if err != nil {
		writeError(w, r, errOffsetInvalid.withMessage("Upload-Offset: "+err.Error()))
		return
	}
	release, err := s.limits.startPatch(s.clientIP(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer release()
	body := s.newBodyReader(w, r)
	untrack, ok := s.track(body)
	if !ok {
		writeError(w, r, errShuttingDown)
		return
	}
	defer untrack()
	// A later request for this upload asks us to let go: stop reading the
	// body, record what the upstream kept, and release the lock.
	rec, unlock, ok := s.acquireUpload(w, r, id, "patch", func() { body.interrupt(errInterrupted) })
	if !ok {
		return
	}
	defer unlock()
	if rec.OffsetUncertain {
		// The last PATCH failed before the upstream could be asked; try now.
		// If it still cannot be asked, go on: the upstream checks the offset
		// of every PATCH itself.
		if synced, err := s.syncOffset(r.Context(), rec); err == nil {
			rec = synced
		} else if _, isAnswer := err.(*Error); isAnswer {
			writeError(w, r, err)
			return
		}
	}
	if offset != rec.Offset {
		s.metrics.offsetMismatch(sideClient)
		writeError(w, r, errOffsetMismatch.withMessage(fmt.Sprintf(
			"Upload-Offset is %d but the upload is at %d; send HEAD and resume from its Upload-Offset", offset, rec.Offset)))
		return
	}
	if r.ContentLength > rec.Length-rec.Offset {
		writeError(w, r, errBodyTooLarge.withMessage(fmt.Sprintf(
			"the body has %d bytes but only %d remain of the upload", r.ContentLength, rec.Length-rec.Offset)))
		return
	}
	rec, err = s.forward(r, rec, body, r.ContentLength)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(rec.Offset))
	s.setExpires(h, rec)
	w.WriteHeader(http.StatusNoContent)
}
