package state_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kinescope-tools/tusproxy/internal/redistest"
	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/state"
	"github.com/kinescope-tools/tusproxy/proxy/state/statetest"
)

func TestRedis(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		return openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: redistest.Prefix(t)})
	})
}

func TestRedisWithKeyTTL(t *testing.T) {
	// The key TTL changes every write; the contract must hold with it too.
	statetest.Run(t, func(t *testing.T) state.Store {
		return openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: redistest.Prefix(t), TTL: time.Hour})
	})
}

// openRedis opens a store and fails the test on error; the caller closes.
func openRedis(t *testing.T, rawURL string, opts state.RedisOptions) *state.Redis {
	t.Helper()
	s, err := state.OpenRedis(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	return s
}

// openRedisPair opens two stores on one prefix, as two replicas would, and
// closes them when the test ends.
func openRedisPair(t *testing.T) (a, b *state.Redis, prefix string) {
	t.Helper()
	prefix = redistest.Prefix(t)
	a = openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	t.Cleanup(func() { a.Close() })
	b = openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	t.Cleanup(func() { b.Close() })
	return a, b, prefix
}

var redisBase = time.Date(2025, time.June, 1, 12, 0, 0, 987654321, time.FixedZone("", -7*60*60))

func TestRedisPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	url := redistest.URL(t)
	a := openRedis(t, url, state.RedisOptions{Prefix: redistest.Prefix(t)})
	defer a.Close()
	b := openRedis(t, url, state.RedisOptions{Prefix: redistest.Prefix(t)})
	defer b.Close()

	// The same id lives independently under each prefix.
	for i, s := range []*state.Redis{a, b} {
		rec := state.Record{ID: "same", VideoID: fmt.Sprint("video-", i), UpdatedAt: redisBase}
		if err := s.Create(ctx, rec); err != nil {
			t.Fatalf("Create in store %d: %v", i, err)
		}
	}
	for i, s := range []*state.Redis{a, b} {
		got, err := s.Get(ctx, "same")
		if err != nil {
			t.Fatalf("Get from store %d: %v", i, err)
		}
		if want := fmt.Sprint("video-", i); got.VideoID != want {
			t.Errorf("store %d has VideoID %q, want %q", i, got.VideoID, want)
		}
	}
	// Sweeping one prefix leaves the other alone.
	swept, err := a.Sweep(ctx, redisBase.Add(time.Hour), 10)
	if err != nil || len(swept) != 1 {
		t.Fatalf("Sweep(a) = %d records, %v; want 1", len(swept), err)
	}
	if _, err := b.Get(ctx, "same"); err != nil {
		t.Errorf("Get from b after sweeping a: %v", err)
	}
}

