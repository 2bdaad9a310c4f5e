package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// creation is what a client asks for when it starts an upload.
type creation struct {
	length      int64
	metadata    tusproto.Metadata
	rawMetadata string // Upload-Metadata exactly as sent, answered back by HEAD
	// uploadID is the id the upload's record will have, chosen before
	// Kinescope is called so an intent can be recorded under it; "" for
	// the seed flow, which stores no record.
	uploadID string
}

// parseCreation validates a tus creation request's headers. Everything is
// checked before Kinescope is called, so a refused request creates no video.
func parseCreation(r *http.Request, cfg *config.Config) (creation, error) {
	h := r.Header
	if h.Get(tusproto.HeaderUploadConcat) != "" {
		return creation{}, errConcatUnsupported
	}
	if h.Get(tusproto.HeaderUploadDeferLength) != "" {
		return creation{}, errDeferUnsupported
	}
	raw := h.Get(tusproto.HeaderUploadLength)
	if raw == "" {
		return creation{}, errLengthMissing
	}
	length, err := tusproto.ParseSize(raw)
	if err != nil {
		return creation{}, errLengthInvalid.withMessage("Upload-Length: " + err.Error())
	}
	if err := checkLength(length, cfg.MaxSize); err != nil {
		return creation{}, err
	}
	if err := checkMetadataSize(h, cfg.MaxMetadataBytes); err != nil {
		return creation{}, err
	}
	c := creation{length: length, rawMetadata: h.Get(tusproto.HeaderUploadMetadata)}
	if c.metadata, err = tusproto.ParseMetadata(c.rawMetadata); err != nil {
		return creation{}, errMetadataInvalid.withMessage(err.Error())
	}
	return c, nil
}

// checkMetadataSize refuses Upload-Metadata above TUSPROXY_MAX_METADATA_BYTES.
// It is stored with the upload for as long as it lives, so without a cap
// each unfinished creation could park up to the whole header cap (64 KiB)
// in the store. Every Upload-Metadata line counts, though only the first is
// used, so none slips past by being split.
func checkMetadataSize(h http.Header, maxBytes int64) error {
	size := 0
	for _, v := range h.Values(tusproto.HeaderUploadMetadata) {
		size += len(v)
	}
	if int64(size) > maxBytes {
		return errMetadataTooLarge.withMessage(fmt.Sprintf(
			"Upload-Metadata has %d bytes; this server accepts at most %d (file name, type and title fit easily)",
			size, maxBytes))
	}
	return nil
}

// checkLength applies the size rules shared by tus creation and the seed
// endpoint: Kinescope needs a positive size, and the operator may cap it.
func checkLength(length, maxSize int64) error {
	if length <= 0 {
		return errLengthInvalid.withMessage("Upload-Length must be greater than 0: Kinescope does not take empty files")
	}
	if maxSize > 0 && length > maxSize {
		return errTooLarge.withMessage(fmt.Sprintf("Upload-Length %d exceeds the maximum upload size of %d bytes", length, maxSize))
	}
	return nil
}

// startUpload is the start of every upload, tus or seed flow, before
// Kinescope is called: the per-address creation rate, the auth decision,
// and what Kinescope will be asked.
func (s *Service) startUpload(r *http.Request, c creation) (kinescope.InitRequest, grant, error) {
	if err := s.creations.allowCreate(r.Context(), s.proxies.clientKey(r), s.now()); err != nil {
		return kinescope.InitRequest{}, grant{}, err
	}
	g, err := s.access.authorizeCreate(r, c)
	if err != nil {
		return kinescope.InitRequest{}, g, err
	}
	filename := c.metadata["filename"]
	if filename == "" {
		filename = c.metadata["name"] // Uppy's key
	}
	title, description := c.metadata["title"], c.metadata["description"]
	if g.title != "" {
		title = g.title
	}
	if g.description != "" {
		description = g.description
	}
	req := kinescope.InitRequest{
		ParentID:    g.parentID,
		Type:        "video",
		Title:       kinescope.TitleFor(title, filename),
		Filename:    filename,
		Filesize:    c.length,
		Description: description,
	}
	if ip := s.proxies.clientIP(r); ip.IsValid() {
		req.ClientIP = ip.String()
	}
	return req, g, nil
}

