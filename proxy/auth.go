package proxy

import (
	"net/http"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// grant is what an auth decision allows for a new upload.
type grant struct {
	owner       string
	parentID    string
	title       string // overrides the metadata title when set
	description string // overrides the metadata description when set
	maxSize     int64  // 0: only the global maximum applies
}

// authorizeCreate decides whether a creation may go ahead, where the video
// goes and who will own the upload. Without auth configured anyone may
// create, into the configured parent. A client can never choose parent_id
// itself: only the hook or a token claim can.
func (s *Service) authorizeCreate(r *http.Request, c creation) (grant, error) {
	g := grant{parentID: s.cfg.ParentID}
	if s.jwt != nil {
		claims, err := s.jwt.verify(r)
		if err != nil {
			return g, err
		}
		g.owner = claims.Subject
		if claims.ParentID != "" {
			g.parentID = claims.ParentID
		}
		g.maxSize = claims.MaxSize
	}
	if s.hook != nil {
		ans, err := s.hook.call(r.Context(), hookRequest{
			Operation: "create",
			Upload:    &hookUpload{Size: c.length, Metadata: c.metadata},
			Client:    s.hookClient(r),
		})
		if err != nil {
			return g, err
		}
		if ans.Owner != "" {
			g.owner = ans.Owner
		}
		if ans.ParentID != "" {
			g.parentID = ans.ParentID
		}
		if ans.MaxSize > 0 {
			g.maxSize = ans.MaxSize
		}
		g.title, g.description = ans.Title, ans.Description
	}
	if g.maxSize > 0 && c.length > g.maxSize {
		return g, errTooLarge.withMessage("Upload-Length exceeds the maximum size this client may upload")
	}
	return g, nil
}

// authorizeAccess checks that the caller of a HEAD, PATCH or DELETE owns the
// upload. Another owner's credentials get 404, like an unknown upload, so
// the answer reveals nothing. Without auth, or for an upload created without
// an owner, the unguessable upload URL is the capability.
func (s *Service) authorizeAccess(r *http.Request, op string, rec state.Record) error {
	if rec.Owner == "" || (s.jwt == nil && s.hook == nil) {
		return nil
	}
	var caller string
	if s.jwt != nil {
		claims, err := s.jwt.verify(r)
		if err != nil {
			return errUploadNotFound
		}
		caller = claims.Subject
	} else {
		owner, err := s.hook.owner(r.Context(), hookRequest{Operation: op, UploadID: rec.ID, Client: s.hookClient(r)}, s.now())
		if err != nil {
			if e, ok := err.(*Error); ok && e.Code == "auth_rejected" {
				return errUploadNotFound
			}
			return err
		}
		caller = owner
	}
	if caller != rec.Owner {
		return errUploadNotFound
	}
	return nil
}

func (s *Service) hookClient(r *http.Request) hookClient {
	c := hookClient{Authorization: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie")}
	if ip := s.clientIP(r); ip.IsValid() {
		c.IP = ip.String()
	}
	return c
}
