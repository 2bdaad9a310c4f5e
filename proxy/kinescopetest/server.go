package kinescopetest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server is an [Emulator] listening on a loopback port, like
// httptest.Server.
type Server struct {
	*Emulator
	// URL is the base URL of the server, "http://127.0.0.1:PORT".
	URL string
	// InitURL is URL + "/v2/init", what a Kinescope client is configured with.
	InitURL string

	http   *http.Server
	cancel context.CancelFunc // ends every request's context
	served chan struct{}      // closed when Serve has returned
}

// NewServer starts an emulator configured by opts on 127.0.0.1 at a free port.
// Close it when done.
func NewServer(opts Options) (*Server, error) {
	emulator, err := New(opts)
	if err != nil {
		return nil, err
	}
	// Listen before serving, so that a failure is an error here and not a
	// log line later.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, emulator.Close())
	}
	// Requests' contexts derive from ctx, so that Close also wakes handlers
	// that sleep for Faults.Latency or Faults.InitDelay.
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		Emulator: emulator,
		URL:      "http://" + listener.Addr().String(),
		http: &http.Server{
			Handler:           emulator,
			ReadHeaderTimeout: 10 * time.Second,
			// ReadTimeout and WriteTimeout stay 0: uploads are long, and tusd
			// moves the deadlines along while bytes flow.
			ErrorLog:    slog.NewLogLogger(emulator.log.Handler(), slog.LevelWarn),
			BaseContext: func(net.Listener) context.Context { return ctx },
		},
		cancel: cancel,
		served: make(chan struct{}),
	}
	s.InitURL = s.URL + initPath
	go func() {
		defer close(s.served)
		_ = s.http.Serve(listener) // returns http.ErrServerClosed on Close
	}()
	return s, nil
}

// Close closes the listener and every connection, waits for the handlers
// still running and closes the emulator (removing its temporary storage).
func (s *Server) Close() {
	s.cancel()
	_ = s.http.Close()
	<-s.served
	_ = s.Emulator.Close()
}
