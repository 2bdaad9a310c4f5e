package state_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// A commit that grows the file must not wait for the read transactions open
// at the time (issue 15). bbolt remaps a file that outgrows its mapping, and
// a remap waits for every open reader and holds off new ones; Create reads
// the file under the store's lock, so one remap used to stop every write of
// the service. OpenBolt maps 1 GiB up front, so below that no commit
// remaps. Without it this test blocks: the first commits outgrow bbolt's
// initial 32 KiB mapping while the reader is open.
func TestBoltCommitsDoNotWaitForOpenReaders(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	endRead, err := b.HoldReader()
	if err != nil {
		t.Fatalf("HoldReader: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		// 2 MiB of records, one commit each: far past the mapping sizes
		// bbolt would have doubled through.
		for i := range 50 {
			rec := state.Record{ID: fmt.Sprintf("up-%02d", i), Length: 1 << 20, Endpoint: strings.Repeat("e", 40<<10),
				CreatedAt: created, UpdatedAt: created}
			if err := b.Create(ctx, rec); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// The deadline only turns a blocked commit into a failure instead of a
	// hung test; creating the records takes a fraction of it.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
	case <-time.After(60 * time.Second):
		// End the reader so the blocked commit, and Close, can finish.
		_ = endRead()
		<-done
		t.Fatal("Create waited for an open read transaction: a commit remapped the file")
	}
	if err := endRead(); err != nil {
		t.Fatalf("ending the read transaction: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
