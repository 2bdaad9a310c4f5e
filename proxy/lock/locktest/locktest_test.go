package locktest_test

import (
	"testing"

	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/kinescope-tools/tusproxy/proxy/lock/locktest"
)

// TestMemoryLocker runs the suite against tusd's memorylocker, the proxy's
// locker with a single replica: the suite states the semantics the Redis
// locker must keep.
func TestMemoryLocker(t *testing.T) {
	locktest.Run(t, func(*testing.T) locktest.Deployment {
		l := memorylocker.New()
		return func() handler.Locker { return l }
	})
}
