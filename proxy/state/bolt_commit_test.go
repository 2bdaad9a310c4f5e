package state_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// Offset-only updates are answered from memory at once and reach the file
// later (see state.Bolt); these tests pin down when.

// offsetUpdate records an offset as the proxy does after a PATCH.
func offsetUpdate(t *testing.T, b *state.Bolt, id string, offset int64, at time.Time) state.Record {
	t.Helper()
	rec, err := b.Update(context.Background(), id, func(rec *state.Record) error {
		rec.Offset, rec.OffsetUncertain, rec.UpdatedAt = offset, false, at
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return rec
}

func TestBoltDeferredOffsetsReachTheFileOnClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	b := openBolt(t, path)
	if err := b.Create(ctx, state.Record{ID: "up", Length: 1000, UpdatedAt: created}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	last := created
	for offset := int64(1); offset <= 100; offset++ {
		last = created.Add(time.Duration(offset) * time.Second)
		offsetUpdate(t, b, "up", offset, last)
		// Visible to this store at once.
		if got, err := b.Get(ctx, "up"); err != nil || got.Offset != offset {
			t.Fatalf("Get after Update to %d = %+v, %v", offset, got, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = openBolt(t, path)
	defer b.Close()
	got, err := b.Get(ctx, "up")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Offset != 100 || !got.UpdatedAt.Equal(last) {
		t.Errorf("after Close and reopen: Offset %d, UpdatedAt %v; want 100, %v", got.Offset, got.UpdatedAt, last)
	}
	// The expiry index followed the deferred UpdatedAt.
	swept, err := b.Sweep(ctx, last, 10)
	if err != nil || len(swept) != 0 {
		t.Errorf("Sweep before the last UpdatedAt = %v, %v; want nothing", swept, err)
	}
	if swept, err := b.Sweep(ctx, last.Add(time.Nanosecond), 10); err != nil || len(swept) != 1 {
		t.Errorf("Sweep after the last UpdatedAt = %v, %v; want the record", swept, err)
	}
}

func TestBoltDeferredOffsetsAreCommittedWithoutClose(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	defer b.Close()
	if err := b.Create(ctx, state.Record{ID: "up", Length: 1000, UpdatedAt: created}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	offsetUpdate(t, b, "up", 500, created.Add(time.Minute))
	// The flush is due within a fraction of a second; the deadline only
	// keeps a broken committer from hanging the test.
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored, err := b.Stored("up")
		if err != nil {
			t.Fatalf("Stored: %v", err)
		}
		if stored.Offset == 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deferred offset never reached the file: it holds %d", stored.Offset)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBoltOtherChangesAreCommittedBeforeReturning(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	defer b.Close()
	rec := state.Record{ID: "up", VideoID: "v", Length: 1000, UpdatedAt: created}
	if err := b.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if stored, err := b.Stored("up"); err != nil || stored.VideoID != "v" {
		t.Fatalf("after Create the file holds %+v, %v", stored, err)
	}
	offsetUpdate(t, b, "up", 300, created.Add(time.Minute))
	// An update of any other field waits for its commit, and carries the
	// deferred offset with it.
	if _, err := b.Update(ctx, "up", func(r *state.Record) error { r.Metadata = "filename eA=="; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	stored, err := b.Stored("up")
	if err != nil || stored.Metadata != "filename eA==" || stored.Offset != 300 {
		t.Fatalf("after a Metadata update the file holds %+v, %v; want the metadata and offset 300", stored, err)
	}
	if err := b.Delete(ctx, "up"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stored("up"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after Delete the file still holds the record: %v", err)
	}
}

// TestBoltConcurrentWriters runs every kind of write at once (creations
// share commits) and checks the file afterwards.
func TestBoltConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	b := openBolt(t, path)
	const uploads = 40
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Go(func() {
			id := fmt.Sprint("up-", i)
			if err := b.Create(ctx, state.Record{ID: id, Length: 100, UpdatedAt: created}); err != nil {
				t.Errorf("Create(%s): %v", id, err)
				return
			}
			for offset := int64(1); offset <= 20; offset++ {
				_, err := b.Update(ctx, id, func(rec *state.Record) error {
					rec.Offset, rec.UpdatedAt = offset, created.Add(time.Duration(offset)*time.Second)
					return nil
				})
				if err != nil {
					t.Errorf("Update(%s): %v", id, err)
				}
			}
			if i%4 == 0 {
				if err := b.Delete(ctx, id); err != nil {
					t.Errorf("Delete(%s): %v", id, err)
				}
			}
		})
	}
	// Sweeps run alongside and must find nothing: every record's UpdatedAt
	// is at or after the cutoff.
	wg.Go(func() {
		for range 20 {
			if swept, err := b.Sweep(ctx, created, 100); err != nil || len(swept) != 0 {
				t.Errorf("Sweep = %d records, %v; want none", len(swept), err)
			}
		}
	})
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = openBolt(t, path)
	defer b.Close()
	for i := range uploads {
		id := fmt.Sprint("up-", i)
		rec, err := b.Get(ctx, id)
		if i%4 == 0 {
			if !errors.Is(err, state.ErrNotFound) {
				t.Errorf("Get(%s) of a deleted record = %+v, %v", id, rec, err)
			}
			continue
		}
		if err != nil || rec.Offset != 20 {
			t.Errorf("Get(%s) after reopen = %+v, %v; want offset 20", id, rec, err)
		}
	}
	swept, err := b.Sweep(ctx, created.Add(time.Hour), 1000)
	if err != nil || len(swept) != uploads-uploads/4 {
		t.Errorf("Sweep of everything = %d records, %v; want %d (the index matches the records)", len(swept), err, uploads-uploads/4)
	}
}

// TestBoltUpdateWithoutEventStaysDeferred: the lifecycle passes an events
// func to every offset update (upload.completed, when it applies); the
// updates for which it returns nothing keep the deferred commit.
func TestBoltUpdateWithoutEventStaysDeferred(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t, filepath.Join(t.TempDir(), "state.db"))
	defer b.Close()
	if err := b.Create(ctx, state.Record{ID: "up", Length: 1000, UpdatedAt: created}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	nothing := state.WithEventsFunc(func(before, after state.Record) ([]state.Event, error) { return nil, nil })
	if _, err := b.Update(ctx, "up", func(r *state.Record) error { r.Offset = 10; return nil }, nothing); err != nil {
		t.Fatalf("Update: %v", err)
	}
	// Deferred by offsetFlushDelay; read at once, the file is behind.
	if stored, err := b.Stored("up"); err != nil || stored.Offset != 0 {
		t.Errorf("an offset update without event was committed at once: the file holds %+v, %v", stored, err)
	}
}
