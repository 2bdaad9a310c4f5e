package upload

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// EventKind says what an Event reports.
type EventKind int

// Lifecycle events: a fact about an upload, emitted once, by the lifecycle,
// after the change it reports is stored. These are the events a durable
// subscriber (webhooks) will take from an outbox (see Durable).
const (
	// Created: the upload's record is stored (Kinescope's video exists).
	Created EventKind = iota + 1
	// Completed: the record holds the upload's last byte, confirmed by the
	// upstream.
	Completed
	// Terminated: the client deleted the upload; its record is gone.
	Terminated
	// Expired: the sweeper dropped the record of an idle upload.
	Expired
	// Lost: the upstream no longer has the upload; its record is dropped.
	Lost
	// Orphaned: a creation stopped between Kinescope's init and storing its
	// record (Event.Intent says which); reported once, by the sweeper.
	Orphaned
)

// Telemetry events: how the work went, for metrics and logs. Not stored,
// never durable.
const (
	// UpstreamCall: one request to Kinescope ended (Event.Call).
	UpstreamCall EventKind = iota + 100
	// Accepted: the upstream confirmed Event.Bytes more bytes of the upload.
	Accepted
	// OffsetMismatch: an offset disagreement; Event.Detail is SideClient or
	// SideUpstream.
	OffsetMismatch
	// Reconciled: the upstream was asked for the offset after a failed
	// write; Event.Detail is ReconcileSynced, ReconcileUncertain or
	// ReconcileGone.
	Reconciled
	// EndpointRefused: Kinescope issued an endpoint outside the allowlist.
	EndpointRefused
	// StreamStarted and StreamEnded bracket one write (a PATCH, or a
	// creation's body); Event.Stream is the same pointer in both, and
	// Event.Upload the upload before and after.
	StreamStarted
	StreamEnded
	// StoreFailed: a call to the state store (or to the lock service next
	// to it) failed; Event.Detail is its operation, one of StoreOps. Nothing
	// was stored, so it is the one event not published after a write.
	StoreFailed
)

// StoreOps are the operations a StoreFailed event names: the whole set, so
// an observer can create its series up front.
var StoreOps = []string{
	OpCreateIntent, OpCreate, OpGet, OpLock, OpUpdate, OpDelete,
	OpDeleteIntent, OpSetIntentVideo, OpSweep, OpSweepIntents, OpPing,
}

// Values of a StoreFailed event's Detail.
const (
	OpCreateIntent   = "create_intent"    // a creation's intent, before Kinescope's init
	OpCreate         = "create"           // a new upload's record
	OpGet            = "get"              // reading a record
	OpLock           = "lock"             // taking an upload's lock
	OpUpdate         = "update"           // recording an offset
	OpDelete         = "delete"           // a terminated or lost upload's record
	OpDeleteIntent   = "delete_intent"    // the intent of a refused creation
	OpSetIntentVideo = "set_intent_video" // the video id of an orphaned creation
	OpSweep          = "sweep"            // expiring idle uploads
	OpSweepIntents   = "sweep_intents"    // reporting orphaned creations
	OpPing           = "ping"             // a readiness check, or creation checking a store known to be failing
)

func (k EventKind) String() string {
	switch k {
	case Created:
		return "created"
	case Completed:
		return "completed"
	case Terminated:
		return "terminated"
	case Expired:
		return "expired"
	case Lost:
		return "lost"
	case Orphaned:
		return "orphaned"
	case UpstreamCall:
		return "upstream_call"
	case Accepted:
		return "accepted"
	case OffsetMismatch:
		return "offset_mismatch"
	case Reconciled:
		return "reconciled"
	case EndpointRefused:
		return "endpoint_refused"
	case StreamStarted:
		return "stream_started"
	case StreamEnded:
		return "stream_ended"
	case StoreFailed:
		return "store_failed"
	}
	return "unknown"
}

// Durable reports whether the event is a lifecycle fact that a durable
// subscriber must not miss. Those with a Type (all but Orphaned, which no
// record write causes) are also stored in the outbox, through the
// EventEncoder, by the store write that causes them (see durable.go).
func (k EventKind) Durable() bool { return k >= Created && k <= Orphaned }