func TestRedisDefaultPrefix(t *testing.T) {
	// Only the key names are checked here, on a record with a random id:
	// the default prefix is shared with whatever else uses this Redis.
	ctx := context.Background()
	s := openRedis(t, redistest.URL(t), state.RedisOptions{})
	defer s.Close()
	id := strings.TrimSuffix(strings.TrimPrefix(redistest.Prefix(t), "tusproxy-test:"), ":")
	if err := s.Create(ctx, state.Record{ID: id}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer s.Delete(ctx, id)
	n, err := s.Client().Exists(ctx, state.DefaultRedisPrefix+"upload:"+id).Result()
	if err != nil || n != 1 {
		t.Errorf("EXISTS %supload:%s = %d, %v; want 1", state.DefaultRedisPrefix, id, n, err)
	}
}

func TestRedisKeyTTL(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Hour
	prefix := redistest.Prefix(t)
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix, TTL: ttl})
	defer s.Close()
	client := redistest.Client(t)
	key := prefix + "upload:ttl"

	pttl := func() time.Duration {
		t.Helper()
		d, err := client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		return d
	}
	if err := s.Create(ctx, state.Record{ID: "ttl", UpdatedAt: redisBase}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if d := pttl(); d <= ttl/2 || d > ttl {
		t.Errorf("TTL after Create = %v, want about %v", d, ttl)
	}
	// Shorten it behind the store's back; an Update must restore it.
	if err := client.PExpire(ctx, key, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "ttl", func(rec *state.Record) error { rec.Offset = 1; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if d := pttl(); d <= ttl/2 || d > ttl {
		t.Errorf("TTL after Update = %v, want it refreshed to about %v", d, ttl)
	}

	// Without a TTL, keys do not expire (PTTL -1).
	plain := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix + "plain:"})
	defer plain.Close()
	if err := plain.Create(ctx, state.Record{ID: "ttl"}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if d, err := client.PTTL(ctx, prefix+"plain:upload:ttl").Result(); err != nil || d != -1 {
		t.Errorf("PTTL without a TTL = %v, %v; want -1 (no expiry)", d, err)
	}
}

func TestRedisBadTTL(t *testing.T) {
	for _, ttl := range []time.Duration{-time.Second, time.Microsecond} {
		s, err := state.OpenRedis(context.Background(), redistest.DefaultURL, state.RedisOptions{TTL: ttl})
		if err == nil {
			s.Close()
			t.Errorf("OpenRedis with TTL %v succeeded, want an error", ttl)
		}
	}
}

func TestRedisConcurrentUpdatesFromTwoReplicas(t *testing.T) {
	ctx := context.Background()
	a, b, _ := openRedisPair(t)
	if err := a.Create(ctx, state.Record{ID: "counter", UpdatedAt: redisBase}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	const perReplica = 25
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range []*state.Redis{a, b} {
		for range perReplica {
			wg.Go(func() {
				<-start
				_, err := s.Update(ctx, "counter", func(rec *state.Record) error {
					runtime.Gosched()
					rec.Offset++
					rec.UpdatedAt = rec.UpdatedAt.Add(time.Second)
					return nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	for name, s := range map[string]*state.Redis{"a": a, "b": b} {
		got, err := s.Get(ctx, "counter")
		if err != nil {
			t.Fatalf("Get from %s: %v", name, err)
		}
		if got.Offset != 2*perReplica {
			t.Errorf("Offset seen by %s = %d after %d increments (lost updates)", name, got.Offset, 2*perReplica)
		}
	}
	// The index moved with every update: one entry, at the final time.
	swept, err := b.Sweep(ctx, redisBase.Add(2*perReplica*time.Second), 10)
	if err != nil || len(swept) != 0 {
		t.Errorf("Sweep before the final UpdatedAt = %d records, %v; want none", len(swept), err)
	}
	swept, err = b.Sweep(ctx, redisBase.Add(2*perReplica*time.Second+1), 10)
	if err != nil || len(swept) != 1 {
		t.Errorf("Sweep after the final UpdatedAt = %d records, %v; want the counter", len(swept), err)
	}
}

// TestRedisSweepRacesUpdate runs two replicas' sweeps against a third's
// updates of the same old records. Every record must end up exactly one
// way: swept once, with the data it had before any update, and its Update
// told ErrNotFound; or updated, still stored, and never returned by a sweep.
func TestRedisSweepRacesUpdate(t *testing.T) {
	ctx := context.Background()
	a, b, prefix := openRedisPair(t)
	c := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	defer c.Close()

	const records = 60
	cutoff := redisBase
	for i := range records {
		rec := state.Record{ID: fmt.Sprint("r", i), Offset: 1, UpdatedAt: cutoff.Add(-time.Duration(records-i) * time.Minute)}
		if err := a.Create(ctx, rec); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	var (
		mu      sync.Mutex
		swept   = map[string]int{}
		updated = map[string]bool{}
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for _, s := range []*state.Redis{a, b} {
		wg.Go(func() {
			<-start
			for {
				recs, err := s.Sweep(ctx, cutoff, 3)
				if err != nil {
					t.Errorf("Sweep: %v", err)
					return
				}
				mu.Lock()
				for _, rec := range recs {
					swept[rec.ID]++
					if rec.Offset != 1 || !rec.UpdatedAt.Before(cutoff) {
						t.Errorf("swept %s with Offset %d, UpdatedAt %v: data from after an update", rec.ID, rec.Offset, rec.UpdatedAt)
					}
				}
				mu.Unlock()
				if len(recs) == 0 {
					return
				}
			}
		})
	}
	wg.Go(func() {
		<-start
		for i := records - 1; i >= 0; i-- { // newest first: they are swept last
			id := fmt.Sprint("r", i)
			_, err := c.Update(ctx, id, func(rec *state.Record) error {
				rec.Offset = 2
				rec.UpdatedAt = cutoff.Add(time.Minute)
				return nil
			})
			switch {
			case err == nil:
				mu.Lock()
				updated[id] = true
				mu.Unlock()
			case !errors.Is(err, state.ErrNotFound):
				t.Errorf("Update(%s): %v", id, err)
			}
		}
	})
	close(start)
	wg.Wait()

	for i := range records {
		id := fmt.Sprint("r", i)
		rec, err := a.Get(ctx, id)
		switch {
		case updated[id] && swept[id] > 0:
			t.Errorf("%s was both updated and swept", id)
		case updated[id]:
			if err != nil || rec.Offset != 2 {
				t.Errorf("updated %s: Get = Offset %d, %v; want the update stored", id, rec.Offset, err)
			}
		case swept[id] != 1:
			t.Errorf("%s swept %d times and not updated, want exactly one of the two", id, swept[id])
		case !errors.Is(err, state.ErrNotFound):
			t.Errorf("swept %s: Get error = %v, want ErrNotFound", id, err)
		}
	}
}

// indexMember is the documented index member of a record (see state.Redis):
// written out here so the tests pin the layout, which operators rely on.
func indexMember(updatedAt time.Time, id string) string {
	var raw [12]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(updatedAt.Unix())^(1<<63))
	binary.BigEndian.PutUint32(raw[8:], uint32(updatedAt.Nanosecond()))
	return hex.EncodeToString(raw[:]) + id
}

func TestRedisKeyLayout(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	defer s.Close()
	client := redistest.Client(t)
	rec := state.Record{ID: "layout", VideoID: "v", Endpoint: "https://uploader.example/x", UpdatedAt: redisBase}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	fields, err := client.HGetAll(ctx, prefix+"upload:layout").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fields["r"], `{"format":1,"id":"layout",`) || fields["m"] != indexMember(redisBase, "layout") || fields["v"] == "" {
		t.Errorf("record hash = %q, want r (JSON, format 1), m (index member) and v (version)", fields)
	}
	members, err := client.ZRangeWithScores(ctx, prefix+"uploads_by_updated_at", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].Member != indexMember(redisBase, "layout") || members[0].Score != 0 {
		t.Errorf("index = %v, want one member %s with score 0", members, indexMember(redisBase, "layout"))
	}
}

// TestRedisIntentKeyLayout pins where intents live (see state.Redis), and
// that the record's Create removes both the intent and its index entry, in
// its one script, and that intents get no key TTL (they must outlive any
// downtime, to be reported).
func TestRedisIntentKeyLayout(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix, TTL: time.Hour})
	defer s.Close()
	client := redistest.Client(t)
	if err := s.CreateIntent(ctx, state.Intent{ID: "layout", Length: 5, CreatedAt: redisBase}); err != nil {
		t.Fatalf("CreateIntent: %v", err)
	}
	if err := s.SetIntentVideo(ctx, "layout", "video-1"); err != nil {
		t.Fatalf("SetIntentVideo: %v", err)
	}
	fields, err := client.HGetAll(ctx, prefix+"intent:layout").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fields["r"], `{"format":1,"id":"layout",`) || fields["m"] != indexMember(redisBase, "layout") ||
		fields["v"] == "" || fields["video"] != "video-1" {
		t.Errorf("intent hash = %q, want r (JSON, format 1), m (index member), v (version) and video", fields)
	}
	if ttl := client.PTTL(ctx, prefix+"intent:layout").Val(); ttl != -1 {
		t.Errorf("intent key TTL = %v, want none", ttl)
	}
	members := client.ZRange(ctx, prefix+"intents_by_created_at", 0, -1).Val()
	if len(members) != 1 || members[0] != indexMember(redisBase, "layout") {
		t.Errorf("intents index = %v, want [%s]", members, indexMember(redisBase, "layout"))
	}
	if err := s.Create(ctx, state.Record{ID: "layout", UpdatedAt: redisBase}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if n := client.Exists(ctx, prefix+"intent:layout").Val(); n != 0 {
		t.Error("the intent key outlived its record's Create")
	}
	if n := client.ZCard(ctx, prefix+"intents_by_created_at").Val(); n != 0 {
		t.Errorf("the intents index has %d entries after Create, want 0", n)
	}
}

func TestRedisSweepDropsOrphanedIndexEntries(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	defer s.Close()
	client := redistest.Client(t)
	indexKey := prefix + "uploads_by_updated_at"

	// "expired" loses its key as a key TTL would remove it; "reborn" too,
	// and is then created again with a later time.
	for _, id := range []string{"expired", "reborn", "old"} {
		if err := s.Create(ctx, state.Record{ID: id, UpdatedAt: redisBase.Add(-time.Hour)}); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	if err := client.Del(ctx, prefix+"upload:expired", prefix+"upload:reborn").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, state.Record{ID: "reborn", Offset: 5, UpdatedAt: redisBase.Add(time.Hour)}); err != nil {
		t.Fatalf("Create(reborn) again: %v", err)
	}

	// Orphans do not count toward the limit: limit 1 still finds "old".
	swept, err := s.Sweep(ctx, redisBase, 1)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if len(swept) != 1 || swept[0].ID != "old" {
		t.Errorf("Sweep = %+v, want only \"old\"", swept)
	}
	// The orphan of "reborn" sorts after "old"; the next sweep drops it
	// and keeps the record that took its id.
	if swept, err := s.Sweep(ctx, redisBase, 1); err != nil || len(swept) != 0 {
		t.Errorf("second Sweep = %+v, %v; want nothing", swept, err)
	}
	got, err := s.Get(ctx, "reborn")
	if err != nil || got.Offset != 5 {
		t.Errorf("Get(reborn) = Offset %d, %v; want the new record kept", got.Offset, err)
	}
	members, err := client.ZRange(ctx, indexKey, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := indexMember(redisBase.Add(time.Hour), "reborn"); len(members) != 1 || members[0] != want {
		t.Errorf("index after Sweep = %q, want only [%s]", members, want)
	}
}

func TestRedisSweepStopsAtUnknownFormat(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: prefix})
	defer s.Close()
	client := redistest.Client(t)

	if err := s.Create(ctx, state.Record{ID: "older", UpdatedAt: redisBase.Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A record written by a newer tusproxy sharing the Redis.
	member := indexMember(redisBase.Add(-time.Hour), "future")
	if err := client.HSet(ctx, prefix+"upload:future", "r", `{"format":2,"id":"future"}`, "m", member, "v", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ZAdd(ctx, prefix+"uploads_by_updated_at", redis.Z{Member: member}).Err(); err != nil {
		t.Fatal(err)
	}

	// The readable older record is swept; the next sweep reports the
	// foreign one and leaves it in place.
	swept, err := s.Sweep(ctx, redisBase, 10)
	if err != nil || len(swept) != 1 || swept[0].ID != "older" {
		t.Fatalf("first Sweep = %+v, %v; want [older]", swept, err)
	}
	swept, err = s.Sweep(ctx, redisBase, 10)
	if err == nil || !strings.Contains(err.Error(), "future") {
		t.Errorf("second Sweep = %+v, %v; want an error naming the record", swept, err)
	}
	if n, _ := client.Exists(ctx, prefix+"upload:future").Result(); n != 1 {
		t.Error("Sweep deleted a record it cannot read")
	}
	if _, err := s.Get(ctx, "future"); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Errorf("Get(future) error = %v, want one about its format", err)
	}
}

func TestRedisClosed(t *testing.T) {
	s := openRedis(t, redistest.URL(t), state.RedisOptions{Prefix: redistest.Prefix(t)})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestRedisErrorsHideTheURL(t *testing.T) {
	const password = "s3cr3t-Pa55"
	closed := testkit.FreeAddr(t)
	tests := []struct {
		name, url string
		want      string // in the error
	}{
		{"unreachable", "redis://alice:" + password + "@" + closed + "/0", "PING to Redis at"},
		{"password only", "redis://:" + password + "@" + closed + "/0", closed},
		{"bad port", "redis://alice:" + password + "@127.0.0.1:port/0", "cannot be parsed"},
		{"bad escape", "redis://alice:" + password + "%zz@127.0.0.1:6379/0", "cannot be parsed"},
		{"opaque", "redis:alice:" + password + "@127.0.0.1:6379", "cannot be parsed"},
		{"bad scheme", "http://alice:" + password + "@127.0.0.1:6379/0", `"http"`},
		{"bad db", "redis://alice:" + password + "@127.0.0.1:6379/zero", "invalid database number"},
		{"bad option", "redis://alice:" + password + "@127.0.0.1:6379/0?password=" + password, "unexpected option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := state.OpenRedis(context.Background(), tt.url, state.RedisOptions{})
			if err == nil {
				s.Close()
				t.Fatal("OpenRedis succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, password) || strings.Contains(msg, "alice") {
				t.Errorf("error %q reveals the credentials", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
		})
	}

	t.Run("TLS to a plain server", func(t *testing.T) {
		// rediss:// must mean TLS: the handshake with the plain test
		// Redis fails, with an error and without the password.
		u, err := url.Parse(redistest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Scheme = "rediss"
		u.User = url.UserPassword("alice", password)
		s, err := state.OpenRedis(context.Background(), u.String(), state.RedisOptions{})
		if err == nil {
			s.Close()
			t.Fatal("OpenRedis with rediss:// to a plain Redis succeeded")
		}
		if msg := err.Error(); strings.Contains(msg, password) || !strings.Contains(msg, "PING to Redis at") {
			t.Errorf("error %q: want a PING failure without the password", msg)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		u, err := url.Parse(redistest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("tusproxy-no-such-user", password)
		s, err := state.OpenRedis(context.Background(), u.String(), state.RedisOptions{})
		if err == nil {
			s.Close()
			t.Skip("the test Redis accepted a made-up user")
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q reveals the password", err)
		}
	})
}

// TestRedisSilentServer checks that a Redis that stops answering (a hung
// server, a partition) turns into errors, not calls that wait for ever.
func TestRedisSilentServer(t *testing.T) {
	relay := redistest.NewRelay(t)
	s := openRedis(t, relay.URL(), state.RedisOptions{Prefix: redistest.Prefix(t)})
	defer s.Close()
	ctx := context.Background()
	if err := s.Create(ctx, state.Record{ID: "x"}); err != nil {
		t.Fatalf("Create through the relay: %v", err)
	}
	relay.Mute()
	// The calls run at once: each waits out the client timeouts.
	calls := map[string]func() error{
		"Get":    func() error { _, err := s.Get(ctx, "x"); return err },
		"Update": func() error { _, err := s.Update(ctx, "x", func(*state.Record) error { return nil }); return err },
		"Ping":   func() error { return s.Ping(ctx) },
		"OpenRedis": func() error {
			s, err := state.OpenRedis(ctx, relay.URL(), state.RedisOptions{})
			if err == nil {
				s.Close()
				return nil
			}
			if !strings.Contains(err.Error(), "PING to Redis at") {
				t.Errorf("OpenRedis on a silent Redis = %v, want a PING error", err)
			}
			return err
		},
	}
	results := make(map[string]chan error, len(calls))
	for name, call := range calls {
		done := make(chan error, 1)
		results[name] = done
		go func() { done <- call() }()
	}
	// A liveness bound, far above the client timeouts (about 5 s).
	deadline := time.After(time.Minute)
	for name, done := range results {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s on a silent Redis = nil, want an error", name)
			}
		case <-deadline:
			t.Fatalf("%s on a silent Redis did not return", name)
		}
	}
}

// TestRedisClaimersOnTwoReplicas: two stores on one prefix, as two
// replicas, claiming at once from a backlog: each event goes to one of them.
func TestRedisClaimersOnTwoReplicas(t *testing.T) {
	ctx := context.Background()
	a, b, _ := openRedisPair(t)
	const uploads = 200
	for i := range uploads {
		id := fmt.Sprint("up-", i)
		ev := state.Event{ID: "ev-" + id, Type: "upload.created", Body: []byte("{}"), CreatedAt: redisBase.Add(time.Duration(i) * time.Millisecond)}
		if err := a.Create(ctx, state.Record{ID: id, UpdatedAt: redisBase}, state.WithEvents(ev)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range []*state.Redis{a, b, a, b} {
		wg.Go(func() {
			<-start
			for {
				got, err := s.ClaimEvents(ctx, redisBase.Add(time.Hour), time.Hour, 7)
				if err != nil {
					t.Errorf("ClaimEvents: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, ev := range got {
					seen[ev.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(seen) != uploads {
		t.Errorf("%d events claimed, want %d", len(seen), uploads)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times under one lease", id, n)
		}
	}
	// Claimed is not delivered: all still pending until acked.
	if n, _, err := b.OutboxStats(ctx); err != nil || n != uploads {
		t.Errorf("OutboxStats = %d, %v; want %d", n, err, uploads)
	}
}

// BenchmarkRedisClaimBacklog claims and acks from a backlog of pending
// events: a claim's cost follows its limit, not the backlog.
func BenchmarkRedisClaimBacklog(b *testing.B) {
	ctx := context.Background()
	s, err := state.OpenRedis(ctx, redistest.URL(b), state.RedisOptions{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Skip(err)
	}
	defer s.Close()
	const backlog = 5000
	for i := range backlog {
		id := fmt.Sprint("up-", i)
		ev := state.Event{ID: "ev-" + id, Body: []byte(`{"type":"upload.created"}`), CreatedAt: redisBase}
		if err := s.Create(ctx, state.Record{ID: id, UpdatedAt: redisBase}, state.WithEvents(ev)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		got, err := s.ClaimEvents(ctx, redisBase.Add(time.Hour), time.Minute, 50)
		if err != nil || len(got) == 0 {
			b.Fatalf("ClaimEvents = %d, %v", len(got), err)
		}
		for _, ev := range got {
			// Retried, not acked, so the backlog stays the same size.
			if err := s.RetryEvent(ctx, ev.ID, redisBase); err != nil {
				b.Fatal(err)
			}
		}
	}
}
