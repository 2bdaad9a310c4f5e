package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/internal/storespec"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/lock/redislock"
	"github.com/kinescope-tools/tusproxy/proxy/redislimit"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// redisOpenTimeout bounds the first contact with Redis at start.
const redisOpenTimeout = 10 * time.Second

// sharedState is where upload records and locks live. With bolt or memory
// the lock and the per-address limits are the proxy's in-process ones
// (locker and limiter nil); with Redis, records, locks and the per-address
// limits are shared by every replica.
type sharedState struct {
	store   state.Store
	locker  handler.Locker // nil: in-process
	limiter proxy.Limiter  // nil: in-process
	close   func()
}

func openState(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*sharedState, error) {
	spec, err := storespec.Parse(cfg.Store)
	if err != nil {
		// Validate refused it already; this is for a Config built by hand.
		return nil, fmt.Errorf("TUSPROXY_STORE: %w", err)
	}
	if spec.Kind != storespec.Redis {
		store, err := state.Open(cfg.Store)
		if err != nil {
			return nil, err
		}
		return &sharedState{store: store, close: func() { _ = store.Close() }}, nil
	}
	return openRedisState(ctx, cfg, spec.URL, logger)
}

// openRedisState opens the Redis store at redisURL, and the distributed
// locker and per-address limiter that share its client.
func openRedisState(ctx context.Context, cfg *config.Config, redisURL string, logger *slog.Logger) (*sharedState, error) {
	// go-redis logs connection trouble through a logger of its own; send
	// it to ours. Its lines name the address, never the password.
	redis.SetLogger(redisLogger{logger})
	openCtx, cancel := context.WithTimeout(ctx, redisOpenTimeout)
	defer cancel()
	store, err := state.OpenRedis(openCtx, redisURL, state.RedisOptions{
		Prefix: cfg.RedisPrefix,
		// A safety net for records nothing sweeps; twice the upload TTL
		// as the store requires, none when uploads never expire.
		TTL: 2 * cfg.UploadTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("TUSPROXY_STORE: %w", err)
	}
	locker, err := redislock.New(store.Client(), redislock.Options{Prefix: cfg.RedisPrefix, Lease: cfg.LockLease, Logger: logger})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	// Errors only for a nil client; the store's is not.
	limiter, err := redislimit.New(store.Client(), redislimit.Options{Prefix: cfg.RedisPrefix})
	if err != nil {
		return nil, errors.Join(err, locker.Close(), store.Close())
	}
	return &sharedState{store: store, locker: locker, limiter: limiter, close: func() {
		// The locker uses the store's client: it goes first.
		_ = locker.Close()
		_ = store.Close()
	}}, nil
}

// redisLogger adapts slog to go-redis's logging interface.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
