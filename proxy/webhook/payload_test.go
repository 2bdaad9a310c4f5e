package webhook_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/webhook"
)

var eventID = regexp.MustCompile(`^msg_[0-9a-f]{32}$`)

func sampleData() webhook.Data {
	return webhook.Data{
		UploadID:  "0f3a9c1e7b2d4a6f8e1c3b5a7d9f2e4c",
		UploadURL: "https://up.example.com/files/0f3a9c1e7b2d4a6f8e1c3b5a7d9f2e4c",
		VideoID:   "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		Length:    10 << 20,
		Offset:    4 << 20,
		Metadata:  map[string]string{"filename": "holiday.mp4", "filetype": "video/mp4"},
		Owner:     "user-42",
		Context:   json.RawMessage(`{"lesson":17,"tags":["a","b"]}`),
		ParentID:  "project-1",
		ClientIP:  "203.0.113.9",
		CreatedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("MSK", 3*3600)),
	}
}

// TestEncodeBody checks every field of every event type's body, as
// receivers read it.
func TestEncodeBody(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.UTC)
	for _, typ := range webhook.Types {
		t.Run(typ, func(t *testing.T) {
			ev := encode(t, typ, at, sampleData())
			if !eventID.MatchString(ev.ID) {
				t.Errorf("id %q is not msg_ and 32 lowercase hex digits", ev.ID)
			}
			if ev.UploadID != sampleData().UploadID || ev.Type != typ || !ev.CreatedAt.Equal(at) || ev.Attempts != 0 || !ev.NextAt.IsZero() {
				t.Errorf("event = %+v", ev)
			}
			var body map[string]any
			if err := json.Unmarshal(ev.Body, &body); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, ev.Body)
			}
			if body["type"] != typ || body["timestamp"] != "2026-03-01T12:30:15.123456789Z" || len(body) != 3 {
				t.Errorf("envelope = %v", body)
			}
			data := body["data"].(map[string]any)
			want := map[string]any{
				"upload_id":  "0f3a9c1e7b2d4a6f8e1c3b5a7d9f2e4c",
				"upload_url": "https://up.example.com/files/0f3a9c1e7b2d4a6f8e1c3b5a7d9f2e4c",
				"video_id":   "7c9e6679-7425-40de-944b-e07fc1f90ae7",
				"length":     float64(10 << 20),
				"offset":     float64(4 << 20),
				"metadata":   map[string]any{"filename": "holiday.mp4", "filetype": "video/mp4"},
				"owner":      "user-42",
				"context":    map[string]any{"lesson": float64(17), "tags": []any{"a", "b"}},
				"parent_id":  "project-1",
				"client_ip":  "203.0.113.9",
				"created_at": "2026-03-01T07:00:00Z",
			}
			ending := map[string]string{
				webhook.TypeCompleted:  "completed_at",
				webhook.TypeTerminated: "terminated_at",
				webhook.TypeExpired:    "expired_at",
			}[typ]
			if ending != "" {
				want[ending] = "2026-03-01T12:30:15.123456789Z"
			}
			if !reflect.DeepEqual(data, want) {
				t.Errorf("data =\n%v\nwant\n%v", data, want)
			}
		})
	}
}

// TestEncodeEmptyValues: no metadata is {}, no context is null, and an
// ending time given for another type is not sent.
func TestEncodeEmptyValues(t *testing.T) {
	d := sampleData()
	d.Metadata, d.Context = nil, nil
	completed := time.Now()
	d.CompletedAt = &completed
	ev := encode(t, webhook.TypeCreated, time.Now(), d)
	for _, want := range []string{`"metadata":{}`, `"context":null`} {
		if !strings.Contains(string(ev.Body), want) {
			t.Errorf("body lacks %s: %s", want, ev.Body)
		}
	}
	if strings.Contains(string(ev.Body), "completed_at") {
		t.Errorf("created event claims completed_at: %s", ev.Body)
	}
}

func TestEncodeRefuses(t *testing.T) {
	enc, err := webhook.NewEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode("upload.finished", time.Now(), sampleData()); err == nil {
		t.Error("Encode accepted an unknown type")
	}
	for _, context := range []string{`[1,2]`, `"text"`, `{"a":`, `nul`} {
		d := sampleData()
		d.Context = json.RawMessage(context)
		if _, err := enc.Encode(webhook.TypeCreated, time.Now(), d); err == nil {
			t.Errorf("Encode accepted context %s, which is not a JSON object", context)
		}
	}
	if _, err := webhook.NewEncoder([]string{"upload.created", "upload.finished"}); err == nil {
		t.Error("NewEncoder accepted an unknown type")
	}
}

func TestEncoderSubscriptions(t *testing.T) {
	all, _ := webhook.NewEncoder(nil)
	some, err := webhook.NewEncoder([]string{webhook.TypeCompleted, webhook.TypeFailed})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range webhook.Types {
		if !all.Subscribed(typ) {
			t.Errorf("the default encoder does not want %s", typ)
		}
		if want := typ == webhook.TypeCompleted || typ == webhook.TypeFailed; some.Subscribed(typ) != want {
			t.Errorf("Subscribed(%s) = %v, want %v", typ, !want, want)
		}
	}
}

func TestEventIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := webhook.NewEventID()
		if seen[id] || !eventID.MatchString(id) {
			t.Fatalf("id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}
