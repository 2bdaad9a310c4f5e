package upload

import (
	"log/slog"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// EventEncoder turns a lifecycle fact about a stored record into the event to deliver, or ok=false
// when nobody subscribed to that type (webhooks off, or the type not in TUSPROXY_WEBHOOK_EVENTS).
type EventEncoder interface {
	Encode(kind EventKind, rec state.Record, at time.Time) (ev state.Event, ok bool, err error)
}

// Durable events go into the store write that causes them, as a
// state.WriteOption: the record and its event are stored together or not at
// all, so no crash can separate a change from the webhook that reports it.
// Which write carries which event:
//
//	upload.created     the record's Create                     (create.go)
//	upload.completed   any Update that makes Offset reach      (write.go)
//	                   Length, from below: a PATCH's progress,
//	                   or the upstream's offset recorded after
//	                   a failure or by HEAD
//	upload.terminated  Terminate's Delete                      (open.go)
//	upload.failed      the Delete of an upload the upstream    (write.go)
//	                   lost (404/410)
//	upload.expired     the Sweep of idle uploads, one each     (expire.go)
//
// The encoder gets the record as that write stores it (for a deletion: as
// it was last stored), inside the write. Completed is decided on the
// stored record, before and after, so of two writers racing to the last
// byte (a replica that lost the lock), only the one whose update moved the
// record there stores it.

// durable is the option that makes the write store the event of kind about
// the record it writes; nil (no option) without an encoder.
func (l *Lifecycle) durable(kind EventKind, at time.Time) state.WriteOption {
	if l.encoder == nil {
		return nil
	}
	return state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) {
		rec := after
		switch kind {
		case Completed:
			if before.Offset >= before.Length || after.Offset != after.Length {
				return nil, nil // this write did not store the last byte
			}
		case Terminated, Expired, Lost:
			rec = before // deleted: the record as it was last stored
		}
		return l.encode(kind, rec, at), nil
	})
}

// encode runs the encoder. An encoder that fails drops its event rather
// than the write: an upload must not fail (nor a creation orphan its
// Kinescope video) because its webhook could not be built; the failure is
// logged with the upload and the type.
func (l *Lifecycle) encode(kind EventKind, rec state.Record, at time.Time) []state.Event {
	ev, ok, err := l.encoder.Encode(kind, rec, at)
	if err != nil {
		l.log.Error("could not build a webhook event; it is not sent", slog.String("upload_id", rec.ID),
			slog.String("type", kind.Type()), slog.String("error", err.Error()))
		return nil
	}
	if !ok {
		return nil
	}
	if ev.Type == "" {
		ev.Type = kind.Type()
	}
	return []state.Event{ev}
}
