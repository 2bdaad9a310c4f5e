package tusproto_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/kinescope-tools/tusproxy/tusproto"
)

// TestRedirectsAreNotFollowed: an upload endpoint that answers with a
// redirect gets no request sent where it points (no HEAD to a metadata
// service, no DELETE elsewhere, no PATCH turned into a GET, no Referer
// carrying the endpoint), even when the caller's http.Client would follow
// redirects; the 3xx is a bad response.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var mu sync.Mutex
	var contacted []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		contacted = append(contacted, r.Method+" referer="+r.Header.Get("Referer"))
		mu.Unlock()
		w.Header().Set("Upload-Offset", "0")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()

	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", target.URL+"/latest/meta-data/")
			w.Header().Set("Upload-Offset", "0")
			w.WriteHeader(status)
		}))
		// A client that follows redirects by default, as http.Client does.
		client := &tusproto.Client{HTTP: &http.Client{}}
		for _, op := range operations {
			err := op.call(context.Background(), client, hostile.URL+"/upload/secret")
			var ue *tusproto.Error
			if !errors.As(err, &ue) {
				t.Fatalf("%s answered %d: err = %v, want *tusproto.Error", op.name, status, err)
			}
			if ue.Kind != tusproto.KindBadResponse || ue.Status != status {
				t.Errorf("%s answered %d: kind %v status %d, want bad_response %d", op.name, status, ue.Kind, ue.Status, status)
			}
			if ue.Gone() || ue.Temporary() {
				t.Errorf("%s answered %d: Gone %v Temporary %v, want neither", op.name, status, ue.Gone(), ue.Temporary())
			}
		}
		hostile.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(contacted) > 0 {
		t.Errorf("the redirect target was contacted: %q", contacted)
	}
}
