package proxy

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// When a request arrived, for the lifecycle to tell a PATCH its client had
// already given up on (upload.Arrival). A server's goroutines may start on
// a request well after the kernel took it in: a client whose connection
// dropped mid-PATCH, and who at once sends a HEAD on a new connection, can
// have its HEAD answered before the handler of the dead PATCH (whose bytes
// are buffered) even starts. Connections are accepted in the order they
// came, so the first request on a connection is stamped with its
// connection's accept; a later one with its handler's start, since the
// server reads it only after answering the one before.

type connArrivalKey struct{}

type connArrival struct {
	accepted time.Time
	used     atomic.Bool // the connection's first request took accepted
}

// ConnContext is the http.Server ConnContext hook that stamps each
// connection with the time it was accepted; servers of the Service set it.
// Without it a request's arrival is its handler's start.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connArrivalKey{}, &connArrival{accepted: time.Now()})
}

// withArrival stamps the request's context with its arrival for the
// lifecycle (upload.WithArrival); ServeHTTP does it first.
func withArrival(r *http.Request) *http.Request {
	arrived := time.Now()
	if c, ok := r.Context().Value(connArrivalKey{}).(*connArrival); ok && c.used.CompareAndSwap(false, true) {
		arrived = c.accepted
	}
	return r.WithContext(upload.WithArrival(r.Context(), arrived))
}
