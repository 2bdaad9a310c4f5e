package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

// verify checks a delivery with the Standard Webhooks project's own Go
// library, an implementation nobody here wrote.
func verify(t *testing.T, secret string, body []byte, header http.Header) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(body, header)
}

func signedHeader(id string, ts time.Time, signature string) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(webhook.HeaderSignature, signature)
	return h
}

func TestSignatureVerifiesWithTheStandardLibrary(t *testing.T) {
	signer, err := webhook.ParseSecrets(secretA + "  " + secretB)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"upload.created","timestamp":"2026-03-01T12:00:00Z","data":{}}`)
	now := time.Now()
	signature := signer.Sign("msg_0123456789abcdef0123456789abcdef", now, body)
	entries := strings.Split(signature, " ")
	if len(entries) != 2 || !strings.HasPrefix(entries[0], "v1,") || !strings.HasPrefix(entries[1], "v1,") {
		t.Fatalf("signature %q is not two space-separated v1 entries", signature)
	}
	header := signedHeader("msg_0123456789abcdef0123456789abcdef", now, signature)
	for _, secret := range []string{secretA, secretB} {
		if err := verify(t, secret, body, header); err != nil {
			t.Errorf("the library refuses a delivery signed with both secrets: %v", err)
		}
	}
	// The checks above can fail: another secret, a changed body or id, or an
	// old timestamp are refused.
	other := "whsec_" + base64.StdEncoding.EncodeToString(testkit.RandomBytes(32))
	if verify(t, other, body, header) == nil {
		t.Error("a delivery verified with a secret it was not signed with")
	}
	if verify(t, secretA, append([]byte(" "), body...), header) == nil {
		t.Error("a changed body verified")
	}
	if verify(t, secretA, body, signedHeader("msg_other", now, signature)) == nil {
		t.Error("a changed id verified")
	}
	old := now.Add(-10 * time.Minute)
	if verify(t, secretA, body, signedHeader("msg_0123456789abcdef0123456789abcdef", old, signer.Sign("msg_0123456789abcdef0123456789abcdef", old, body))) == nil {
		t.Error("a signature ten minutes old verified: the library's tolerance is not what the notes say")
	}
}

func TestParseSecretsRefuses(t *testing.T) {
	short := "whsec_" + base64.StdEncoding.EncodeToString(testkit.RandomBytes(23))
	noPrefix := base64.StdEncoding.EncodeToString(testkit.RandomBytes(32))
	notBase64 := "whsec_" + strings.Repeat("!", 40)
	tests := []struct {
		raw, want string
	}{
		{"", "is empty"},
		{"   ", "is empty"},
		{short, "the secret holds fewer than 24 bytes"},
		{noPrefix, "the secret does not start with whsec_"},
		{notBase64, "the secret is not whsec_ followed by standard base64"},
		{secretA + " " + short, "secret 2 of 2 holds fewer than 24 bytes"},
	}
	for _, tt := range tests {
		_, err := webhook.ParseSecrets(tt.raw)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseSecrets: error %v, want one starting %q", err, tt.want)
			continue
		}
		for _, secret := range []string{short, noPrefix, notBase64, secretA} {
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) {
				t.Errorf("error %q quotes the secret", err)
			}
		}
	}
	exactly24 := "whsec_" + base64.StdEncoding.EncodeToString(testkit.RandomBytes(24))
	if _, err := webhook.ParseSecrets(exactly24); err != nil {
		t.Errorf("a 24-byte secret was refused: %v", err)
	}
}
