package proxy

import (
	"errors"
	"log/slog"
	"net/http"

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
	// Taking the lock asks a stale PATCH of the same upload (a client that
	// lost its connection and is resuming) to stop, so the offset answered
	// is final; this is tusd's behaviour too.
	rec, release, ok := s.acquireUpload(w, r, id, "head", func() {})
	if !ok {
		return
	}
	defer release()
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
