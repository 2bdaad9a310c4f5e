package kinescopetest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
)

// Errors of [Emulator.Data] and [Emulator.SHA256].
var (
	// ErrUnknownVideo: no video has this id.
	ErrUnknownVideo = errors.New("kinescopetest: unknown video")
	// ErrTerminated: the video's upload was deleted, its bytes are gone.
	ErrTerminated = errors.New("kinescopetest: upload terminated")
)

// Video is what the emulator knows of one video created by /v2/init.
type Video struct {
	// ID is the video id answered by /v2/init (a UUID).
	ID string `json:"id"`
	// ParentID, Type, Title, Filename, Description, ClientIP and Filesize are
	// the fields of the init request.
	ParentID    string `json:"parent_id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Filename    string `json:"filename"`
	Description string `json:"description"`
	ClientIP    string `json:"client_ip"`
	// Endpoint is the tus endpoint as answered to the client, after
	// Faults.InitEndpoint.
	Endpoint string `json:"endpoint"`
	// UploadID is the tus upload id: the emulator serves the upload at
	// /v2/upload/<UploadID>, whatever Endpoint says.
	UploadID string `json:"upload_id"`
	Filesize int64  `json:"filesize"`
	// Offset is the upload's tus offset: the number of bytes stored so far,
	// read live from the store (the last one known once terminated).
	Offset int64 `json:"offset"`
	// Complete is Offset == Filesize.
	Complete bool `json:"complete"`
	// Terminated reports that the upload is gone (DELETE, or its files were
	// removed).
	Terminated bool      `json:"terminated"`
	CreatedAt  time.Time `json:"created_at"`
}

// sidecarSuffix names the file that keeps a video's record next to tusd's
// <upload id> and <upload id>.info files, so an emulator restarted on the same
// Dir knows its videos again.
const sidecarSuffix = ".kinescope.json"

// createVideo creates the tus upload of a new video and records the video.
func (e *Emulator) createVideo(ctx context.Context, req initRequest, base string, rewrite func(string) string) (Video, error) {
	uploadID := newUUID()
	if _, err := e.store.NewUpload(ctx, handler.FileInfo{ID: uploadID, Size: req.Filesize}); err != nil {
		return Video{}, fmt.Errorf("create upload: %w", err)
	}
	endpoint := base + uploadPath + "/" + uploadID
	if rewrite != nil {
		endpoint = rewrite(endpoint)
	}
	video := &Video{
		ID:          newUUID(),
		ParentID:    req.ParentID,
		Type:        req.Type,
		Title:       req.Title,
		Filename:    req.Filename,
		Description: req.Description,
		ClientIP:    req.ClientIP,
		Endpoint:    endpoint,
		UploadID:    uploadID,
		Filesize:    req.Filesize,
		CreatedAt:   time.Now().UTC(),
	}
	if err := e.saveVideo(*video); err != nil {
		e.removeUpload(ctx, uploadID)
		return Video{}, err
	}

	e.mu.Lock()
	e.videos = append(e.videos, video)
	e.byID[video.ID] = video
	e.byUpload[uploadID] = video
	e.mu.Unlock()
	return *video, nil
}

// removeUpload deletes an upload nobody was told about.
func (e *Emulator) removeUpload(ctx context.Context, uploadID string) {
	if upload, err := e.store.GetUpload(ctx, uploadID); err == nil {
		_ = e.store.AsTerminatableUpload(upload).Terminate(ctx)
	}
}

// saveVideo writes the video's sidecar file, replacing it atomically. In
// discard mode there is no directory: records live in memory only.
func (e *Emulator) saveVideo(v Video) error {
	if e.discard != nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode video record: %w", err)
	}
	path := filepath.Join(e.dir, v.UploadID+sidecarSuffix)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write video record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write video record: %w", err)
	}
	return nil
}

// loadVideos reads the records a previous emulator left in Dir.
func (e *Emulator) loadVideos() error {
	if e.discard != nil {
		return nil
	}
	paths, err := filepath.Glob(filepath.Join(e.dir, "*"+sidecarSuffix))
	if err != nil {
		return fmt.Errorf("kinescopetest: list video records: %w", err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("kinescopetest: read video record: %w", err)
		}
		var v Video
		if err := json.Unmarshal(data, &v); err != nil || !isUUID(v.UploadID) || v.ID == "" ||
			filepath.Base(path) != v.UploadID+sidecarSuffix {
			return fmt.Errorf("kinescopetest: %s is not a video record", filepath.Base(path))
		}
		e.videos = append(e.videos, &v)
		e.byID[v.ID] = &v
		e.byUpload[v.UploadID] = &v
	}
	slices.SortStableFunc(e.videos, func(a, b *Video) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return nil
}

// Videos returns every video the emulator knows, in creation order, with live
// offsets.
func (e *Emulator) Videos() []Video {
	e.mu.Lock()
	ids := make([]string, len(e.videos))
	for i, v := range e.videos {
		ids[i] = v.ID
	}
	e.mu.Unlock()

	videos := make([]Video, 0, len(ids))
	for _, id := range ids {
		if v, ok := e.Video(id); ok {
			videos = append(videos, v)
		}
	}
	return videos
}

// Video returns the video with this id; its Offset is the live tus offset.
func (e *Emulator) Video(id string) (Video, bool) {
	uploadID, ok := e.uploadIDOf(id)
	if !ok {
		return Video{}, false
	}
	return e.observe(uploadID, false), true
}

// uploadIDOf is the tus upload behind a video.
func (e *Emulator) uploadIDOf(videoID string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.byID[videoID]
	if !ok {
		return "", false
	}
	return v.UploadID, true
}

// observe reads the upload's state from the store into its video record and
// returns a copy of the record. deleted reports a successful DELETE.
func (e *Emulator) observe(uploadID string, deleted bool) Video {
	var (
		offset int64
		exists bool
	)
	if !deleted {
		// A store error other than not-found (unreadable .info) leaves the
		// record as it was: the upload may still be there.
		upload, err := e.store.GetUpload(context.Background(), uploadID)
		switch {
		case err == nil:
			if info, err := upload.GetInfo(context.Background()); err == nil {
				offset, exists = info.Offset, true
			}
		case !errors.Is(err, handler.ErrNotFound):
			exists = true
			offset = -1
		}
	}

	e.mu.Lock()
	v := e.byUpload[uploadID]
	if v == nil {
		e.mu.Unlock()
		return Video{}
	}
	justTerminated := false
	if exists {
		// Offsets only grow: a concurrent observer with an older reading must
		// not move the record back.
		v.Offset = max(v.Offset, offset)
	} else if !v.Terminated {
		v.Terminated, justTerminated = true, true
	}
	v.Complete = v.Offset == v.Filesize
	snapshot := *v
	e.mu.Unlock()

	if justTerminated {
		if err := e.saveVideo(snapshot); err != nil {
			e.log.Warn("kinescopetest: record termination", "video_id", snapshot.ID, "error", err.Error())
		}
	}
	return snapshot
}

// Data returns the bytes the video's upload has received so far. In discard
// mode it fails with [ErrDiscarded].
func (e *Emulator) Data(id string) ([]byte, error) {
	body, err := e.open(id)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("kinescopetest: read upload of video %s: %w", id, err)
	}
	return data, nil
}

// SHA256 returns the hex SHA-256 of the bytes the video's upload has received
// so far. The bytes are streamed, never held in memory at once.
func (e *Emulator) SHA256(id string) (string, error) {
	if e.discard != nil {
		return e.discardedSHA256(id)
	}
	body, err := e.open(id)
	if err != nil {
		return "", err
	}
	defer body.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, body); err != nil {
		return "", fmt.Errorf("kinescopetest: read upload of video %s: %w", id, err)
	}
	return hex.EncodeToString(hash.Sum(nil)), nil
}

func (e *Emulator) open(id string) (io.ReadCloser, error) {
	uploadID, ok := e.uploadIDOf(id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownVideo, id)
	}
	if e.discard != nil {
		return nil, fmt.Errorf("%w: video %s", ErrDiscarded, id)
	}
	ctx := context.Background()
	upload, err := e.store.GetUpload(ctx, uploadID)
	if errors.Is(err, handler.ErrNotFound) {
		return nil, fmt.Errorf("%w: video %s", ErrTerminated, id)
	}
	if err != nil {
		return nil, fmt.Errorf("kinescopetest: open upload of video %s: %w", id, err)
	}
	body, err := upload.GetReader(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: video %s", ErrTerminated, id)
	}
	if err != nil {
		return nil, fmt.Errorf("kinescopetest: open upload of video %s: %w", id, err)
	}
	return body, nil
}

// videoJSON is a video as the emulator's own routes show it.
type videoJSON struct {
	Video
	// SHA256 is the hex SHA-256 of the bytes received so far; empty once the
	// upload is terminated.
	SHA256 string `json:"sha256"`
}

func (e *Emulator) videoJSON(v Video) (videoJSON, error) {
	out := videoJSON{Video: v}
	if v.Terminated {
		return out, nil
	}
	sum, err := e.SHA256(v.ID)
	if errors.Is(err, ErrTerminated) {
		out.Terminated = true
		return out, nil
	}
	out.SHA256 = sum
	return out, err
}

// handleVideoList is GET /v2/emulator/videos, the emulator's own route.
func (e *Emulator) handleVideoList(w http.ResponseWriter, r *http.Request) {
	if !e.emulatorRouteAllowed(w, r) {
		return
	}
	videos := e.Videos()
	out := make([]videoJSON, 0, len(videos))
	for _, v := range videos {
		vj, err := e.videoJSON(v)
		if err != nil {
			e.log.Error("kinescopetest: hash upload", "video_id", v.ID, "error", err.Error())
			writeAPIError(w, http.StatusInternalServerError, codeInternal, "Internal error", "reading an upload failed")
			return
		}
		out = append(out, vj)
	}
	writeJSON(w, http.StatusOK, struct {
		Data []videoJSON `json:"data"`
	}{out})
}

// handleVideo is GET /v2/emulator/videos/{id}, the emulator's own route.
func (e *Emulator) handleVideo(w http.ResponseWriter, r *http.Request, id string) {
	if !e.emulatorRouteAllowed(w, r) {
		return
	}
	v, ok := e.Video(id)
	if !ok {
		writeAPIError(w, http.StatusNotFound, codeNotFound, "Not found", "no video has this id")
		return
	}
	vj, err := e.videoJSON(v)
	if err != nil {
		e.log.Error("kinescopetest: hash upload", "video_id", v.ID, "error", err.Error())
		writeAPIError(w, http.StatusInternalServerError, codeInternal, "Internal error", "reading the upload failed")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Data videoJSON `json:"data"`
	}{vj})
}

// emulatorRouteAllowed checks the method and the token of the emulator's own
// routes, and answers when they are wrong.
func (e *Emulator) emulatorRouteAllowed(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeAPIError(w, http.StatusMethodNotAllowed, codeNotAllowed, "Method not allowed", "use GET")
		return false
	}
	if !e.authorized(r) {
		writeAPIError(w, http.StatusUnauthorized, codeUnauthorized, "Unauthorized",
			"a valid API token is required as Authorization: Bearer <token>")
		return false
	}
	return true
}
