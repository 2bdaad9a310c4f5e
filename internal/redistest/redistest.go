// Package redistest gives tests a real Redis: where it is, a client for it,
// and a fresh key prefix per test whose keys are deleted when the test ends.
//
// Tests that need Redis call URL, Client or Prefix first. When no Redis
// answers they are skipped with a message saying how to point them at one,
// unless TUSPROXY_TEST_REDIS_REQUIRED=1 (as in CI), where they fail: a CI run
// must not pass by skipping its Redis tests.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Environment variables read by this package.
const (
	// EnvURL names the Redis to test against, as a redis:// URL.
	EnvURL = "TUSPROXY_TEST_REDIS_URL"
	// EnvRequired set to "1" turns a missing Redis into a failure.
	EnvRequired = "TUSPROXY_TEST_REDIS_REQUIRED"
)

// DefaultURL is used when EnvURL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// probe is the one reachability check per test binary: every test asking
// for Redis gets the same answer without a PING of its own.
var probe struct {
	once sync.Once
	url  string
	opts *redis.Options
	err  error
}

// URL returns the Redis URL tests use. It skips the test (or fails it, with
// TUSPROXY_TEST_REDIS_REQUIRED=1) when no Redis answers PING there.
func URL(t testing.TB) string {
	t.Helper()
	probe.once.Do(func() {
		probe.url = os.Getenv(EnvURL)
		if probe.url == "" {
			probe.url = DefaultURL
		}
		opts, err := redis.ParseURL(probe.url)
		if err != nil {
			// Not the parse error: it may quote a password from the URL.
			probe.err = fmt.Errorf("%s is not a valid redis:// URL", EnvURL)
			return
		}
		probe.opts = opts
		client := redis.NewClient(opts)
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := client.Ping(ctx).Err(); err != nil {
			probe.err = fmt.Errorf("no Redis answers at %s: %w", opts.Addr, err)
		}
	})
	if probe.err != nil {
		msg := fmt.Sprintf("%v (set %s to a Redis URL; %s=1 makes this a failure instead of a skip)",
			probe.err, EnvURL, EnvRequired)
		if os.Getenv(EnvRequired) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return probe.url
}

// Client returns a new client for URL(t), closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	URL(t)
	client := redis.NewClient(probe.opts)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// Prefix returns a key prefix no other test uses, and deletes every key
// under it when the test ends, so tests share one Redis database without
// seeing each other's keys or leaving any behind.
func Prefix(t testing.TB) string {
	t.Helper()
	client := Client(t) // registered first, so closed after the deletion below
	var random [8]byte
	_, _ = rand.Read(random[:])
	prefix := "tusproxy-test:" + hex.EncodeToString(random[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The prefix is hex and colons: no glob characters to escape.
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("redistest: listing the keys under %s: %v", prefix, err)
			return
		}
		for len(keys) > 0 {
			batch := keys[:min(len(keys), 1000)]
			keys = keys[len(batch):]
			if err := client.Del(ctx, batch...).Err(); err != nil {
				t.Errorf("redistest: deleting the keys under %s: %v", prefix, err)
				return
			}
		}
	})
	return prefix
}

// probeURL is the parsed test URL; URL has checked that it parses.
func probeURL() *url.URL {
	u, err := url.Parse(probe.url)
	if err != nil {
		panic("redistest: the probed URL no longer parses")
	}
	return u
}
