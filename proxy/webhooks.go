package proxy

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/upload"
	"github.com/kinescope-tools/tusproxy/proxy/webhook"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// webhooks joins the lifecycle to the webhook package: the lifecycle asks it
// for the durable event of each fact (stored by the same write), and the
// dispatcher delivers what the store holds. nil when TUSPROXY_WEBHOOK_URL is
// empty.
type webhooks struct {
	encoder    *webhook.Encoder
	dispatcher *webhook.Dispatcher
}

func newWebhooks(cfg *config.Config, store state.Store, deps webhook.Deps) (*webhooks, error) {
	if !cfg.WebhooksEnabled() {
		return nil, nil
	}
	encoder, err := webhook.NewEncoder(cfg.WebhookEvents)
	if err != nil {
		return nil, err
	}
	deps.Outbox = store
	dispatcher, err := webhook.New(webhook.Config{
		URL:     cfg.WebhookURL,
		Secret:  cfg.WebhookSecret,
		Timeout: cfg.WebhookTimeout,
		MaxAge:  cfg.WebhookMaxAge,
	}, deps)
	if err != nil {
		return nil, err
	}
	return &webhooks{encoder: encoder, dispatcher: dispatcher}, nil
}

// Encode is the lifecycle's upload.EventEncoder: the event of kind about
// rec, or ok=false when that type is not subscribed.
func (w *webhooks) Encode(kind upload.EventKind, rec state.Record, at time.Time) (state.Event, bool, error) {
	eventType := kind.Type()
	if !w.encoder.Subscribed(eventType) {
		return state.Event{}, false, nil
	}
	ev, err := w.encoder.Encode(eventType, at, webhookData(rec))
	if err != nil {
		return state.Event{}, false, err
	}
	return ev, true, nil
}

// Observe wakes the dispatcher when a durable event was just stored, so a
// receiver hears of it at once rather than at the next poll. Events of a
// type not subscribed to were never stored: nothing to wake it for.
func (w *webhooks) Observe(ev upload.Event) {
	if w.encoder.Subscribed(ev.Kind.Type()) {
		w.dispatcher.Notify()
	}
}

// webhookData is the payload's data about rec. The metadata was checked
// when the upload was created, so a parse error cannot happen here; should
// one, the event still goes out with what could be read.
func webhookData(rec state.Record) webhook.Data {
	metadata, _ := tusproto.ParseMetadata(rec.Metadata)
	var ctxJSON json.RawMessage
	if rec.Context != "" {
		ctxJSON = json.RawMessage(rec.Context)
	}
	return webhook.Data{
		UploadID:  rec.ID,
		UploadURL: rec.URL,
		VideoID:   rec.VideoID,
		Length:    rec.Length,
		Offset:    rec.Offset,
		Metadata:  metadata,
		Owner:     rec.Owner,
		Context:   ctxJSON,
		ParentID:  rec.ParentID,
		ClientIP:  rec.ClientIP,
		CreatedAt: rec.CreatedAt,
	}
}

// run delivers until ctx ends.
func (w *webhooks) run(ctx context.Context) {
	if w != nil {
		w.dispatcher.Run(ctx)
	}
}

// shutdown lets deliveries in flight finish until ctx ends; those cut then
// stay in the outbox for the next start (or another replica).
func (w *webhooks) shutdown(ctx context.Context) error {
	if w == nil {
		return nil
	}
	return w.dispatcher.Shutdown(ctx)
}
