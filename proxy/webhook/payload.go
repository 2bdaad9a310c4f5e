// Package webhook delivers tusproxy's lifecycle events to the operator's
// receiver as signed HTTP POSTs, following the Standard Webhooks
// specification (https://www.standardwebhooks.com/, spec 1.0.0).
//
// Events are durable: the store writes each one (a state.Event) in the same
// write as the change that caused it, and the Dispatcher reads them from the
// store's outbox, delivers them at least once, in order per upload and in
// parallel across uploads, retries with backoff until TUSPROXY_WEBHOOK_MAX_AGE
// and removes them once delivered or given up. The Encoder turns a
// lifecycle fact into the event's exact bytes, once, when it happens: a
// retry sends the same body and the same webhook-id, signed again with a
// fresh timestamp.
//
// The package knows nothing of HTTP servers, routers or Prometheus: metrics
// go through the small Metrics interface (proxy implements it).
package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// The event types, the "type" of the payload and state.Event.Type.
const (
	// TypeCreated: the record is stored and Kinescope issued the video.
	TypeCreated = "upload.created"
	// TypeCompleted: Kinescope confirmed the last byte.
	TypeCompleted = "upload.completed"
	// TypeTerminated: the client terminated the upload (tus DELETE).
	TypeTerminated = "upload.terminated"
	// TypeExpired: the upload was forgotten after TUSPROXY_UPLOAD_TTL.
	TypeExpired = "upload.expired"
	// TypeFailed: Kinescope no longer knows the upload (404/410 for its
	// endpoint).
	TypeFailed = "upload.failed"
)

// Types lists every event type, in lifecycle order: the default of
// TUSPROXY_WEBHOOK_EVENTS and the label values of the delivery metrics.
var Types = []string{TypeCreated, TypeCompleted, TypeTerminated, TypeExpired, TypeFailed}

// KnownType reports whether t is one of Types.
func KnownType(t string) bool { return slices.Contains(Types, t) }

// Data is the payload's "data": what the receiver learns about the upload.
// The JSON names are part of the product, documented in README "Webhooks".
type Data struct {
	UploadID  string `json:"upload_id"`
	UploadURL string `json:"upload_url"` // absolute, as answered in Location
	VideoID   string `json:"video_id"`   // Kinescope's video id
	Length    int64  `json:"length"`     // Upload-Length, bytes
	Offset    int64  `json:"offset"`     // bytes Kinescope confirmed
	// Metadata is the decoded Upload-Metadata; nil is sent as {}.
	Metadata map[string]string `json:"metadata"`
	Owner    string            `json:"owner"` // "" when no auth is configured
	// Context is the application's context, a JSON object's exact bytes as
	// the auth hook or the JWT gave it; empty (or null) is sent as null.
	Context   json.RawMessage `json:"context"`
	ParentID  string          `json:"parent_id"`
	ClientIP  string          `json:"client_ip"`
	CreatedAt time.Time       `json:"created_at"`
	// CompletedAt, TerminatedAt and ExpiredAt are present only in the event
	// of that name; Encode sets the one that applies from its at and clears
	// the others, so a payload can never claim two endings.
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	TerminatedAt *time.Time `json:"terminated_at,omitempty"`
	ExpiredAt    *time.Time `json:"expired_at,omitempty"`
}

// envelope is the body of every delivery, the shape Standard Webhooks
// suggests: {"type", "timestamp", "data"}.
type envelope struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Encoder builds the events of the subscribed types. The zero value is not
// usable: build it with NewEncoder.
type Encoder struct {
	subscribed map[string]bool
}

// NewEncoder returns an encoder for the given event types (as
// TUSPROXY_WEBHOOK_EVENTS names them); none means all. An unknown type is an
// error.
func NewEncoder(types []string) (*Encoder, error) {
	if len(types) == 0 {
		types = Types
	}
	e := &Encoder{subscribed: make(map[string]bool, len(types))}
	for _, t := range types {
		if !KnownType(t) {
			return nil, fmt.Errorf("webhook: %q is not an event type", t)
		}
		e.subscribed[t] = true
	}
	return e, nil
}

// Subscribed reports whether events of type t are wanted: the lifecycle
// stores no event nobody asked for.
func (e *Encoder) Subscribed(t string) bool { return e.subscribed[t] }

// Encode builds the event of type t that happened at at: a fresh webhook-id
// and the body's exact bytes, which are stored and sent as they are. Times
// are written in UTC, RFC 3339 with the nanoseconds Go keeps (receivers
// parse both). It refuses an unknown type and a Context that is not a JSON
// object.
func (e *Encoder) Encode(t string, at time.Time, d Data) (state.Event, error) {
	if !KnownType(t) {
		return state.Event{}, fmt.Errorf("webhook: %q is not an event type", t)
	}
	if string(d.Context) == "null" {
		d.Context = nil
	}
	if len(d.Context) > 0 && !isJSONObject(d.Context) {
		return state.Event{}, fmt.Errorf("webhook: the context of upload %s is not a JSON object", d.UploadID)
	}
	at = at.UTC()
	d.CreatedAt = d.CreatedAt.UTC()
	d.CompletedAt, d.TerminatedAt, d.ExpiredAt = nil, nil, nil
	switch t {
	case TypeCompleted:
		d.CompletedAt = &at
	case TypeTerminated:
		d.TerminatedAt = &at
	case TypeExpired:
		d.ExpiredAt = &at
	}
	if d.Metadata == nil {
		d.Metadata = map[string]string{}
	}
	if len(d.Context) == 0 {
		d.Context = json.RawMessage("null")
	}
	body, err := json.Marshal(envelope{Type: t, Timestamp: at, Data: d})
	if err != nil {
		return state.Event{}, fmt.Errorf("webhook: encoding the %s event of upload %s: %w", t, d.UploadID, err)
	}
	return state.Event{ID: NewEventID(), UploadID: d.UploadID, Type: t, Body: body, CreatedAt: at}, nil
}

// isJSONObject reports whether raw is one valid JSON object.
func isJSONObject(raw []byte) bool {
	var object map[string]json.RawMessage
	return json.Unmarshal(raw, &object) == nil && object != nil
}

// NewEventID returns a webhook-id: "msg_" and 32 lowercase hex digits of
// crypto/rand, 128 bits, so ids never collide across replicas or restarts
// and receivers can deduplicate by them.
func NewEventID() string {
	var b [16]byte
	// crypto/rand.Read never fails; it crashes the program instead.
	rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}
