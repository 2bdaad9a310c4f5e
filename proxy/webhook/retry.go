package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryDelay is how long to wait after a failed attempt when attempts were
// made before it: exponential backoff with full jitter (a random wait from
// 0 to min(RetryCap, RetryBase·2^attempts)), so that events failing together
// spread out instead of hitting a recovering receiver at once ("Exponential
// Backoff And Jitter", AWS Architecture Blog, 2015). A receiver's
// Retry-After (RFC 9110 §10.2.3) wins when it asks for longer, up to
// RetryCap: a receiver cannot park events beyond what the backoff itself
// would reach.
func (d *Dispatcher) retryDelay(attempts int, retryAfter time.Duration) time.Duration {
	ceiling := d.cfg.RetryCap
	// Past 2^40 every base is far beyond any cap; the bound keeps the shift
	// from overflowing.
	if attempts < 40 {
		if grown := d.cfg.RetryBase << attempts; grown > 0 && grown < ceiling {
			ceiling = grown
		}
	}
	delay := rand.N(ceiling + 1)
	if retryAfter > delay {
		delay = min(retryAfter, d.cfg.RetryCap)
	}
	return delay
}

// retryAfter reads a Retry-After header, delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3), as a wait from now; 0 when absent, unreadable or past.
func retryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.ParseInt(value, 10, 64); err == nil {
		if seconds <= 0 {
			return 0
		}
		// Bounded so the multiplication cannot overflow; RetryCap bounds
		// the wait anyway.
		return time.Duration(min(seconds, 365*24*3600)) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
