package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (spec 1.0.0, "Webhook headers").
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret, as Standard Webhooks writes them: the
// rest is the key in standard base64.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest key accepted: the spec asks for 24 to 64
// random bytes, and a shorter HMAC key is the weak point of the signature.
const MinSecretBytes = 24

// Signer signs deliveries with every configured key, so that a receiver
// rotating its secret accepts deliveries signed with the old or the new one
// (the spec's "several signatures, space-separated").
type Signer struct {
	keys [][]byte
}

// ParseSecrets reads TUSPROXY_WEBHOOK_SECRET: one or more secrets separated
// by spaces, each "whsec_" and the standard base64 (with its padding, as the
// published libraries decode it) of at least MinSecretBytes bytes. Its errors
// say which entry is wrong and why, never quoting it: it is a secret.
func ParseSecrets(raw string) (*Signer, error) {
	entries := strings.Fields(raw)
	if len(entries) == 0 {
		return nil, fmt.Errorf("is empty")
	}
	s := &Signer{}
	for i, entry := range entries {
		which := "the secret"
		if len(entries) > 1 {
			which = "secret " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(entries))
		}
		encoded, ok := strings.CutPrefix(entry, SecretPrefix)
		if !ok {
			return nil, fmt.Errorf("%s does not start with %s (a Standard Webhooks secret is %s and base64)", which, SecretPrefix, SecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			return nil, fmt.Errorf("%s is not %s followed by standard base64", which, SecretPrefix)
		}
		if len(key) < MinSecretBytes {
			return nil, fmt.Errorf("%s holds fewer than %d bytes; use %d to 64 random bytes (openssl rand -base64 32)", which, MinSecretBytes, MinSecretBytes)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

// Sign returns the webhook-signature header of one attempt: "v1," and the
// base64 of HMAC-SHA256(key, id + "." + unix seconds + "." + body) for each
// key, space-separated (spec 1.0.0, "Signature scheme"). body must be the
// exact bytes sent.
func (s *Signer) Sign(id string, timestamp time.Time, body []byte) string {
	prefix := id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."
	signatures := make([]string, len(s.keys))
	for i, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(prefix))
		mac.Write(body)
		signatures[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return strings.Join(signatures, " ")
}