// noteInit puts Kinescope's request id of an init, successful or not, in
// the request's log line.
func noteInit(r *http.Request, requestID string, err error) {
	var ue *upload.UpstreamError
	if errors.As(err, &ue) && ue.RequestID != "" {
		requestID = ue.RequestID
	}
	noteKinescopeRequest(r, requestID)
}

// handleCreate starts an upload (tus 1.0.0 "creation"): Kinescope's /v2/init
// is called, the endpoint it issues is stored with a new id of ours, and the
// client gets a Location on our own origin. A body sent with the POST
// (creation-with-upload) is forwarded as the first chunk.
func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	c, err := parseCreation(r, s.cfg)
	if err != nil {
		answer(w, r, err)
		return
	}
	c.uploadID = upload.NewID()
	contentType := r.Header.Get("Content-Type")
	hasBody := r.ContentLength > 0 || (r.ContentLength < 0 && tusproto.IsOffsetStream(contentType))
	if hasBody {
		if !tusproto.IsOffsetStream(contentType) {
			answer(w, r, errContentType)
			return
		}
		if r.ContentLength > c.length {
			answer(w, r, errBodyTooLarge.withMessage(fmt.Sprintf(
				"the body has %d bytes but Upload-Length is %d", r.ContentLength, c.length)))
			return
		}
	}
	if !s.life.StoreUsable(r.Context()) {
		answer(w, r, errStateUnavailable)
		return
	}
	req, g, err := s.startUpload(r, c)
	if err != nil {
		answer(w, r, err)
		return
	}
	location := s.uploadURL(r, c.uploadID)
	st, requestID, err := s.life.Create(r.Context(), upload.CreateRequest{
		ID: c.uploadID, Length: c.length, Metadata: c.rawMetadata, Owner: g.owner, Init: req,
		URL: location, Context: g.context,
	})
	noteInit(r, requestID, err)
	if st.ID != "" {
		noteUpload(r, st.ID, st.VideoID)
	}
	if err != nil {
		answer(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Location", location)
	setVideoID(h, st.VideoID)
	if hasBody {
		if st, err = s.createWithUpload(w, r, st); err != nil {
			return
		}
	}
	h.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(st.Offset))
	setExpires(h, st.Expires)
	w.WriteHeader(http.StatusCreated)
}

// createWithUpload forwards the body of a creation request. If forwarding
// fails the upload still exists, so the client gets its 201 and Location
// with the offset the upstream kept, and resumes from there like after any
// interrupted PATCH (tusd drops the Location in this case, orphaning the
// video). It answers the client itself only when there is no upload left.
func (s *Service) createWithUpload(w http.ResponseWriter, r *http.Request, created upload.Status) (upload.Status, error) {
	body, done, err := s.startStream(w, r)
	if err != nil {
		return created, nil // over a limit, or shutting down: the client resumes from offset 0
	}
	defer done()
	h, err := s.life.Hold(r.Context(), created.Record, body.release)
	if err != nil {
		return created, nil
	}
	defer h.Close()
	st, err := h.Write(r.Context(), created.Offset, body, r.ContentLength)
	if err != nil {
		var tooLarge *upload.BodyTooLargeError
		if errors.Is(err, upload.ErrGone) || errors.Is(err, upload.ErrNotFound) || errors.As(err, &tooLarge) {
			w.Header().Del("Location")
			answer(w, r, err)
			return st, err
		}
		s.log.Warn("creation-with-upload: body not fully forwarded; client will resume", slog.String("upload_id", st.ID),
			slog.Int64("offset", st.Offset), slog.String("error", err.Error()))
	}
	return st, nil
}
