package state

import "time"

// Event is a lifecycle event waiting for delivery, written in the same store write as the change
// that caused it.
type Event struct {
	ID        string    // unique per event, the webhook-id; "msg_" + 32 lowercase hex (128 random bits)
	UploadID  string    // one upload's events are claimed strictly in the order they were stored
	Type      string    // "upload.created", "upload.completed", "upload.terminated", "upload.expired", "upload.failed"
	Body      []byte    // the exact JSON body to POST (signed as is, never re-serialized)
	CreatedAt time.Time // when it happened: its age for TUSPROXY_WEBHOOK_MAX_AGE and the metrics
	Attempts  int       // delivery attempts made so far
	NextAt    time.Time // not to be claimed before this (zero: at once)
}
