package state

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Store = (*Redis)(nil)

// DefaultRedisPrefix starts every key when RedisOptions.Prefix is empty.
const DefaultRedisPrefix = "tusproxy:"

// Client defaults applied when the Redis URL does not set them. go-redis
// defaults to a 5 s dial timeout tried 5 times, then 3 command retries: a
// dead Redis would hold every request for the better part of a minute.
// These keep a failing operation under about 5 s (two attempts of at most
// 2 s each) while a healthy one, a few hundred microseconds on a LAN, is
// never near them.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = 2 * time.Second
	redisMaxRetries  = 1
)

// updateAttempts bounds the optimistic retries of one Update. Every failed
// attempt means another write to the record succeeded, so the store as a
// whole progresses; the bound only turns a bug into an error instead of an
// endless loop.
const updateAttempts = 1000

// sweepVisitFactor bounds the index entries one Sweep visits to this many
// times its limit. Entries whose record is gone (it outlived the key TTL)
// are dropped without counting toward the limit; without a bound, a large
// backlog of them would make one script block Redis for long.
const sweepVisitFactor = 10

// RedisOptions configures OpenRedis.
type RedisOptions struct {
	// Prefix starts every key the store writes, so several deployments (or
	// test runs) can share one Redis database. Default: DefaultRedisPrefix.
	Prefix string
	// TTL is a Redis expiry set on every record key and refreshed by every
	// Create and Update: a safety net so records that nothing sweeps (the
	// sweeper was off, or the deployment was removed) cannot pile up for
	// ever. 0 (the default) sets no expiry.
	//
	// It must be well beyond the proxy's upload TTL, at least twice it:
	// a record that Redis expires was never returned by Sweep, so its expiry
	// is never logged, and an upload idle for less than the upload TTL must
	// never lose its record. With uploads that never expire, leave it 0.
	TTL time.Duration
}

// Redis is a Store kept in Redis (or a Redis-compatible server), shared by
// several tusproxy replicas. It needs a single Redis (standalone, or a
// Sentinel-managed primary): its scripts touch keys they compute, which Redis
// Cluster does not allow.
//
// Key layout, under the prefix P:
//
//	P upload:<id>             hash: r = the record as JSON (the bbolt format),
//	                                m = its index member, v = write version
//	P uploads_by_updated_at   sorted set, every score 0, ordered by member:
//	                          24 hex digits of UpdatedAt, then the id
//	P intent:<id>             hash: r = the Intent as JSON, m = its index
//	                                member, v = write version, video = the
//	                                Kinescope video id once known
//	P intents_by_created_at   sorted set like the uploads', by CreatedAt
//	P event:<id>, P events:<upload id>, P events_ready,
//	P events_by_created_at    the outbox (see redis_outbox.go)
//
// Intent keys get no key TTL: an intent is there to be reported, and the
// sweeper of every replica removes it once it has been.
//
// Every write is one Lua script, so a record and its index entry change
// together. Update is optimistic: it reads the record, runs fn in Go and
// writes back only if the version v is still the one it read, retrying
// otherwise (fn may then run more than once, as the Store contract allows).
// Each write stores a new random version, which also makes a script that
// go-redis retries after a lost reply recognise its own earlier success.
//
// Durability is Redis's: a write is acknowledged once in Redis's memory, and
// survives a Redis restart or failover only as its persistence (AOF) and
// replication settings allow. Redis must never evict these keys: run it with
// maxmemory-policy noeviction (a volatile-* policy would evict records that
// have a key TTL). Tested with Redis 7.
type Redis struct {
	client *redis.Client
	ttlMS  string // TTL in milliseconds, as the scripts take it; "0" for none
	prefix string // P: the outbox scripts compute their keys from it

	recordPrefix string // P + "upload:"
	indexKey     string
	intentPrefix string // P + "intent:"
	intentIndex  string

	closed atomic.Bool
}

