package proxy

import "net/http"

// handleDelete terminates an upload (tus 1.0.0 "termination"): the
// lifecycle deletes it upstream and forgets its record. An upstream failure
// keeps the record and answers 502/504 so the client can try again.
func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := uploadID(w, r)
	if !ok {
		return
	}
	// Taking the lock stops a PATCH still streaming to this upload.
	h, err := s.openUpload(r, id, "delete", func() {})
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
