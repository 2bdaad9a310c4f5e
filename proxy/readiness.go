package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kinescope-tools/tusproxy/proxy/upload"
)

// States of tusproxy_ready: what /readyz would answer now.
const (
	readyOK               = "ready"
	readyDraining         = "draining"
	readyStoreUnreachable = "store_unreachable"
)

var readyStates = []string{readyOK, readyDraining, readyStoreUnreachable}

// readyTimeout bounds the store check of one readiness probe.
const readyTimeout = 2 * time.Second

// readinessInterval is how often Run checks readiness for the gauge, so it
// moves during an outage even when nobody probes /readyz: a replica a
// balancer dropped gets no requests, and its metrics are all that tells.
const readinessInterval = time.Second

// readiness publishes /readyz's verdict as a one-hot gauge, and counts the
// state store's failures by operation. The lifecycle reports its store
// failures as StoreFailed events; the domain knows nothing of Prometheus.
type readiness struct {
	mu          sync.Mutex
	state       string
	gauge       *prometheus.GaugeVec
	storeErrors *prometheus.CounterVec
}

func newReadiness(reg prometheus.Registerer) *readiness {
	r := &readiness{
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tusproxy_ready",
			Help: "1 for the replica's readiness state (ready, draining, store_unreachable), 0 for the others: what /readyz answers.",
		}, []string{"state"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tusproxy_store_errors_total",
			Help: "Failed calls to the state store (or its lock service), by operation.",
		}, []string{"operation"}),
	}
	reg.MustRegister(r.gauge, r.storeErrors)
	for _, op := range upload.StoreOps {
		r.storeErrors.WithLabelValues(op).Add(0)
	}
	// The store was opened just before the service was built.
	r.set(readyOK)
	return r
}

// set makes state the one that reads 1. Draining is final: a check that
// began before the shutdown does not undo it.
func (r *readiness) set(state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == readyDraining || r.state == state {
		return
	}
	r.state = state
	for _, s := range readyStates {
		v := 0.0
		if s == state {
			v = 1
		}
		r.gauge.WithLabelValues(s).Set(v)
	}
}

// draining reports whether a shutdown began (Drain).
func (r *readiness) draining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == readyDraining
}

var _ upload.Observer = (*readiness)(nil)

// Observe counts the lifecycle's store failures.
func (r *readiness) Observe(e upload.Event) {
	if e.Kind == upload.StoreFailed {
		r.storeErrors.WithLabelValues(e.Detail).Inc()
	}
}

// checkReady decides what /readyz answers, and sets the gauge to it. err is
// the store's, for the operator's log only (it may name the store's address).
func (s *Service) checkReady(ctx context.Context) (string, error) {
	if s.ready.draining() {
		return readyDraining, nil
	}
	pingCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.store.Ping(pingCtx); err != nil {
		if ctx.Err() != nil {
			// The prober left, or Run is ending: no verdict.
			return readyStoreUnreachable, err
		}
		s.ready.storeErrors.WithLabelValues(upload.OpPing).Inc()
		s.ready.set(readyStoreUnreachable)
		return readyStoreUnreachable, err
	}
	s.ready.set(readyOK)
	return readyOK, nil
}

// watchReadiness keeps the gauge current until ctx is done.
func (s *Service) watchReadiness(ctx context.Context) {
	tick := time.NewTicker(readinessInterval)
	defer tick.Stop()
	wasDown := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		state, err := s.checkReady(ctx)
		// One line per change, not one a second through an outage.
		if down := state == readyStoreUnreachable && err != nil && ctx.Err() == nil; down != wasDown {
			wasDown = down
			if down {
				s.log.Warn("readiness: state store does not answer", slog.String("error", err.Error()))
			} else {
				s.log.Info("readiness: state store answers again")
			}
		}
	}
}
