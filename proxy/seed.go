package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// seedRequest is the JSON form of a seed-flow request, for frontends that
// prefer JSON to tus headers.
type seedRequest struct {
	Filename    string `json:"filename"`
	Filesize    int64  `json:"filesize"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// handleSeedUpload is the flow of Kinescope's own tus guide, done right: the
// client sends a file's size and name (tus headers, as tus-js-client's POST
// does, or JSON), tusproxy calls /v2/init, and the client gets the Kinescope
// endpoint to upload to directly: 201 with Location, or 200 with
// {"endpoint": ...} when it asks for JSON (Accept: application/json). Same
// validation, CORS and error mapping as tus creation; nothing is stored,
// since the bytes do not pass through tusproxy.
func (s *Service) handleSeedUpload(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(tusproto.HeaderTusResumable) != "" {
		w.Header().Set(tusproto.HeaderTusResumable, tusproto.Version)
	}
	var c creation
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		req, err := s.readSeedRequest(w, r)
		if err != nil {
			answer(w, r, err)
			return
		}
		if err := checkLength(req.Filesize, s.cfg.MaxSize); err != nil {
			answer(w, r, err)
			return
		}
		c = creation{length: req.Filesize, metadata: tusproto.Metadata{
			"filename": req.Filename, "title": req.Title, "description": req.Description,
		}}
	} else {
		var err error
		if c, err = parseCreation(r, s.cfg); err != nil {
			answer(w, r, err)
			return
		}
	}
	req, _, err := s.startUpload(r, c)
	if err != nil {
		answer(w, r, err)
		return
	}
	up, err := s.life.Init(r.Context(), req)
	noteInit(r, up.RequestID, err)
	if err != nil {
		answer(w, r, err)
		return
	}
	noteUpload(r, "", up.VideoID)
	s.log.Info("seed upload initialised", slog.String("video_id", up.VideoID), slog.Int64("length", c.length),
		slog.String("kinescope_request_id", up.RequestID))
	w.Header().Set("Cache-Control", "no-store")
	// The seed flow's client uploads to Kinescope directly and hears from
	// tusproxy only here: this answer names the video like a creation's.
	setVideoID(w.Header(), up.VideoID)
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]string{"endpoint": up.Endpoint, "video_id": up.VideoID})
		return
	}
	w.Header().Set("Location", up.Endpoint)
	w.WriteHeader(http.StatusCreated)
}

// seedBodyMax bounds the seed flow's JSON body: a file name, a size, a
// title (Kinescope caps titles at 140 characters) and a description. 8 KiB
// holds a long description in any script, while a client cannot make
// tusproxy buffer more (errSeedTooLarge says 8 KiB too).
const seedBodyMax = 8 << 10

// readSeedRequest reads the seed flow's JSON body, bounded in size (413
// above seedBodyMax) and in time: all of it must arrive within the body
// idle timeout. It is a few hundred bytes, so a client that takes longer is
// holding the connection, not sending.
func (s *Service) readSeedRequest(w http.ResponseWriter, r *http.Request) (seedRequest, error) {
	var req seedRequest
	if r.ContentLength > seedBodyMax {
		return req, errSeedTooLarge
	}
	// Reaching the body's end clears this deadline (net/http then watches
	// the connection for the client going away); short of it, the deadline
	// also bounds what net/http drains after the answer (see boundBodies).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyIdleTimeout))
	raw, err := io.ReadAll(io.LimitReader(r.Body, seedBodyMax+1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return req, errBodyTimeout
	case err != nil:
		return req, errClientGone
	case len(raw) > seedBodyMax:
		return req, errSeedTooLarge
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return req, errBadRequestBody.withMessage("the request body is not valid JSON: expected {\"filename\", \"filesize\", \"title\", \"description\"}")
	}
	return req, nil
}

// wantsJSON reports whether the client asked for a JSON answer.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "application/json" {
			return true
		}
	}
	return false
}
