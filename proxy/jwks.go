package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// The JSON Web Key Sets (RFC 7517) that verify RS256 and ES256 tokens, from
// a file (TUSPROXY_JWT_JWKS_FILE) or an identity provider's URL
// (TUSPROXY_JWT_JWKS_URL). jwkset parses both and keyfunc picks a token's
// key by its kid; this file only chooses their options.

// jwksFetchTimeout bounds one fetch of the URL: at start, on the refresh
// interval, and for an unknown kid, where it also bounds the wait for the
// rate limiter, so a request never waits longer for a key.
const jwksFetchTimeout = 10 * time.Second

// jwksUnknownKIDInterval is how often a token naming a kid the set lacks
// may make tusproxy fetch the set again. A provider's new key is picked up
// by the first token signed with it, while tokens with made-up kids (anyone
// can send them) cause at most one fetch per interval, not one each.
const jwksUnknownKIDInterval = 5 * time.Minute

// jwksMaxBytes bounds a fetched key set. Providers' sets are a few KiB
// (tens with X.509 chains); a larger answer is refused, not read into memory.
const jwksMaxBytes = 1 << 20

// Outcomes of a fetch of the URL, the labels of tusproxy_jwks_refreshes_total.
const (
	jwksRefreshOK    = "ok"    // the set read and its keys replaced
	jwksRefreshError = "error" // the last keys kept
)

var jwksOutcomes = []string{jwksRefreshOK, jwksRefreshError}

// keySetUses are the "use" values of keys that may verify a token: "sig",
// and none at all, since RFC 7517 §4.2 makes the member optional. A key
// published for encryption never verifies a signature.
var keySetUses = []jwkset.USE{jwkset.UseSig, ""}

// errJWKSTooLarge is a key set answer longer than jwksMaxBytes.
var errJWKSTooLarge = fmt.Errorf("the key set is larger than %d bytes", jwksMaxBytes)

// keySetFromFile reads the key set in path once. Its keys are read as the
// library reads a fetched set's: each one validated, a key of a type it does
// not know (Ed448, say) skipped, any other bad key refusing the whole set.
func keySetFromFile(path string) (keyfunc.Keyfunc, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("not a JSON Web Key Set")
	}
	store := jwkset.NewMemoryStorage()
	for _, marshal := range set.Keys {
		key, err := jwkset.NewJWKFromMarshal(marshal, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		switch {
		case errors.Is(err, jwkset.ErrUnsupportedKey):
			continue
		case err != nil:
			return nil, fmt.Errorf("key %q: %w", marshal.KID, err)
		}
		if err := store.KeyWrite(context.Background(), key); err != nil {
			return nil, err
		}
	}
	return newKeySet(store)
}

// keySetDeps are what a key set URL needs besides the config.
type keySetDeps struct {
	client *http.Client // fetches the set; see jwksClient
	log    *slog.Logger
	// refreshed reports each fetch's outcome (jwksRefreshOK or
	// jwksRefreshError) for tusproxy_jwks_refreshes_total.
	refreshed func(outcome string)
}

// keySetFromURL fetches the key set at rawURL now, and then every refresh
// and when a token names an unknown kid (at most once per
// jwksUnknownKIDInterval), until ctx ends. The first fetch must succeed; a
// later one that fails is logged and counted, and the last keys stay.
func keySetFromURL(ctx context.Context, rawURL string, refresh time.Duration, deps keySetDeps) (keyfunc.Keyfunc, error) {
	store := &replacedStorage{Storage: jwkset.NewMemoryStorage(), replaced: func() { deps.refreshed(jwksRefreshOK) }}
	remote, err := jwkset.NewStorageFromHTTP(rawURL, jwkset.HTTPClientStorageOptions{
		Client:      deps.client,
		Ctx:         ctx, // ends the refresh goroutine the library starts
		HTTPTimeout: jwksFetchTimeout,
		// The first fetch's error is returned, so tusproxy does not start
		// without keys.
		NoErrorReturnFirstHTTPReq: false,
		RefreshErrorHandler: func(_ context.Context, err error) {
			deps.refreshed(jwksRefreshError)
			deps.log.Warn("fetching the JWT key set (TUSPROXY_JWT_JWKS_URL) failed; the last keys stay in use",
				slog.String("error", err.Error()))
		},
		RefreshInterval: refresh,
		Storage:         store,
	})
	if err != nil {
		deps.refreshed(jwksRefreshError)
		return nil, err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{rawURL: remote},
		// A refresh for an unknown kid runs in the request's context, which
		// this bounds: the wait for the limiter and the fetch together. A
		// limiter whose next turn is further away fails at once.
		RateLimitWaitMax:  jwksFetchTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDInterval), 1),
	})
	if err != nil {
		return nil, err
	}
	return newKeySet(client)
}

// newKeySet is the keyfunc of a key set that has at least one key able to
// verify RS256 or ES256 tokens: a set without one would refuse every token.
func newKeySet(store jwkset.Storage) (keyfunc.Keyfunc, error) {
	keys, err := store.KeyReadAll(context.Background())
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(keys, isSigningKey) {
		return nil, errors.New("no RS256 or ES256 signing keys (RSA, or EC on P-256, with use sig or none)")
	}
	return keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: keySetUses})
}

// isSigningKey reports whether key can verify RS256 or ES256 tokens.
func isSigningKey(key jwkset.JWK) bool {
	m := key.Marshal()
	if !slices.Contains(keySetUses, m.USE) {
		return false
	}
	switch m.KTY {
	case jwkset.KtyRSA:
		return m.ALG == "" || m.ALG == jwkset.AlgRS256
	case jwkset.KtyEC:
		return m.CRV == jwkset.CrvP256 && (m.ALG == "" || m.ALG == jwkset.AlgES256)
	}
	return false
}

// replacedStorage is where a fetched set's keys go. The library replaces
// them only once an answer was read and parsed, so that is where a fetch
// is known to have succeeded.
type replacedStorage struct {
	jwkset.Storage
	replaced func()
}

func (s *replacedStorage) KeyReplaceAll(ctx context.Context, keys []jwkset.JWK) error {
	if err := s.Storage.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	s.replaced()
	return nil
}

// jwksClient fetches key sets over transport, which must use the system's
// trust roots (the auth hook's: TUSPROXY_UPSTREAM_CA_FILE is Kinescope's
// only). A fetch takes at most jwksFetchTimeout, reads at most jwksMaxBytes,
// and follows no redirect, which could lead from https to plain http.
func jwksClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport:     limitedAnswers{next: transport, max: jwksMaxBytes},
		Timeout:       jwksFetchTimeout,
		CheckRedirect: noRedirects,
	}
}

// limitedAnswers fails the read of an answer body longer than max.
type limitedAnswers struct {
	next http.RoundTripper
	max  int64
}

func (t limitedAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more than allowed tells a body at the limit from one
		// beyond it.
		var probe [1]byte
		if n, err := b.ReadCloser.Read(probe[:]); n == 0 {
			return 0, err
		}
		return 0, errJWKSTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