// OpenRedis connects to the Redis at rawURL, redis://[user:password@]host:port/db
// or rediss:// for TLS (query parameters as go-redis's ParseURL takes them,
// such as dial_timeout or read_timeout), and checks that it answers PING
// within ctx. The URL may hold a password: no error ever includes it or the
// URL.
func OpenRedis(ctx context.Context, rawURL string, opts RedisOptions) (*Redis, error) {
	if opts.TTL < 0 {
		return nil, fmt.Errorf("state: Redis key TTL %v is negative (0 means no expiry)", opts.TTL)
	}
	if opts.TTL > 0 && opts.TTL < time.Millisecond {
		return nil, fmt.Errorf("state: Redis key TTL %v is below a millisecond", opts.TTL)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	clientOpts, err := redisClientOptions(rawURL)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(clientOpts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close() // the PING error is the one worth reporting
		// The address is not a secret and tells the operator where we
		// looked; the URL as a whole may carry a password.
		return nil, fmt.Errorf("state: PING to Redis at %s failed: %w", clientOpts.Addr, err)
	}
	return &Redis{
		client:       client,
		ttlMS:        strconv.FormatInt(opts.TTL.Milliseconds(), 10),
		prefix:       opts.Prefix,
		recordPrefix: opts.Prefix + "upload:",
		indexKey:     opts.Prefix + "uploads_by_updated_at",
		intentPrefix: opts.Prefix + "intent:",
		intentIndex:  opts.Prefix + "intents_by_created_at",
	}, nil
}

// redisClientOptions turns the URL into go-redis options with the timeouts
// above as defaults. The credentials are taken out before go-redis parses
// the rest, so none of its errors can echo them.
func redisClientOptions(rawURL string) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		// url.Parse errors quote the whole URL, password included.
		return nil, errors.New("state: the Redis URL cannot be parsed (not shown, as it may hold a password); " +
			"want redis://[user:password@]host:port/db or rediss://... for TLS")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		// A parsed scheme is letters, digits and "+-." only: safe to show.
		return nil, fmt.Errorf("state: Redis URL scheme %q: want redis:// or rediss:// (TLS)", u.Scheme)
	}
	user := u.User
	u.User = nil
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("state: invalid Redis URL: %w", err)
	}
	if user != nil {
		opts.Username = user.Username()
		opts.Password, _ = user.Password()
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisIOTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = redisMaxRetries
	}
	// One dial per attempt: MaxRetries already retries, and go-redis's
	// default of 5 dials per attempt multiplies the dial timeout.
	opts.DialerRetries = 1
	// Request contexts bound Redis calls too, not only the timeouts above.
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// Client returns the store's Redis client, so a distributed locker can share
// its connection pool and settings. It stays owned by the store: Close
// closes it, so close the locker first.
func (r *Redis) Client() *redis.Client {
	return r.client
}

// Record-key field names.
const (
	fieldRecord  = "r"
	fieldMember  = "m"
	fieldVersion = "v"
)

// createScript stores a record unless its id is taken, and removes the
// intent with the same id, and appends the events it carries. It returns 1
// when stored (or already stored by this very call, retried after a lost
// reply: the version matches), 0 when the id is taken, 3 when an event id
// is.
//
// KEYS: record key, index, intent key, intents' index. ARGV: JSON, index
// member, version, TTL in ms, then the events (eventArgs).
var createScript = redis.NewScript(outboxLua + `
local version = redis.call('HGET', KEYS[1], 'v')
if version == ARGV[3] then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if not eventsFree(ARGV[5], 6) then return 3 end
appendEvents(ARGV[5], 6)
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'm', ARGV[2], 'v', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
local intent = redis.call('HGET', KEYS[3], 'm')
if intent then redis.call('ZREM', KEYS[4], intent) end
redis.call('DEL', KEYS[3])
return 1
`)

// createIntentScript stores an intent unless its id is taken: 1 when stored
// (or stored by this very call before a lost reply), 0 when taken.
//
// KEYS: intent key, intents' index. ARGV: JSON, index member, version.
var createIntentScript = redis.NewScript(`
local version = redis.call('HGET', KEYS[1], 'v')
if version == ARGV[3] then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'm', ARGV[2], 'v', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
`)

