package state_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/state/statetest"
)

func TestMemory(t *testing.T) {
	statetest.Run(t, func(*testing.T) state.Store { return state.NewMemory() })
}

func TestBolt(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store { return openBolt(t, filepath.Join(t.TempDir(), "state.db")) })
}

// openBolt opens the file and fails the test on error; the caller closes.
func openBolt(t *testing.T, path string) *state.Bolt {
	t.Helper()
	b, err := state.OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return b
}

var created = time.Date(2025, time.June, 1, 12, 0, 0, 987654321, time.UTC)

func TestBoltReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	want := state.Record{
		ID: "reopen", VideoID: "v1", Endpoint: "https://uploader.example/files/x",
		Length: 1000, Offset: 400, OffsetUncertain: true, Metadata: "filename YS5tcDQ=",
		Owner: "alice", CreatedAt: created, UpdatedAt: created.Add(time.Minute),
	}
	b := openBolt(t, path)
	if err := b.Create(ctx, state.Record{ID: "old", UpdatedAt: created.Add(-time.Hour)}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := b.Create(ctx, want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}

	b = openBolt(t, path)
	defer b.Close()
	got, err := b.Get(ctx, "reopen")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("times after reopen = %v, %v; want %v, %v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
	// The times are checked; compare everything else with ==.
	got.CreatedAt, got.UpdatedAt = want.CreatedAt, want.UpdatedAt
	if got != want {
		t.Errorf("Get after reopen = %+v, want %+v", got, want)
	}
	// The expiry index survived too.
	swept, err := b.Sweep(ctx, created, 10)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(swept) != 1 || swept[0].ID != "old" {
		t.Errorf("Sweep after reopen = %+v, want the record \"old\"", swept)
	}
}

// TestBoltIntentsSurviveReopen: an intent is in the file once CreateIntent
// returns, with its video id and its index entry, which is what lets a
// restarted tusproxy report a creation its predecessor never finished.
func TestBoltIntentsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	b := openBolt(t, path)
	for _, id := range []string{"cut", "finished"} {
		if err := b.CreateIntent(ctx, state.Intent{ID: id, Length: 10, CreatedAt: created}); err != nil {
			t.Fatalf("CreateIntent: %v", err)
		}
	}
	if err := b.SetIntentVideo(ctx, "cut", "video-cut"); err != nil {
		t.Fatalf("SetIntentVideo: %v", err)
	}
	if err := b.Create(ctx, state.Record{ID: "finished", UpdatedAt: created}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = openBolt(t, path)
	defer b.Close()
	swept, err := b.SweepIntents(ctx, created.Add(time.Second), 10)
	if err != nil {
		t.Fatalf("SweepIntents: %v", err)
	}
	if len(swept) != 1 || swept[0].ID != "cut" || swept[0].VideoID != "video-cut" || !swept[0].CreatedAt.Equal(created) {
		t.Errorf("SweepIntents after reopen = %+v, want the intent \"cut\" with its video id", swept)
	}
}

func TestBoltFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	b := openBolt(t, path)
	defer b.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want 0600 (records hold secret endpoints)", perm)
	}
}

func TestBoltSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	first := openBolt(t, path)
	// bbolt's flock is per open file, so a second open in this process
	// conflicts just as a second process would. Without the lock timeout
	// this call would never return and the test binary would time out.
	second, err := state.OpenBolt(path)
	if err == nil {
		second.Close()
		t.Fatal("second OpenBolt on a held file succeeded")
	}
	if !errors.Is(err, state.ErrInUse) {
		t.Errorf("error = %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should say the file %s is in use by another process", err, path)
	}
	// Once the holder lets go, the file opens again.
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	openBolt(t, path).Close()
}

