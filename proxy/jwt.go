package proxy

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/kinescope-tools/tusproxy/config"
)

// jwtVerifier checks the Bearer JWT of a request: signature (HS256 with a
// shared secret, or RS256/ES256 with a public key or a JSON Web Key Set from
// a file or a URL), and exp, nbf, aud and iss with a small leeway. exp is
// required: a token that never expires is a password. sub is required: it
// is the caller's identity.
type jwtVerifier struct {
	parser    *jwt.Parser
	secret    []byte           // TUSPROXY_JWT_SECRET
	publicKey crypto.PublicKey // TUSPROXY_JWT_PUBLIC_KEY_FILE
	keySet    keyfunc.Keyfunc  // TUSPROXY_JWT_JWKS_FILE or TUSPROXY_JWT_JWKS_URL
	// stop ends the refreshes of TUSPROXY_JWT_JWKS_URL; nil without it.
	stop context.CancelFunc
}

// jwtClaims is what a token may say about an upload.
type jwtClaims struct {
	jwt.RegisteredClaims
	ParentID string `json:"parent_id,omitempty"`
	MaxSize  int64  `json:"max_size,omitempty"`
	// Context is the application's context for the uploads the token
	// creates (see appContext); kept raw, so its bytes are the token's.
	Context json.RawMessage `json:"context,omitempty"`
}

// newJWTVerifier builds the verifier cfg asks for, nil when JWTs are off.
// With a JWKS URL it fetches the key set before returning, and refreshes it
// until close.
func newJWTVerifier(cfg *config.Config, deps keySetDeps) (*jwtVerifier, error) {
	v := &jwtVerifier{}
	// A public key or a key set verifies RS256 and ES256 only, whatever its
	// keys say: WithValidMethods refuses any other alg before a key is
	// chosen (so no HS256 with a public key or a set's symmetric key), and
	// keyfunc refuses a key whose own alg differs from the token's.
	methods := []string{"RS256", "ES256"}
	switch {
	case cfg.JWTSecret != "":
		v.secret = []byte(cfg.JWTSecret)
		methods = []string{"HS256"}
	case cfg.JWTPublicKeyFile != "":
		pemBytes, err := os.ReadFile(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TUSPROXY_JWT_PUBLIC_KEY_FILE: %w", err)
		}
		if key, err := jwt.ParseRSAPublicKeyFromPEM(pemBytes); err == nil {
			v.publicKey = key
		} else if key, err := jwt.ParseECPublicKeyFromPEM(pemBytes); err == nil {
			v.publicKey = key
		} else {
			return nil, errors.New("TUSPROXY_JWT_PUBLIC_KEY_FILE: not a PEM RSA or EC public key")
		}
	case cfg.JWTJWKSFile != "":
		var err error
		if v.keySet, err = keySetFromFile(cfg.JWTJWKSFile); err != nil {
			return nil, fmt.Errorf("TUSPROXY_JWT_JWKS_FILE: %w", err)
		}
	case cfg.JWTJWKSURL != "":
		ctx, stop := context.WithCancel(context.Background())
		keySet, err := keySetFromURL(ctx, cfg.JWTJWKSURL, cfg.JWTJWKSRefresh, deps)
		if err != nil {
			stop()
			return nil, fmt.Errorf("TUSPROXY_JWT_JWKS_URL: tusproxy cannot check tokens without the key set: %w", err)
		}
		v.keySet, v.stop = keySet, stop
	default:
		return nil, nil
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(cfg.JWTLeeway), jwt.WithExpirationRequired()}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// close stops the key set's refreshes. v may be nil.
func (v *jwtVerifier) close() {
	if v != nil && v.stop != nil {
		v.stop()
	}
}

// verify checks the request's Bearer token and returns its claims.
func (v *jwtVerifier) verify(r *http.Request) (*jwtClaims, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, errAuthRequired
	}
	claims := &jwtClaims{}
	_, err := v.parser.ParseWithClaims(strings.TrimSpace(token), claims, v.keyfunc(r.Context()))
	if err != nil {
		// The reason (expired, wrong audience...) helps the developer wiring
		// tokens in and tells an attacker nothing about uploads.
		return nil, errAuthRequired.withMessage("the Bearer token is not valid: " + jwtReason(err))
	}
	// sub is who owns the uploads the token creates and who may use them;
	// a token without one would create uploads that belong to nobody and
	// that anyone could then use.
	if strings.TrimSpace(claims.Subject) == "" {
		return nil, errAuthRequired.withMessage("the Bearer token has no subject (sub claim): tusproxy needs it to know who owns the upload")
	}
	return claims, nil
}

// keyfunc chooses the key a token is checked with. A key set chooses by
// the token's kid, and may fetch the set again for one it lacks: in the
// request's context, so that ends when the client leaves.
func (v *jwtVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	switch {
	case v.keySet != nil:
		return v.keySet.KeyfuncCtx(ctx)
	case v.secret != nil:
		return func(*jwt.Token) (any, error) { return v.secret, nil }
	default:
		// One key: a kid in the token chooses nothing.
		return func(*jwt.Token) (any, error) { return v.publicKey, nil }
	}
}

func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (exp) is missing"
	case errors.Is(err, keyfunc.ErrKeyfunc):
		// The key set has no key for the token's kid, or that key is not
		// for its alg or not for signatures.
		return "no key for its kid"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	default:
		return "rejected"
	}
}