// setIntentVideoScript sets the video id of an existing intent: 1 when
// set, 0 when there is no intent (it is never created here).
//
// KEYS: intent key. ARGV: video id.
var setIntentVideoScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'video', ARGV[1])
return 1
`)

// sweepIntentsScript deletes and returns the intents of the oldest index
// entries before the cutoff, as pairs of JSON and video id. An entry whose
// intent is gone or has moved on is dropped without counting.
//
// KEYS: intents' index. ARGV: exclusive upper bound, limit, intent key
// prefix, position of the id in a member (1-based), most entries to visit.
var sweepIntentsScript = redis.NewScript(`
local out = {}
local limit = tonumber(ARGV[2])
local idAt = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local swept = 0
while swept < limit and budget > 0 do
  local members = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, math.min(limit - swept, budget))
  if #members == 0 then break end
  for _, member in ipairs(members) do
    budget = budget - 1
    local key = ARGV[3] .. string.sub(member, idAt)
    local intent = redis.call('HMGET', key, 'r', 'm', 'video')
    if intent[1] and intent[2] == member then
      redis.call('DEL', key)
      swept = swept + 1
      out[#out + 1] = intent[1]
      out[#out + 1] = intent[3] or ''
    end
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
`)

// Results of updateScript and deleteVersionScript.
const (
	updateGone        = 0
	updateStored      = 1
	updateConflict    = 2
	updateEventExists = 3
)

// updateScript replaces a record if its version is still the one the caller
// read, moving its index entry along, and appends the events it carries.
//
// KEYS: record key, index. ARGV: version read, new version, JSON, index
// member, TTL in ms, then the events (eventArgs).
var updateScript = redis.NewScript(outboxLua + `
local current = redis.call('HMGET', KEYS[1], 'v', 'm')
if not current[1] then return 0 end
if current[1] == ARGV[2] then return 1 end
if current[1] ~= ARGV[1] then return 2 end
if not eventsFree(ARGV[6], 7) then return 3 end
appendEvents(ARGV[6], 7)
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'm', ARGV[4], 'v', ARGV[2])
if current[2] and current[2] ~= ARGV[4] then redis.call('ZREM', KEYS[2], current[2]) end
redis.call('ZADD', KEYS[2], 0, ARGV[4])
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return 1
`)

// deleteScript removes a record and its index entry.
//
// KEYS: record key, index.
var deleteScript = redis.NewScript(`
local member = redis.call('HGET', KEYS[1], 'm')
if member then redis.call('ZREM', KEYS[2], member) end
redis.call('DEL', KEYS[1])
return 1
`)

// sweepScript deletes and returns the records of the oldest index entries
// before the cutoff. An entry whose record is gone (expired by the key TTL)
// or has moved on (the record was created again later) is dropped without
// counting. A record that this version cannot read stops the sweep before it
// is touched: the script returns what it swept so far, and the record's id
// in the first element of the reply (otherwise "").
//
// KEYS: index. ARGV: exclusive upper bound "(<cutoff member prefix>", limit,
// record key prefix, position of the id in a member (1-based), the start of
// every record this version reads, most entries to visit.
var sweepScript = redis.NewScript(`
local out = {''}
local limit = tonumber(ARGV[2])
local idAt = tonumber(ARGV[4])
local formatLen = string.len(ARGV[5])
local budget = tonumber(ARGV[6])
local swept = 0
while swept < limit and budget > 0 do
  local members = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, math.min(limit - swept, budget))
  if #members == 0 then break end
  for _, member in ipairs(members) do
    budget = budget - 1
    local id = string.sub(member, idAt)
    local key = ARGV[3] .. id
    local rec = redis.call('HMGET', key, 'r', 'm')
    if rec[1] and rec[2] == member then
      if string.sub(rec[1], 1, formatLen) ~= ARGV[5] then
        out[1] = id
        return out
      end
      redis.call('DEL', key)
      swept = swept + 1
      out[swept + 1] = rec[1]
    end
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
`)

// recordStart is how every record this version writes begins (see
// encodeRecord: the format is the first field). Sweep checks it in the
// script, so a record written by a newer tusproxy is never deleted unread.
var recordStart = fmt.Sprintf(`{"format":%d,`, recordFormat)

// Create implements Store.
func (r *Redis) Create(ctx context.Context, rec Record, opts ...WriteOption) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	if rec.ID == "" {
		return errEmptyID
	}
	value, err := encodeRecord(rec)
	if err != nil {
		return err
	}
	events, err := collectOptions(opts).events(rec.ID, Record{}, rec)
	if err != nil {
		return err
	}
	keys := append(r.keys(rec.ID), r.intentKeys(rec.ID)...)
	args := append([]any{value, indexMember(rec.UpdatedAt, rec.ID), newVersion(), r.ttlMS}, r.eventArgs(events)...)
	created, err := createScript.Run(ctx, r.client, keys, args...).Int64()
	if err != nil {
		return r.wrap("create", rec.ID, err)
	}
	switch created {
	case 0:
		return ErrExists
	case updateEventExists:
		return ErrEventExists
	}
	return nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (Record, error) {
	if err := r.ready(ctx); err != nil {
		return Record{}, err
	}
	value, err := r.client.HGet(ctx, r.recordPrefix+id, fieldRecord).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, r.wrap("get", id, err)
	}
	return decodeRecord(id, []byte(value))
}

// Update implements Store. It reads the record, runs fn, and stores the
// result with a script that checks the record was not written in between;
// when it was, Update reads it again and calls fn again.
func (r *Redis) Update(ctx context.Context, id string, fn func(*Record) error, opts ...WriteOption) (Record, error) {
	if err := r.ready(ctx); err != nil {
		return Record{}, err
	}
	key := r.recordPrefix + id
	keys := r.keys(id)
	o := collectOptions(opts)
	for attempt := range updateAttempts {
		if attempt > 0 {
			if err := conflictPause(ctx, attempt); err != nil {
				return Record{}, err
			}
		}
		fields, err := r.client.HMGet(ctx, key, fieldRecord, fieldVersion).Result()
		if err != nil {
			return Record{}, r.wrap("update", id, err)
		}
		value, _ := fields[0].(string)
		version, _ := fields[1].(string)
		if value == "" {
			return Record{}, ErrNotFound
		}
		rec, err := decodeRecord(id, []byte(value))
		if err != nil {
			return Record{}, err
		}
		before := rec
		if err := fn(&rec); err != nil {
			return Record{}, err // the contract: fn's error comes back unchanged
		}
		if rec.ID != id {
			return Record{}, errIDChanged
		}
		newValue, err := encodeRecord(rec)
		if err != nil {
			return Record{}, err
		}
		events, err := o.events(id, before, rec)
		if err != nil {
			return Record{}, err
		}
		args := append([]any{version, newVersion(), newValue, indexMember(rec.UpdatedAt, id), r.ttlMS}, r.eventArgs(events)...)
		result, err := updateScript.Run(ctx, r.client, keys, args...).Int64()
		if err != nil {
			return Record{}, r.wrap("update", id, err)
		}
		switch result {
		case updateStored:
			return rec, nil
		case updateGone:
			return Record{}, ErrNotFound // deleted or swept since we read it
		case updateEventExists:
			return Record{}, ErrEventExists
		}
	}
	return Record{}, fmt.Errorf("state: update %s: still conflicting after %d attempts", id, updateAttempts)
}

// conflictPause waits a moment, growing with the attempt and randomised,
// before an Update reads again after losing a race, so writers that collided
// do not collide again in step.
func conflictPause(ctx context.Context, attempt int) error {
	ceiling := time.Duration(min(attempt, 20)) * time.Millisecond
	timer := time.NewTimer(rand.N(ceiling) + 1)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, id string, opts ...WriteOption) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	if o := collectOptions(opts); o.any() {
		return r.deleteWithEvents(ctx, id, o)
	}
	if err := deleteScript.Run(ctx, r.client, r.keys(id)).Err(); err != nil {
		return r.wrap("delete", id, err)
	}
	return nil
}

// Sweep implements Store. One script walks the index from the oldest entry
// and deletes what it returns, so two replicas sweeping at once never return
// the same record, and a record updated after the sweep began is either seen
// with its new time or, if swept first, makes that Update return ErrNotFound.
func (r *Redis) Sweep(ctx context.Context, cutoff time.Time, limit int, opts ...WriteOption) ([]Record, error) {
	if err := r.ready(ctx); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	visits := limit
	if limit <= math.MaxInt/sweepVisitFactor {
		visits = sweepVisitFactor * limit
	}
	if o := collectOptions(opts); o.any() {
		if len(o.fixed) > 0 {
			return nil, errFixedSweepEvents
		}
		return r.sweepWithEvents(ctx, cutoff, limit, visits, o)
	}
	reply, err := sweepScript.Run(ctx, r.client, []string{r.indexKey},
		"("+indexMember(cutoff, ""), limit, r.recordPrefix, indexTimeLen+1, recordStart, visits,
	).StringSlice()
	if err != nil {
		return nil, r.wrap("sweep", "", err)
	}
	if len(reply) == 0 {
		return nil, r.wrap("sweep", "", errors.New("empty script reply"))
	}
	blocked, values := reply[0], reply[1:]
	if blocked != "" && len(values) == 0 {
		return nil, fmt.Errorf("state: sweep: record %s is not in format %d, which this tusproxy reads; "+
			"is a newer tusproxy sharing this Redis?", blocked, recordFormat)
	}
	// The next Sweep reports a blocking record; the records already
	// deleted are returned now so the caller can log them.
	var swept []Record
	for _, value := range values {
		rec, err := decodeRecord("(swept)", []byte(value))
		if err != nil {
			return swept, r.wrap("sweep", "", err)
		}
		swept = append(swept, rec)
	}
	return swept, nil
}

// CreateIntent implements Store.
func (r *Redis) CreateIntent(ctx context.Context, in Intent) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	if in.ID == "" {
		return errEmptyIntentID
	}
	value, err := encodeIntent(in)
	if err != nil {
		return err
	}
	created, err := createIntentScript.Run(ctx, r.client, r.intentKeys(in.ID),
		value, indexMember(in.CreatedAt, in.ID), newVersion()).Int64()
	if err != nil {
		return r.wrap("create intent", in.ID, err)
	}
	if created == 0 {
		return ErrExists
	}
	return nil
}

// SetIntentVideo implements Store. The id goes into a field of its own, so
// the change is one script and no read-modify-write.
func (r *Redis) SetIntentVideo(ctx context.Context, id, videoID string) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	set, err := setIntentVideoScript.Run(ctx, r.client, []string{r.intentPrefix + id}, videoID).Int64()
	if err != nil {
		return r.wrap("set intent video", id, err)
	}
	if set == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteIntent implements Store, with the record's delete script: the
// intent's hash has the same fields r and m.
func (r *Redis) DeleteIntent(ctx context.Context, id string) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	if err := deleteScript.Run(ctx, r.client, r.intentKeys(id)).Err(); err != nil {
		return r.wrap("delete intent", id, err)
	}
	return nil
}

// SweepIntents implements Store. Like Sweep, one script finds and deletes,
// so two replicas never report the same intent.
func (r *Redis) SweepIntents(ctx context.Context, cutoff time.Time, limit int) ([]Intent, error) {
	if err := r.ready(ctx); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadLimit
	}
	visits := limit
	if limit <= math.MaxInt/sweepVisitFactor {
		visits = sweepVisitFactor * limit
	}
	reply, err := sweepIntentsScript.Run(ctx, r.client, []string{r.intentIndex},
		"("+indexMember(cutoff, ""), limit, r.intentPrefix, indexTimeLen+1, visits,
	).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.wrap("sweep intents", "", err)
	}
	var swept []Intent
	var bad error
	for i := 0; i+1 < len(reply); i += 2 {
		in, err := decodeIntent("(swept)", []byte(reply[i]))
		if err != nil {
			// The others are deleted too: return them, so they are reported.
			bad = errors.Join(bad, err)
			continue
		}
		if reply[i+1] != "" {
			in.VideoID = reply[i+1]
		}
		swept = append(swept, in)
	}
	if bad != nil {
		return swept, r.wrap("sweep intents", "", bad)
	}
	return swept, nil
}

// Ping implements Store: one PING to the server.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.wrap("ping", "", err)
	}
	return nil
}

// Close implements Store. It closes the client, and with it the connections.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("state: close Redis client: %w", err)
	}
	return nil
}

// ready returns the error an operation must return before doing anything.
func (r *Redis) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	return nil
}

// keys returns the KEYS of the record scripts.
func (r *Redis) keys(id string) []string {
	return []string{r.recordPrefix + id, r.indexKey}
}

// intentKeys returns the KEYS of the intent scripts.
func (r *Redis) intentKeys(id string) []string {
	return []string{r.intentPrefix + id, r.intentIndex}
}

// wrap names the operation and the upload in a Redis error, and maps a
// closed client to ErrClosed. Redis errors carry no record contents.
func (r *Redis) wrap(op, id string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		err = ErrClosed
	}
	if id == "" {
		return fmt.Errorf("state: redis %s: %w", op, err)
	}
	return fmt.Errorf("state: redis %s %s: %w", op, id, err)
}

// newVersion returns a random write version. 64 random bits make a
// collision between two writes of one record negligible.
func newVersion() string {
	return strconv.FormatUint(rand.Uint64(), 36)
}

// indexTimeLen is the length of the time part of an index member.
const indexTimeLen = 24

// indexMember is the index entry of a record: UpdatedAt as 16 hex digits of
// Unix seconds with the sign bit flipped (so times before 1970 sort first)
// and 8 of nanoseconds, then the id. Members sort by bytes in time order,
// exactly, for every time.Time: sorted-set scores are float64 and could not
// tell nanoseconds apart at today's Unix times, so all scores are 0 and
// ZRANGEBYLEX does the ordering. With id "" it is the bound for a cutoff:
// every member of an earlier time sorts before it, none of the same time.
func indexMember(updatedAt time.Time, id string) string {
	var raw [12]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(updatedAt.Unix())^(1<<63))
	binary.BigEndian.PutUint32(raw[8:], uint32(updatedAt.Nanosecond()))
	member := make([]byte, indexTimeLen, indexTimeLen+len(id))
	hex.Encode(member, raw[:])
	return string(append(member, id...))
}
