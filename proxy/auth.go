package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// access decides who may create uploads and use them: the JWT verifier and
// the auth hook, with the one identity rule both follow.
type access struct {
	parentID string       // TUSPROXY_PARENT_ID: where videos go unless a decision says otherwise
	jwt      *jwtVerifier // nil: no tokens checked
	hook     *authHook    // nil: no auth hook
	proxies  proxyHeaders // the client address the hook is told
	now      func() time.Time
	log      *slog.Logger
}

// grant is what an auth decision allows for a new upload.
type grant struct {
	owner       string
	parentID    string
	title       string // overrides the metadata title when set
	description string // overrides the metadata description when set
	maxSize     int64  // 0: only the global maximum applies
	context     string // the application's context (appContext), "" for none
}

// authorizeCreate decides whether a creation may go ahead, where the video
// goes and who will own the upload. Without auth configured anyone may
// create, into the configured parent. A client can never choose parent_id
// itself: only the hook or a token claim can.
//
// Who owns the upload follows the one rule identity applies to every later
// request too: the hook's owner when it names one, else the token's sub. The
// application's context follows the same rule: the hook's when it answers
// one, else the token's context claim. Each is checked wherever it comes
// from, even when the hook's then replaces the token's: a token with an
// unusable context is refused (401) before the hook is asked; a hook that
// answers one gets the client a 502 and the operator a log line.
func (a *access) authorizeCreate(r *http.Request, c creation) (grant, error) {
	g := grant{parentID: a.parentID}
	if a.jwt != nil {
		claims, err := a.jwt.verify(r)
		if err != nil {
			return g, err
		}
		g.owner = claims.Subject
		if claims.ParentID != "" {
			g.parentID = claims.ParentID
		}
		g.maxSize = claims.MaxSize
		if g.context, err = appContext(claims.Context); err != nil {
			// The token's issuer, the application's backend, has to mint
			// another: the same answer as for any other unusable claim.
			return g, errAuthRequired.withMessage("the Bearer token's context claim " + err.Error())
		}
	}
	if a.hook != nil {
		ans, err := a.hook.call(r.Context(), authHookRequest{
			Operation: "create",
			Upload:    &authHookUpload{Size: c.length, Metadata: c.metadata},
			Client:    a.hookClient(r),
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
		hookContext, err := appContext(ans.Context)
		if err != nil {
			a.log.Error("the auth hook allowed a creation with a context tusproxy refuses; fix the hook's answer",
				slog.String("reason", "context "+err.Error()), slog.Int("context_bytes", len(ans.Context)))
			return g, errAuthHookBadAnswer.withMessage(errAuthHookBadAnswer.Message + " (its context " + err.Error() + ")")
		}
		if hookContext != "" {
			g.context = hookContext
		}
	}
	if g.maxSize > 0 && c.length > g.maxSize {
		return g, errTooLarge.withMessage("Upload-Length exceeds the maximum size this client may upload")
	}
	return g, nil
}

// authorizer is the access check of a HEAD, PATCH or DELETE: nil when no
// auth is configured. The token is checked now (401), before the upload's
// record is read, so the answer is the same for an upload that exists and
// one that does not; the rest is decided by authorizeAccess once the
// lifecycle has read the record.
func (a *access) authorizer(r *http.Request, op string) (upload.Authorize, error) {
	if a.jwt == nil && a.hook == nil {
		return nil, nil
	}
	claims, err := a.authenticate(r)
	if err != nil {
		return nil, err
	}
	return func(rec state.Record) error { return a.authorizeAccess(r, op, claims, rec) }, nil
}

// authenticate is the first step of a HEAD, PATCH or DELETE with JWT on:
// the token must be valid and name a subject, whatever the upload. It runs
// before the upload's record is read, so the 401 is the same for an upload
// that exists and one that does not.
func (a *access) authenticate(r *http.Request) (*jwtClaims, error) {
	if a.jwt == nil {
		return nil, nil
	}
	return a.jwt.verify(r)
}

// authorizeAccess checks that the caller of a HEAD, PATCH or DELETE may use
// the upload: the hook, when configured, is asked about this very operation
// (it may refuse a DELETE it would allow as a HEAD), and the caller's
// identity must be the upload's owner. A refusal or another owner gets 404,
// like an unknown upload, so the answer reveals nothing. For an upload
// created without an owner (a hook that named none, or a record from before
// auth was configured), whoever passes the hook and the token check and
// holds the unguessable upload URL may use it.
func (a *access) authorizeAccess(r *http.Request, op string, claims *jwtClaims, rec state.Record) error {
	caller, err := a.identity(r, op, rec.ID, claims)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Code == "auth_rejected" {
			return errUploadNotFound
		}
		return err
	}
	if rec.Owner != "" && caller != rec.Owner {
		return errUploadNotFound
	}
	return nil
}

// identity is who the caller of an operation on an existing upload is,
// decided exactly as the owner was at creation: the hook's owner when a hook
// is configured and names one, else the token's sub. So with both JWT and a
// hook, the JWT authenticates and the hook says who the user is; the
// creator is recognised on every later request as long as the hook answers
// the same owner for them.
func (a *access) identity(r *http.Request, op, uploadID string, claims *jwtClaims) (string, error) {
	var caller string
	if claims != nil {
		caller = claims.Subject
	}
	if a.hook != nil {
		owner, err := a.hook.owner(r.Context(), authHookRequest{Operation: op, UploadID: uploadID, Client: a.hookClient(r)}, a.now())
		if err != nil {
			return "", err
		}
		if owner != "" {
			caller = owner
		}
	}
	return caller, nil
}

func (a *access) hookClient(r *http.Request) authHookClient {
	c := authHookClient{Authorization: r.Header.Get("Authorization"), Cookie: r.Header.Get("Cookie")}
	if ip := a.proxies.clientIP(r); ip.IsValid() {
		c.IP = ip.String()
	}
	return c
}