// Type is the kind's name as a durable event (a webhook's type), "" for the
// kinds that are not stored in the outbox.
func (k EventKind) Type() string {
	switch k {
	case Created:
		return "upload.created"
	case Completed:
		return "upload.completed"
	case Terminated:
		return "upload.terminated"
	case Expired:
		return "upload.expired"
	case Lost:
		return "upload.failed"
	}
	return ""
}

// Values of Event.Detail.
const (
	SideClient         = "client"    // the client's offset was not the upload's
	SideUpstream       = "upstream"  // the upstream disagreed with the record
	ReconcileSynced    = "synced"    // the upstream was asked; its offset is recorded
	ReconcileUncertain = "uncertain" // it could not be asked; the next write asks
	ReconcileGone      = "gone"      // it no longer has the upload
)

// Event is what observers receive.
type Event struct {
	Kind EventKind
	At   time.Time
	// Upload is the record as stored after the change (for Terminated,
	// Expired and Lost: as it was last stored). Never log its Endpoint.
	Upload state.Record
	// Intent is the abandoned creation of an Orphaned event.
	Intent state.Intent
	// Call is the upstream request of an UpstreamCall event.
	Call *Call
	// Stream is the write of StreamStarted and StreamEnded.
	Stream *Stream
	// Bytes is the count of an Accepted event.
	Bytes int64
	// Detail qualifies OffsetMismatch and Reconciled events, and names the
	// operation of a StoreFailed one.
	Detail string
	// RequestID is Kinescope's request id of a Created event.
	RequestID string
	// UpstreamStatus is the upstream's answer of a Lost event (404 or 410).
	UpstreamStatus int
}

// Call is one request to Kinescope.
type Call struct {
	Op       string // init, head, patch, delete
	Err      error  // nil when it succeeded; a *kinescope.Error or *tusproto.Error otherwise
	Duration time.Duration
}

// Stream is one write in flight.
type Stream struct {
	Start int64     // the upload's offset when it began
	Began time.Time //
	// Received counts the body bytes read so far; safe from any goroutine.
	// Every byte read from the body is handed to an upstream PATCH, so it
	// is also what was sent upstream so far.
	Received func() int64

	// wall is when the write began on the wall clock (Began is the
	// lifecycle's clock, which tests may fake); firstSent is nanoseconds from
	// wall to the upstream request's first read of the body, 0: not yet. It
	// is set on the transport's goroutine.
	wall      time.Time
	firstSent atomic.Int64
}

// FirstByte is the time from the write's start to its first body byte
// handed to the upstream PATCH (reconciled, connected, headers written);
// false when none was. Safe from any goroutine.
func (s *Stream) FirstByte() (time.Duration, bool) {
	n := s.firstSent.Load()
	return time.Duration(n), n != 0
}

// Kept is what the upstream holds of this write once it ended, given the
// upload after it (StreamEnded's Event.Upload); never negative.
func (s *Stream) Kept(after state.Record) int64 {
	return max(after.Offset-s.Start, 0)
}

// Lost is what the client sent in this write that the upstream did not
// keep, given the upload after it: measured once the write ended and its
// offset was reconciled, not inferred from counters that move at different
// times. An offset left uncertain (the upstream could not be asked) counts
// as lost what it could not confirm.
func (s *Stream) Lost(after state.Record) int64 {
	return max(s.Received()-s.Kept(after), 0)
}

// firstRead marks the stream's first body byte read by the upstream
// request. After the first read it costs one atomic load per read.
type firstRead struct {
	r io.Reader
	s *Stream
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && f.s.firstSent.Load() == 0 {
		f.s.firstSent.CompareAndSwap(0, max(int64(time.Since(f.s.wall)), 1))
	}
	return n, err
}

// Observer receives events. Observe is called on the request's goroutine:
// it must not block (buffer inside if it must) and must not call back into
// the lifecycle.
type Observer interface {
	Observe(Event)
}

// Observers fans events out to several observers, in order.
type Observers []Observer

func (o Observers) Observe(e Event) {
	for _, obs := range o {
		obs.Observe(e)
	}
}
