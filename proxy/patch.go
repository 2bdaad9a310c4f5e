package proxy

import (
	"net/http"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
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
		answer(w, r, errContentType)
		return
	}
	offset, err := tusproto.ParseSize(r.Header.Get(tusproto.HeaderUploadOffset))
	if err != nil {
		answer(w, r, errOffsetInvalid.withMessage("Upload-Offset: "+err.Error()))
		return
	}
	body, done, err := s.startStream(w, r)
	if err != nil {
		answer(w, r, err)
		return
	}
	defer done()
	h, err := s.openUpload(r, id, "patch", body.release)
	if err != nil {
		answer(w, r, err)
		return
	}
	defer h.Close()
	rec, err := h.Write(r.Context(), offset, body, r.ContentLength)
	if err != nil {
		answer(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(rec.Offset))
	s.setExpires(hdr, rec)
	w.WriteHeader(http.StatusNoContent)
}

// startStream is the prologue shared by every request whose body goes
// upstream (PATCH, creation-with-upload): the body, counted among the
// streams in flight under the per-address and process caps. done must be
// called once the body is finished with.
func (s *Service) startStream(w http.ResponseWriter, r *http.Request) (body *bodyReader, done func(), err error) {
	body = s.newBodyReader(w, r)
	done, err = s.streams.start(s.clientIP(r), body, s.now())
	return body, done, err
}

// openUpload opens an existing upload for a request: the caller's access
// (401 without a valid token; 404 when the hook refuses or the caller does
// not own the upload), the upload's lock and its record. onRelease is how
// a later request for the upload asks this one to let go.
func (s *Service) openUpload(r *http.Request, id, op string, onRelease func()) (*upload.Handle, error) {
	authorize, err := s.authorizer(r, op)
	if err != nil {
		return nil, err
	}
	h, err := s.life.Open(r.Context(), id, authorize, onRelease)
	if err != nil {
		return nil, err
	}
	noteUpload(r, id, h.Record().VideoID)
	return h, nil
}
