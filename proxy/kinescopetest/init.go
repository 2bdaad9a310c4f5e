package kinescopetest

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// maxInitBody bounds the JSON body of /v2/init: a few short strings and a
// number. Larger bodies are refused instead of being read into memory.
const maxInitBody = 1 << 20

// initRequest is the body of POST /v2/init, with the fields Kinescope's public
// examples send.
type initRequest struct {
	ParentID    string `json:"parent_id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Filename    string `json:"filename"`
	Filesize    int64  `json:"filesize"`
	Description string `json:"description"`
	ClientIP    string `json:"client_ip"`
}

// problems lists what makes the request unacceptable, "" when nothing does.
func (req initRequest) problems() string {
	var problems []string
	if req.Filesize <= 0 {
		problems = append(problems, "filesize is required and must be greater than 0")
	}
	if req.ParentID == "" {
		problems = append(problems, "parent_id is required")
	}
	if req.Type != "" && req.Type != "video" {
		problems = append(problems, `type must be "video"`)
	}
	return strings.Join(problems, "; ")
}

// initAnswer is data of the 201 answer of /v2/init.
type initAnswer struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
	Title    string `json:"title"`
	Filename string `json:"filename"`
	Filesize int64  `json:"filesize"`
	ParentID string `json:"parent_id"`
}

// handleInit is POST /v2/init: it creates a video and its tus upload and
// answers the upload's endpoint.
func (e *Emulator) handleInit(w http.ResponseWriter, r *http.Request) {
	e.initCount.Add(1)
	ctx := r.Context()
	requestID := slog.String("request_id", w.Header().Get("X-Request-ID"))
	plan := e.planInit()

	// Read the body before any delay: net/http notices a client that hangs up
	// (and cancels ctx) only once the body has been read to its end.
	raw, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInitBody))

	if e.initFault(w, r, plan) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAPIError(w, http.StatusMethodNotAllowed, codeNotAllowed, "Method not allowed", "use POST")
		return
	}
	if !e.authorized(r) {
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: init unauthorized", requestID)
		writeAPIError(w, http.StatusUnauthorized, codeUnauthorized, "Unauthorized",
			"a valid API token is required as Authorization: Bearer <token>")
		return
	}

	req, ok := decodeInit(w, raw, readErr)
	if !ok {
		return
	}
	video, err := e.createVideo(ctx, req, e.baseURL(r), plan.endpoint)
	if err != nil {
		e.log.LogAttrs(ctx, slog.LevelError, "kinescopetest: init failed", requestID, slog.String("error", err.Error()))
		writeAPIError(w, http.StatusInternalServerError, codeInternal, "Internal error", "the emulator could not create the upload")
		return
	}
	e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: video created", requestID,
		slog.String("video_id", video.ID), slog.Int64("filesize", video.Filesize))
	writeJSON(w, http.StatusCreated, struct {
		Data initAnswer `json:"data"`
	}{initAnswer{
		ID:       video.ID,
		Endpoint: video.Endpoint,
		Title:    video.Title,
		Filename: video.Filename,
		Filesize: video.Filesize,
		ParentID: video.ParentID,
	}})
}

// initFault plays the planned fault of an init, if any: a delay (after
// which a client that left gets nothing), a dropped connection or a refusal.
// It reports whether the request was answered.
func (e *Emulator) initFault(w http.ResponseWriter, r *http.Request, plan initPlan) bool {
	ctx := r.Context()
	requestID := slog.String("request_id", w.Header().Get("X-Request-ID"))
	if !sleepCtx(ctx, plan.delay) {
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: init abandoned by the client", requestID)
		return true
	}
	if plan.drop {
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: init dropped (fault)", requestID)
		abortConnection(w)
		return true
	}
	if plan.status != 0 {
		e.log.LogAttrs(ctx, slog.LevelInfo, "kinescopetest: init refused (fault)", requestID, slog.Int("status", plan.status))
		if plan.body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(plan.status)
			_, _ = io.WriteString(w, plan.body)
			return true
		}
		code, message := apiErrorFor(plan.status)
		writeAPIError(w, plan.status, code, message, "injected by kinescopetest Faults.InitStatus")
		return true
	}
	return false
}

// decodeInit reads an init's JSON body, answering the client itself (and
// reporting false) when it is too large, malformed or incomplete.
func decodeInit(w http.ResponseWriter, raw []byte, readErr error) (initRequest, bool) {
	var req initRequest
	if readErr != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(readErr, &maxErr) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large", "the JSON body is limited to 1 MiB")
			return req, false
		}
		// The client went away while sending: nobody reads an answer.
		return req, false
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		writeAPIError(w, http.StatusBadRequest, codeJSONSyntax, "JSON syntax error", err.Error())
		return req, false
	}
	if problems := req.problems(); problems != "" {
		writeAPIError(w, http.StatusBadRequest, codeBadRequest, "Bad request", problems)
		return req, false
	}
	return req, true
}

// authorized reports whether r carries "Authorization: Bearer <token>". The
// scheme is case-insensitive (RFC 9110 section 11.1); the token is compared in
// constant time.
func (e *Emulator) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(e.token)) == 1
}

// baseURL is where issued endpoints point: Options.PublicURL, or the address
// the init request was sent to.
func (e *Emulator) baseURL(r *http.Request) string {
	if e.publicURL != "" {
		return e.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