func TestBoltUnknownFormat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	openBolt(t, path).Close()

	// A record written by a newer tusproxy.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(state.UploadsBucket).Put([]byte("future"),
			[]byte(`{"format":2,"id":"future","endpoint":"https://secret.example/x"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b := openBolt(t, path)
	defer b.Close()
	_, err = b.Get(ctx, "future")
	if err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Errorf("Get of a format 2 record: error = %v, want one naming the format", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret.example") {
		t.Errorf("error %q leaks the endpoint", err)
	}
	if _, err := b.Update(ctx, "future", func(*state.Record) error { return nil }); err == nil {
		t.Error("Update of a format 2 record succeeded; it would have rewritten it as format 1")
	}
	// Delete still works, so an operator can get rid of it.
	if err := b.Delete(ctx, "future"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Get(ctx, "future"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}

// TestBoltReadsOlderRecords: a record written before ParentID, ClientIP, URL
// and Context existed (format 1 without them) is read with those fields
// empty, and updated without losing anything it had.
func TestBoltReadsOlderRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	openBolt(t, path).Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(state.UploadsBucket).Put([]byte("old"), []byte(`{"format":1,"id":"old","video_id":"v-old",`+
			`"endpoint":"https://uploader.example/x","length":100,"offset":10,"offset_uncertain":false,"metadata":"",`+
			`"owner":"alice","created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05Z"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b := openBolt(t, path)
	defer b.Close()
	rec, err := b.Get(ctx, "old")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if rec.VideoID != "v-old" || rec.Owner != "alice" || rec.Offset != 10 ||
		rec.ParentID != "" || rec.ClientIP != "" || rec.URL != "" || rec.Context != "" {
		t.Errorf("Get = video %q owner %q offset %d parent %q ip %q url %q context %q",
			rec.VideoID, rec.Owner, rec.Offset, rec.ParentID, rec.ClientIP, rec.URL, rec.Context)
	}
	rec, err = b.Update(ctx, "old", func(r *state.Record) error { r.Offset = 20; return nil })
	if err != nil || rec.Offset != 20 || rec.Owner != "alice" {
		t.Errorf("Update = offset %d owner %q, %v", rec.Offset, rec.Owner, err)
	}
}

// killChildEnv, when set, makes the test binary act as the child of
// TestBoltSurvivesKill: it writes to the bbolt file named by the variable
// until it is killed.
const killChildEnv = "TUSPROXY_STATE_KILL_CHILD"

// TestBoltSurvivesKill kills a process in the middle of writing. Changes
// that wait for their commit (here: Metadata) must all be there afterwards,
// each with the offset the record had when it was made; offset-only changes
// made after the last of them may be lost (see Bolt), but never invented.
func TestBoltSurvivesKill(t *testing.T) {
	if path := os.Getenv(killChildEnv); path != "" {
		runKillChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltSurvivesKill$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints each durable change after Update has returned, that
	// is, after the commit. Kill it while it is still writing.
	var confirmed int64 = -1
	lines := bufio.NewScanner(stdout)
	for confirmed < 20 && lines.Scan() {
		n, err := strconv.ParseInt(strings.TrimPrefix(lines.Text(), "durable "), 10, 64)
		if err != nil {
			t.Fatalf("child said %q", lines.Text())
		}
		confirmed = n
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed" is the expected outcome
	if confirmed < 20 {
		t.Fatalf("child stopped at %d before being killed: %v", confirmed, lines.Err())
	}

	b := openBolt(t, path) // the kernel released the dead child's lock
	defer b.Close()
	rec, err := b.Get(context.Background(), "survivor")
	if err != nil {
		t.Fatalf("Get after kill -9: %v", err)
	}
	durable, err := strconv.ParseInt(rec.Metadata, 10, 64)
	if err != nil || durable < confirmed {
		t.Fatalf("Metadata after kill -9 = %q, but the child had confirmed %d", rec.Metadata, confirmed)
	}
	// The child raises the offset, then every killChildEvery offsets
	// records it in Metadata and waits for that commit.
	if rec.Offset < durable || rec.Offset >= durable+killChildEvery {
		t.Errorf("Offset after kill -9 = %d, want from %d (the last durable change) to %d", rec.Offset,
			durable, durable+killChildEvery-1)
	}
	if rec.VideoID != "v-survivor" || rec.Length != 1<<30 {
		t.Errorf("record after kill -9 = %+v", rec)
	}
}

// killChildEvery is how many offset-only updates the kill child makes per
// durable one.
const killChildEvery = 4

// runKillChild creates a record and raises its offset forever with
// offset-only updates, and every killChildEvery of them writes the offset
// into Metadata too, an update that waits for its commit; it reports each
// of these on stdout, until the parent kills the process.
func runKillChild(path string) {
	ctx := context.Background()
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		os.Exit(2)
	}
	b, err := state.OpenBolt(path)
	if err != nil {
		fail(err)
	}
	if err := b.Create(ctx, state.Record{ID: "survivor", VideoID: "v-survivor", Length: 1 << 30, Metadata: "0", UpdatedAt: created}); err != nil {
		fail(err)
	}
	for {
		rec, err := b.Update(ctx, "survivor", func(rec *state.Record) error {
			rec.Offset++
			return nil
		})
		if err != nil {
			fail(err)
		}
		if rec.Offset%killChildEvery != 0 {
			continue
		}
		rec, err = b.Update(ctx, "survivor", func(rec *state.Record) error {
			rec.Metadata = strconv.FormatInt(rec.Offset, 10)
			return nil
		})
		if err != nil {
			fail(err)
		}
		fmt.Printf("durable %s\n", rec.Metadata)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		spec    string
		wantErr string // "" for success
	}{
		{spec: "memory"},
		{spec: "bolt:" + filepath.Join(dir, "ok.db")},
		{spec: "", wantErr: "is not a supported store"},
		{spec: "memory:x", wantErr: "is not a supported store"},
		{spec: "bolt:", wantErr: "needs a file path"},
		{spec: "bolt:" + filepath.Join(dir, "missing-dir", "x.db"), wantErr: "no such file"},
		{spec: "redis://user:hunter2@localhost:6379/0", wantErr: "opened with OpenRedis"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := state.Open(tt.spec)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				if err := s.Ping(context.Background()); err != nil {
					t.Errorf("Ping: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks a password from the spec", err)
			}
			// A nil *Bolt wrapped in the interface would not compare equal
			// to nil and would panic on first use.
			if s != nil {
				t.Errorf("Open returned a non-nil Store %#v with an error", s)
			}
		})
	}
}

// TestBoltEventsSurviveReopen: the outbox is in the file: pending events,
// their order, attempts and schedule come back after a restart, acked ones
// do not, and leases end with the process that held them.
func TestBoltEventsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	b := openBolt(t, path)
	ev := func(id, typ string) state.Event {
		return state.Event{ID: id, UploadID: "up", Type: typ, Body: []byte(`{"id":"` + id + `"}`), CreatedAt: created}
	}
	if err := b.Create(ctx, state.Record{ID: "up", Length: 10, UpdatedAt: created}, state.WithEvents(ev("e1", "upload.created"))); err != nil {
		t.Fatal(err)
	}
	// An offset-only update is deferred, but not one that carries an event.
	if _, err := b.Update(ctx, "up", func(r *state.Record) error { r.Offset = 10; return nil }, state.WithEvents(ev("e2", "upload.completed"))); err != nil {
		t.Fatal(err)
	}
	if stored, err := b.Stored("up"); err != nil || stored.Offset != 10 {
		t.Errorf("the update that carried an event is not in the file: %+v, %v", stored, err)
	}
	if err := b.Create(ctx, state.Record{ID: "gone", UpdatedAt: created}, state.WithEvents(state.Event{ID: "acked", CreatedAt: created})); err != nil {
		t.Fatal(err)
	}
	if err := b.AckEvent(ctx, "acked"); err != nil {
		t.Fatal(err)
	}
	got, err := b.ClaimEvents(ctx, created, time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].ID != "e1" {
		t.Fatalf("ClaimEvents = %+v, %v", got, err)
	}
	next := created.Add(time.Minute)
	if err := b.RetryEvent(ctx, "e1", next); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.ClaimEvents(ctx, next, time.Hour, 10); len(got) != 1 {
		t.Fatalf("ClaimEvents after the retry = %+v", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openBolt(t, path)
	defer b.Close()
	if n, oldest, err := b.OutboxStats(ctx); err != nil || n != 2 || !oldest.Equal(created) {
		t.Errorf("OutboxStats after reopen = %d, %v, %v; want 2, %v", n, oldest, err, created)
	}
	// The lease of the closed store is gone: e1 is claimable at once.
	got, err = b.ClaimEvents(ctx, next, time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].ID != "e1" || got[0].Attempts != 1 || !got[0].NextAt.Equal(next) ||
		string(got[0].Body) != `{"id":"e1"}` {
		t.Fatalf("ClaimEvents after reopen = %+v, %v; want e1 with its attempt and schedule", got, err)
	}
	if err := b.AckEvent(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ClaimEvents(ctx, next, time.Hour, 10); err != nil || len(got) != 1 || got[0].ID != "e2" {
		t.Errorf("ClaimEvents after the ack = %+v, %v; want e2", got, err)
	}
}
