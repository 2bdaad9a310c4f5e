package proxy

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kinescope-tools/tusproxy/config"
)

// jwtVerifier checks the Bearer JWT of a request: signature (HS256 with a
// shared secret, or RS256/ES256 with a public key or a JWKS file), and exp,
// nbf, aud and iss with a small leeway. exp is required: a token that never
// expires is a password. sub is required: it is the caller's identity.
type jwtVerifier struct {
	parser *jwt.Parser
	keys   map[string]crypto.PublicKey // by kid; "" when the key has none
	secret []byte
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

func newJWTVerifier(cfg *config.Config) (*jwtVerifier, error) {
	v := &jwtVerifier{keys: make(map[string]crypto.PublicKey)}
	var methods []string
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
			v.keys[""] = key
		} else if key, err := jwt.ParseECPublicKeyFromPEM(pemBytes); err == nil {
			v.keys[""] = key
		} else {
			return nil, errors.New("TUSPROXY_JWT_PUBLIC_KEY_FILE: not a PEM RSA or EC public key")
		}
		methods = []string{"RS256", "ES256"}
	case cfg.JWTJWKSFile != "":
		raw, err := os.ReadFile(cfg.JWTJWKSFile)
		if err != nil {
			return nil, fmt.Errorf("TUSPROXY_JWT_JWKS_FILE: %w", err)
		}
		if v.keys, err = parseJWKS(raw); err != nil {
			return nil, fmt.Errorf("TUSPROXY_JWT_JWKS_FILE: %w", err)
		}
		methods = []string{"RS256", "ES256"}
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

// verify checks the request's Bearer token and returns its claims.
func (v *jwtVerifier) verify(r *http.Request) (*jwtClaims, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, errAuthRequired
	}
	claims := &jwtClaims{}
	_, err := v.parser.ParseWithClaims(strings.TrimSpace(token), claims, v.key)
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

func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	if v.secret != nil {
		return v.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if key, ok := v.keys[kid]; ok {
		return key, nil
	}
	if kid == "" && len(v.keys) == 1 {
		for _, key := range v.keys {
			return key, nil
		}
	}
	return nil, errors.New("unknown key id")
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
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	default:
		return "rejected"
	}
}

// parseJWKS reads the RSA and P-256 signing keys of a JSON Web Key Set
// (RFC 7517); other keys are skipped.
func parseJWKS(raw []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("not a JSON Web Key Set")
	}
	keys := make(map[string]crypto.PublicKey)
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := base64.RawURLEncoding.DecodeString(k.N)
			e, err2 := base64.RawURLEncoding.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("key %q: bad RSA parameters", k.Kid)
			}
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := base64.RawURLEncoding.DecodeString(k.X)
			y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("key %q: bad EC parameters", k.Kid)
			}
			if len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("key %q: bad EC parameters", k.Kid)
			}
			// crypto/ecdh refuses points that are not on the curve.
			if _, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, x...), y...)); err != nil {
				return nil, fmt.Errorf("key %q: point not on P-256", k.Kid)
			}
			keys[k.Kid] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no RSA or P-256 signing keys")
	}
	return keys, nil
}
