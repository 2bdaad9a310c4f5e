package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// The handlers of an existing upload (HEAD, PATCH, DELETE) and what they
// share. Each is thin: headers in, one lifecycle operation, headers out or
// answer(err).

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
	h, err := s.openUpload(w, r, id, "head", func() {})
	if err != nil {
		answer(w, r, err)
		return
	}
	defer h.Close()
	st, err := h.Offset(r.Context())
	if err != nil {
		answer(w, r, err) // the upstream no longer has it
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(st.Offset))
	hdr.Set(tusproto.HeaderUploadLength, tusproto.FormatSize(st.Length))
	if st.Metadata != "" {
		hdr.Set(tusproto.HeaderUploadMetadata, st.Metadata)
	}
	setExpires(hdr, st.Expires)
	w.WriteHeader(http.StatusOK)
}

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
	h, err := s.openUpload(w, r, id, "patch", body.release)
	if err != nil {
		answer(w, r, err)
		return
	}
	defer h.Close()
	st, err := h.Write(r.Context(), offset, body, r.ContentLength)
	if err != nil {
		answer(w, r, err)
		return
	}
	hdr := w.Header()
	hdr.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(st.Offset))
	setExpires(hdr, st.Expires)
	w.WriteHeader(http.StatusNoContent)
}

// startStream is the prologue shared by every request whose body goes
// upstream (PATCH, creation-with-upload): the body, counted among the
// streams in flight under the per-address and process caps. done must be
// called once the body is finished with.
func (s *Service) startStream(w http.ResponseWriter, r *http.Request) (body *bodyReader, done func(), err error) {
	body = s.newBodyReader(w, r)
	done, err = s.streams.start(r.Context(), s.proxies.clientKey(r), body, s.now())
	return body, done, err
}

// openUpload opens an existing upload for a request: the caller's access
// (401 without a valid token; 404 when the hook refuses or the caller does
// not own the upload), the upload's lock and its record. onRelease is how
// a later request for the upload asks this one to let go.
//
// Once the record is open, every answer to the request, success or error
// (409, 423, 502...), names the upload's Kinescope video: the caller has
// passed the access check by then, so the id is told only to whoever may
// use the upload.
func (s *Service) openUpload(w http.ResponseWriter, r *http.Request, id, op string, onRelease func()) (*upload.Handle, error) {
	authorize, err := s.access.authorizer(r, op)
	if err != nil {
		return nil, err
	}
	open := s.life.Open
	if op == "patch" {
		open = s.life.OpenWrite
	}
	h, err := open(r.Context(), id, authorize, onRelease)
	if errors.Is(err, upload.ErrExpired) {
		noteUpload(r, id, "") // it existed: its log line names it
	}
	if err != nil {
		return nil, err
	}
	noteUpload(r, id, h.Opened.VideoID)
	setVideoID(w.Header(), h.Opened.VideoID)
	return h, nil
}

// handleDelete terminates an upload (tus 1.0.0 "termination"): the
// lifecycle deletes it upstream and forgets its record. An upstream failure
// keeps the record and answers 502/504 so the client can try again.
func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	// Taking the lock stops a PATCH still streaming to this upload.
	h, err := s.openUpload(w, r, id, "delete", func() {})
	if err != nil {
		answer(w, r, err)
		return
	}
	defer h.Close()
	if err := h.Terminate(r.Context()); err != nil {
		answer(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// uploadID takes the id from the path; an id that upload.NewID could not have
// made is answered 404 without touching the store.
func uploadID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if !upload.ValidID(id) {
		answer(w, r, errUploadNotFound)
		return "", false
	}
	return id, true
}

// headerVideoID names the Kinescope video of an upload in every answer
// about it (creation, HEAD, PATCH, DELETE), so the application learns which
// video its upload became without asking its own backend.
const headerVideoID = "Kinescope-Video-Id"

// setVideoID writes Kinescope-Video-Id when the id is known. The id is
// Kinescope's text, so it passes the filter of Kinescope's request ids (an
// id token of at most 128 bytes, or nothing): its ids are UUIDs, and
// nothing else from whoever answers at the init URL reaches a client.
func setVideoID(h http.Header, videoID string) {
	if id := clientRequestID(videoID); id != "" {
		h.Set(headerVideoID, id)
	}
}

// setExpires writes Upload-Expires (tus expiration extension) when uploads expire.
func setExpires(h http.Header, expires time.Time) {
	if !expires.IsZero() {
		h.Set(tusproto.HeaderUploadExpires, expires.UTC().Format(http.TimeFormat))
	}
}
