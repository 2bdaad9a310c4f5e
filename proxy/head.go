package proxy

import (
	"net/http"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// handleHead answers an upload's offset (tus 1.0.0 "HEAD"). The upstream is
// the source of truth: it is asked, and the record corrected to its answer.
// When it cannot be asked (timeout, 5xx, unreachable), the answer comes from
// the record, whose offset the upstream confirmed earlier: never a 5xx,
// because tus-js-client answers a 5xx to HEAD by starting a brand-new upload
// (a new Kinescope video); answer turns any 5xx of a HEAD into a 423. A stale
// offset is harmless: the upstream refuses a PATCH at the wrong offset,
// tusproxy then re-asks it, and the client gets a 409 and HEADs again.
func (s *Service) handleHead(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	// Taking the lock asks a stale PATCH of the same upload (a client that
	// lost its connection and is resuming) to stop, so the offset answered
	// is final; this is tusd's behaviour too.
	h, err := s.openUpload(r, id, "head", func() {})
	if err != nil {
		answer(w, r, err)
		return
	}
	defer h.Close()
	rec, err := h.Offset(r.Context())
	if err != nil {
		answer(w, r, err) // the upstream no longer has it
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(rec.Offset))
	hdr.Set(tusproto.HeaderUploadLength, tusproto.FormatSize(rec.Length))
	if rec.Metadata != "" {
		hdr.Set(tusproto.HeaderUploadMetadata, rec.Metadata)
	}
	s.setExpires(hdr, rec)
	w.WriteHeader(http.StatusOK)
}
