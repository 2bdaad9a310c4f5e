package redistest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Relay is a loopback TCP relay in front of the test Redis, so a test can
// make Redis go silent for its clients the way a hung server or a network
// partition does: connections stay open, but nothing comes back.
type Relay struct {
	target   string
	listener net.Listener

	mu     sync.Mutex
	muted  bool
	closed bool
	conns  []net.Conn // both ends of every relayed connection
	wg     sync.WaitGroup
}

// NewRelay starts a relay to the test Redis, stopped when the test ends.
func NewRelay(t testing.TB) *Relay {
	t.Helper()
	URL(t)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: relay listen: %v", err)
	}
	r := &Relay{target: probe.opts.Addr, listener: listener}
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string {
	return r.listener.Addr().String()
}

// URL is a redis:// URL for the test Redis through the relay, with the
// same database and credentials as URL.
func (r *Relay) URL() string {
	u := *probeURL()
	u.Host = r.Addr()
	return u.String()
}

// Mute makes Redis silent from now on: relayed connections stop carrying
// anything, and new connections are accepted but never answered. Clients
// see reads time out, not a refused or reset connection.
func (r *Relay) Mute() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.muted = true
}

func (r *Relay) accept() {
	for {
		client, err := r.listener.Accept()
		if err != nil {
			return // closed
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = client.Close()
			return
		}
		r.conns = append(r.conns, client)
		muted := r.muted
		r.mu.Unlock()
		if muted {
			r.wg.Go(func() { r.swallow(client) })
			continue
		}
		server, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, server)
		r.mu.Unlock()
		r.wg.Go(func() { r.pipe(server, client) })
		r.wg.Go(func() { r.pipe(client, server) })
	}
}

// pipe copies src to dst until either fails or the relay is muted, then
// swallows what src still sends.
func (r *Relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			muted := r.muted
			r.mu.Unlock()
			if muted {
				r.swallow(src)
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			_ = dst.Close()
			return
		}
	}
}

// swallow reads and drops everything until the connection closes.
func (r *Relay) swallow(conn net.Conn) {
	_, _ = io.Copy(io.Discard, conn)
}

func (r *Relay) close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	_ = r.listener.Close()
	for _, conn := range conns {
		_ = conn.Close()
	}
	r.wg.Wait()
}
