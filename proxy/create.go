package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/kinescope"
	"github.com/kinescope-tools/tusproxy/proxy/state"
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
func (s *Service) parseCreation(r *http.Request) (creation, error) {
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
	if err := s.checkLength(length); err != nil {
		return creation{}, err
	}
	if err := s.checkMetadataSize(h); err != nil {
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
func (s *Service) checkMetadataSize(h http.Header) error {
	size := 0
	for _, v := range h.Values(tusproto.HeaderUploadMetadata) {
		size += len(v)
	}
	if int64(size) > s.cfg.MaxMetadataBytes {
		return errMetadataTooLarge.withMessage(fmt.Sprintf(
			"Upload-Metadata has %d bytes; this server accepts at most %d (file name, type and title fit easily)",
			size, s.cfg.MaxMetadataBytes))
	}
	return nil
}

// checkLength applies the size rules shared by tus creation and the seed
// endpoint: Kinescope needs a positive size, and the operator may cap it.
func (s *Service) checkLength(length int64) error {
	if length <= 0 {
		return errLengthInvalid.withMessage("Upload-Length must be greater than 0: Kinescope does not take empty files")
	}
	if s.cfg.MaxSize > 0 && length > s.cfg.MaxSize {
		return errTooLarge.withMessage(fmt.Sprintf("Upload-Length %d exceeds the maximum upload size of %d bytes", length, s.cfg.MaxSize))
	}
	return nil
}

// startUpload is the start of every upload, tus or seed flow: the
// per-address creation rate, the auth decision, then Kinescope's /v2/init.
func (s *Service) startUpload(r *http.Request, c creation) (kinescope.Upload, grant, error) {
	if err := s.limits.allowCreate(s.clientIP(r), s.now()); err != nil {
		return kinescope.Upload{}, grant{}, err
	}
	g, err := s.authorizeCreate(r, c)
	if err != nil {
		return kinescope.Upload{}, g, err
	}
	up, err := s.initUpload(r, c, g)
	return up, g, err
}

// initUpload asks Kinescope for a tus endpoint and checks that it may be used.
func (s *Service) initUpload(r *http.Request, c creation, g grant) (kinescope.Upload, error) {
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
	if ip := s.clientIP(r); ip.IsValid() {
		req.ClientIP = ip.String()
	}
	if c.uploadID != "" {
		if err := s.recordIntent(r.Context(), c); err != nil {
			return kinescope.Upload{}, err
		}
	}
	began := time.Now()
	up, err := s.kinescope.Init(r.Context(), req)
	s.metrics.upstream(opInit, err, time.Since(began))
	if err != nil {
		s.metrics.initFailure(err)
		s.settleIntent(r.Context(), c.uploadID, err)
		return up, s.initError(r, err)
	}
	noteKinescopeRequest(r, up.RequestID)
	if err := s.endpoints.Check(up.Endpoint); err != nil {
		s.metrics.initFailures.WithLabelValues("bad_endpoint").Inc()
		// Logged without the endpoint itself: it is a secret too.
		s.log.Error("kinescope issued an endpoint outside TUSPROXY_UPSTREAM_HOSTS", slog.String("video_id", up.VideoID),
			slog.String("kinescope_request_id", up.RequestID), slog.String("reason", err.Error()))
		s.noteOrphan(r.Context(), c.uploadID, up.VideoID) // a video exists that no record will name
		return up, errUpstreamEndpoint
	}
	return up, nil
}

// initError maps a failed /v2/init to the answer for the client: tusproxy's
// own message, with Kinescope's request id when it gave one, so that the
// client can quote it to support. Kinescope's own text goes to the log only:
// whoever answers at the init URL must not be able to put words ("re-enter
// your password at ...") in front of the operator's users.
func (s *Service) initError(r *http.Request, err error) error {
	var ke *kinescope.Error
	if !errors.As(err, &ke) {
		s.log.Error("kinescope init failed", slog.String("error", err.Error()))
		return errUpstreamBadAnswer
	}
	noteKinescopeRequest(r, ke.RequestID)
	if ke.Kind != kinescope.KindCanceled {
		s.log.Warn("kinescope init failed", slog.String("reason", ke.Kind.String()), slog.Int("status", ke.Status),
			slog.Int("code", ke.Code), slog.String("message", ke.Message), slog.String("kinescope_request_id", ke.RequestID))
	}
	answer := func(e *Error) *Error {
		if id := clientRequestID(ke.RequestID); id != "" {
			return e.withMessage(e.Message + " (Kinescope request id " + id + ")")
		}
		return e
	}
	wait := func(e *Error) *Error {
		c := *answer(e)
		c.RetryAfter = max(ke.RetryAfter, defaultRetryAfter)
		return &c
	}
	switch ke.Kind {
	case kinescope.KindAuth:
		return answer(errUpstreamCredentials)
	case kinescope.KindLimit:
		return answer(errUpstreamLimit)
	case kinescope.KindBadRequest:
		return answer(errUpstreamBadRequest)
	case kinescope.KindRateLimited, kinescope.KindUnavailable:
		return wait(errUpstreamBusy)
	case kinescope.KindTimeout:
		return wait(errUpstreamTimeout)
	case kinescope.KindCanceled:
		return errClientGone
	default:
		return answer(errUpstreamBadAnswer)
	}
}

// maxClientRequestID bounds the request id quoted to clients.
const maxClientRequestID = 128

// clientRequestID returns Kinescope's request id if it looks like one (a
// token of letters, digits and . _ : -), else "": the header is upstream
// text too, and only an id is worth passing on.
func clientRequestID(id string) string {
	if id == "" || len(id) > maxClientRequestID {
		return ""
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return ""
		}
	}
	return id
}

// handleCreate starts an upload (tus 1.0.0 "creation"): Kinescope's /v2/init
// is called, the endpoint it issues is stored with a new id of ours, and the
// client gets a Location on our own origin. A body sent with the POST
// (creation-with-upload) is forwarded as the first chunk.
func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	c, err := s.parseCreation(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c.uploadID = newUploadID()
	contentType := r.Header.Get("Content-Type")
	hasBody := r.ContentLength > 0 || (r.ContentLength < 0 && tusproto.IsOffsetStream(contentType))
	if hasBody {
		if !tusproto.IsOffsetStream(contentType) {
			writeError(w, r, errContentType)
			return
		}
		if r.ContentLength > c.length {
			writeError(w, r, errBodyTooLarge.withMessage(fmt.Sprintf(
				"the body has %d bytes but Upload-Length is %d", r.ContentLength, c.length)))
			return
		}
	}
	if !s.storeUsable(r.Context()) {
		writeError(w, r, errStateUnavailable)
		return
	}
	up, g, err := s.startUpload(r, c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	rec := state.Record{
		ID:        c.uploadID,
		VideoID:   up.VideoID,
		Endpoint:  up.Endpoint,
		Length:    c.length,
		Metadata:  c.rawMetadata,
		Owner:     g.owner,
		CreatedAt: now,
		UpdatedAt: now,
	}
	noteUpload(r, rec.ID, rec.VideoID)
	// Create removes the intent recorded before init in the same write.
	if err := s.store.Create(context.WithoutCancel(r.Context()), rec); err != nil {
		s.log.Error("the Kinescope video is orphaned: its record could not be stored", slog.String("video_id", rec.VideoID),
			slog.String("intent_id", rec.ID))
		s.noteOrphan(r.Context(), rec.ID, rec.VideoID)
		writeError(w, r, s.storeFailed("create", rec.ID, err))
		return
	}
	s.metrics.uploadsCreated.Inc()
	s.metrics.uploadSize.Observe(float64(rec.Length))
	s.metrics.series.created(rec)
	s.log.Info("upload created", slog.String("upload_id", rec.ID), slog.String("video_id", rec.VideoID),
		slog.Int64("length", rec.Length), slog.String("kinescope_request_id", up.RequestID))
	h := w.Header()
	h.Set("Location", s.uploadURL(r, rec.ID))
	if hasBody {
		if rec, err = s.createWithUpload(w, r, rec); err != nil {
			return
		}
	}
	h.Set(tusproto.HeaderUploadOffset, tusproto.FormatSize(rec.Offset))
	s.setExpires(h, rec)
	w.WriteHeader(http.StatusCreated)
}

// createWithUpload forwards the body of a creation request. If forwarding
// fails the upload still exists, so the client gets its 201 and Location
// with the offset the upstream kept, and resumes from there like after any
// interrupted PATCH (tusd drops the Location in this case, orphaning the
// video). It answers the client itself only when there is no upload left.
func (s *Service) createWithUpload(w http.ResponseWriter, r *http.Request, rec state.Record) (state.Record, error) {
	release, err := s.limits.startPatch(s.clientIP(r))
	if err != nil {
		return rec, nil // over a limit: the client resumes from offset 0
	}
	defer release()
	body := s.newBodyReader(w, r)
	untrack, ok := s.track(body)
	if !ok {
		return rec, nil // shutting down: the client resumes from offset 0
	}
	defer untrack()
	lock, err := s.lockUpload(r.Context(), rec.ID, func() { body.interrupt(errInterrupted) })
	if err != nil {
		return rec, nil
	}
	defer lock.Unlock()
	rec, err = s.forward(r, rec, body, r.ContentLength)
	if err != nil {
		if errors.Is(err, errUploadGone) || errors.Is(err, errUploadNotFound) || errors.Is(err, errBodyTooLarge) {
			w.Header().Del("Location")
			writeError(w, r, err)
			return rec, err
		}
		s.log.Warn("creation-with-upload: body not fully forwarded; client will resume", slog.String("upload_id", rec.ID),
			slog.Int64("offset", rec.Offset), slog.String("error", err.Error()))
	}
	return rec, nil
}
