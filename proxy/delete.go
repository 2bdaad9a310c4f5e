package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// handleDelete terminates an upload (tus 1.0.0 "termination"): DELETE is
// forwarded to the upstream and the record forgotten. Kinescope documents no
// DELETE on its tus endpoints, so 404, 405 and 410 from it are accepted as
// "nothing more to delete there". Other upstream failures keep the record
// and answer 502/504 so the client can try again.
func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	// Taking the lock stops a PATCH still streaming to this upload.
	rec, release, ok := s.acquireUpload(w, r, id, "delete", func() {})
	if !ok {
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.UpstreamTimeout)
	defer cancel()
	began := time.Now()
	err := s.upstream.Delete(ctx, rec.Endpoint)
	s.metrics.upstream(opDelete, err, time.Since(began))
	if err != nil {
		var ue *tusproto.Error
		tolerated := errors.As(err, &ue) && ue.Kind == tusproto.KindStatus &&
			(ue.Status == http.StatusNotFound || ue.Status == http.StatusMethodNotAllowed || ue.Status == http.StatusGone)
		if !tolerated {
			s.log.Warn("upstream delete failed", slog.String("upload_id", id), slog.String("error", err.Error()))
			if ue != nil && ue.Kind == tusproto.KindTimeout {
				writeError(w, r, errUpstreamTimeout)
			} else {
				writeError(w, r, errUpstreamFailed.withMessage("the upstream could not delete the upload; retry"))
			}
			return
		}
	}
	if err := s.store.Delete(context.WithoutCancel(r.Context()), id); err != nil {
		writeError(w, r, s.storeFailed("delete", id, err))
		return
	}
	s.metrics.uploadsTerminated.Inc()
	s.metrics.series.finished(id)
	w.WriteHeader(http.StatusNoContent)
}
