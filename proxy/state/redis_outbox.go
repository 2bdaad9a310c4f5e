package state

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The outbox in Redis, under the store's prefix P:
//
//	P event:<id>             hash: u = upload id, t = type, b = body,
//	                               c = CreatedAt, x = NextAt (RFC 3339, ""
//	                               for zero), n = attempts, s = its ready
//	                               score, m = its member in the index below
//	P events:<upload id>     list of the upload's pending event ids, oldest
//	                         first; its first element is the upload's head
//	P events_ready           sorted set of the upload ids that have pending
//	                         events, scored by when their head is due: a
//	                         never-scheduled head by CreatedAt, below every
//	                         scheduled one (score CreatedAt in µs - 2^52), a
//	                         scheduled head by NextAt (µs), a leased head by
//	                         the end of its lease (µs)
//	P events_by_created_at   every pending event, score 0, ordered by member
//	                         indexMember(CreatedAt, event id): OutboxStats
//
// Every write that carries events appends them in the script that makes the
// change (createScript, updateScript, deleteVersionScript,
// sweepVersionScript), with appendEvents below. ClaimEvents is one script:
// ZRANGEBYSCORE of events_ready up to now takes the due heads, and each is
// leased by moving its score to the end of the lease, so a concurrent
// claim, from this replica or another, cannot see it until the lease
// expires. A claim costs O(limit · log uploads), whatever the backlog.
// AckEvent removes the head and scores the upload's next event (or drops
// the upload from events_ready); RetryEvent rescores the head at NextAt,
// which also ends its lease.
//
// Scores are float64: microseconds keep them exact (2^52 µs is year 2112;
// later times are clamped). The due test is done on microseconds, so an
// event can be claimed up to a microsecond before its NextAt.
//
// Event keys get no key TTL, whatever RedisOptions.TTL says: an event is
// removed only once delivered or given up. (A deployment that turns
// webhooks off leaves the pending ones; nothing writes new ones.)

// outboxLua is the part of every script that writes events. The events are
// ARGV from position at: their count, then nine values each (eventArgs); p
// is the prefix.
const outboxLua = `
local function eventsFree(p, at)
  for i = 0, tonumber(ARGV[at]) - 1 do
    if redis.call('EXISTS', p .. 'event:' .. ARGV[at + 1 + i * 9]) == 1 then return false end
  end
  return true
end
local function appendEvents(p, at)
  for i = 0, tonumber(ARGV[at]) - 1 do
    local b = at + 1 + i * 9
    local id, upload = ARGV[b], ARGV[b + 1]
    redis.call('HSET', p .. 'event:' .. id, 'u', upload, 't', ARGV[b + 2], 'b', ARGV[b + 3], 'c', ARGV[b + 4],
      'n', ARGV[b + 5], 'x', ARGV[b + 6], 's', ARGV[b + 7], 'm', ARGV[b + 8])
    redis.call('ZADD', p .. 'events_by_created_at', 0, ARGV[b + 8])
    if redis.call('RPUSH', p .. 'events:' .. upload, id) == 1 then
      redis.call('ZADD', p .. 'events_ready', ARGV[b + 7], upload)
    end
  end
end
`

// eventArgs are the ARGV of events for outboxLua: the prefix, the count,
// then each event's fields.
func (r *Redis) eventArgs(events []Event) []any {
	args := make([]any, 0, 2+9*len(events))
	args = append(args, r.prefix, len(events))
	for _, ev := range events {
		args = append(args, ev.ID, ev.UploadID, ev.Type, ev.Body, formatEventTime(ev.CreatedAt), ev.Attempts,
			formatEventTime(ev.NextAt), readyScore(ev), indexMember(ev.CreatedAt, ev.ID))
	}
	return args
}

// deleteVersionScript deletes a record if its version is still the one the
// caller read (and computed the events from), and appends the events: the
// results of updateScript.
//
// KEYS: record key, index. ARGV: version read, then the events.
var deleteVersionScript = redis.NewScript(outboxLua + `
local current = redis.call('HMGET', KEYS[1], 'v', 'm')
if not current[1] then return 0 end
if current[1] ~= ARGV[1] then return 2 end
if not eventsFree(ARGV[2], 3) then return 3 end
appendEvents(ARGV[2], 3)
if current[2] then redis.call('ZREM', KEYS[2], current[2]) end
redis.call('DEL', KEYS[1])
return 1
`)

// sweepVersionScript deletes the records a sweep with events read, each
// only if it is still at the version read, with its events; and drops the
// index entries found stale. It returns the (1-based) numbers of the
// records it deleted; a negative number is a record left because an id of
// its events was taken.
//
// KEYS: index. ARGV: prefix, record key prefix, position of the id in a
// member, the count of stale members, them, the count of records, then for
// each: id, member, version, its events (count and fields).
var sweepVersionScript = redis.NewScript(outboxLua + `
local p, recordPrefix, idAt = ARGV[1], ARGV[2], tonumber(ARGV[3])
local at = 4
local stale = tonumber(ARGV[at])
at = at + 1
for i = 1, stale do
  local member = ARGV[at]
  at = at + 1
  if redis.call('HGET', recordPrefix .. string.sub(member, idAt), 'm') ~= member then
    redis.call('ZREM', KEYS[1], member)
  end
end
local out = {}
local records = tonumber(ARGV[at])
at = at + 1
for i = 1, records do
  local id, member, version = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local events = at + 3
  at = events + 1 + tonumber(ARGV[events]) * 9
  local key = recordPrefix .. id
  local current = redis.call('HMGET', key, 'v', 'm')
  if current[1] == version and current[2] == member then
    if eventsFree(p, events) then
      appendEvents(p, events)
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], member)
      out[#out + 1] = i
    else
      out[#out + 1] = -i
    end
  end
end
return out
`)

// claimScript leases the due heads and returns seven values for each: id,
// upload id, type, body, CreatedAt, attempts, NextAt.
//
// KEYS: events_ready. ARGV: prefix, now (score), lease end (score), limit.
var claimScript = redis.NewScript(`
local out = {}
local heads = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
for _, upload in ipairs(heads) do
  local list = ARGV[1] .. 'events:' .. upload
  local id = redis.call('LINDEX', list, 0)
  if not id then
    redis.call('ZREM', KEYS[1], upload)
  else
    local ev = redis.call('HMGET', ARGV[1] .. 'event:' .. id, 't', 'b', 'c', 'n', 'x')
    if not ev[3] then
      -- An id without its event cannot be delivered; the scripts never
      -- leave one, but if one is found it must not block its upload.
      redis.call('LPOP', list)
    else
      redis.call('ZADD', KEYS[1], ARGV[3], upload)
      for _, v in ipairs({id, upload, ev[1], ev[2], ev[3], ev[4], ev[5]}) do out[#out + 1] = v end
    end
  end
end
return out
`)

// ackScript removes an event; 1 when it was pending, 0 when already gone.
//
// KEYS: events_ready, events_by_created_at. ARGV: prefix, event id.
var ackScript = redis.NewScript(`
local key = ARGV[1] .. 'event:' .. ARGV[2]
local ev = redis.call('HMGET', key, 'u', 'm')
if not ev[1] then return 0 end
local list = ARGV[1] .. 'events:' .. ev[1]
local head = redis.call('LINDEX', list, 0)
redis.call('LREM', list, 1, ARGV[2])
redis.call('DEL', key)
if ev[2] then redis.call('ZREM', KEYS[2], ev[2]) end
if head == ARGV[2] then
  local next = redis.call('LINDEX', list, 0)
  if next then
    redis.call('ZADD', KEYS[1], redis.call('HGET', ARGV[1] .. 'event:' .. next, 's') or 0, ev[1])
  else
    redis.call('ZREM', KEYS[1], ev[1])
  end
end
return 1
`)

// retryScript counts an attempt and schedules the next, ending the lease;
// 0 when the event is gone.
//
// KEYS: events_ready. ARGV: prefix, event id, NextAt, its score.
var retryScript = redis.NewScript(`
local key = ARGV[1] .. 'event:' .. ARGV[2]
local upload = redis.call('HGET', key, 'u')
if not upload then return 0 end
redis.call('HINCRBY', key, 'n', 1)
redis.call('HSET', key, 'x', ARGV[3], 's', ARGV[4])
if redis.call('LINDEX', ARGV[1] .. 'events:' .. upload, 0) == ARGV[2] then
  redis.call('ZADD', KEYS[1], ARGV[4], upload)
end
return 1
`)

// ClaimEvents implements Outbox.
func (r *Redis) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Event, error) {
	if err := r.ready(ctx); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, errBadClaimLimit
	}
	reply, err := claimScript.Run(ctx, r.client, []string{r.prefix + "events_ready"},
		r.prefix, microScore(now), microScore(now.Add(lease)), limit).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.wrap("claim events", "", err)
	}
	claimed := make([]Event, 0, len(reply)/7)
	var bad error
	for i := 0; i+7 <= len(reply); i += 7 {
		f := func(j int) string { v, _ := reply[i+j].(string); return v }
		ev := Event{ID: f(0), UploadID: f(1), Type: f(2), Body: []byte(f(3))}
		// A malformed event is still leased: it is reported, and the lease
		// keeps it from being claimed again at once.
		var err error
		if ev.CreatedAt, err = parseEventTime(f(4)); err == nil {
			if ev.Attempts, err = strconv.Atoi(f(5)); err == nil {
				ev.NextAt, err = parseEventTime(f(6))
			}
		}
		if err != nil {
			bad = errors.Join(bad, fmt.Errorf("event %s: %w", ev.ID, err))
			continue
		}
		claimed = append(claimed, ev)
	}
	slices.SortFunc(claimed, compareEvents)
	if bad != nil {
		return claimed, r.wrap("claim events", "", bad)
	}
	return claimed, nil
}

// AckEvent implements Outbox.
func (r *Redis) AckEvent(ctx context.Context, id string) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	err := ackScript.Run(ctx, r.client, []string{r.prefix + "events_ready", r.prefix + "events_by_created_at"},
		r.prefix, id).Err()
	if err != nil {
		return r.wrap("ack event", id, err)
	}
	return nil
}

// RetryEvent implements Outbox. A reply lost and the script retried by
// go-redis counts the attempt twice: Attempts is a count for backoff and
// logs, where one too many does no harm.
func (r *Redis) RetryEvent(ctx context.Context, id string, next time.Time) error {
	if err := r.ready(ctx); err != nil {
		return err
	}
	nextText := formatEventTime(next)
	if _, err := parseEventTime(nextText); err != nil {
		return fmt.Errorf("state: retry event %s: %w", id, err)
	}
	err := retryScript.Run(ctx, r.client, []string{r.prefix + "events_ready"},
		r.prefix, id, nextText, readyScore(Event{NextAt: next})).Err()
	if err != nil {
		return r.wrap("retry event", id, err)
	}
	return nil
}

// OutboxStats implements Outbox: one MULTI, so count and oldest agree.
func (r *Redis) OutboxStats(ctx context.Context) (int, time.Time, error) {
	if err := r.ready(ctx); err != nil {
		return 0, time.Time{}, err
	}
	key := r.prefix + "events_by_created_at"
	var card *redis.IntCmd
	var first *redis.StringSliceCmd
	_, err := r.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		card = pipe.ZCard(ctx, key)
		first = pipe.ZRange(ctx, key, 0, 0)
		return nil
	})
	if err != nil {
		return 0, time.Time{}, r.wrap("outbox stats", "", err)
	}
	var oldest time.Time
	if members := first.Val(); len(members) > 0 {
		if oldest, err = indexTime(members[0]); err != nil {
			return 0, time.Time{}, r.wrap("outbox stats", "", err)
		}
	}
	return int(card.Val()), oldest, nil
}

// deleteWithEvents is Delete with events: it reads the record, computes the
// events and deletes with a script that checks the record was not written in
// between, retrying like Update otherwise.
func (r *Redis) deleteWithEvents(ctx context.Context, id string, o writeOptions) error {
	key := r.recordPrefix + id
	for attempt := range updateAttempts {
		if attempt > 0 {
			if err := conflictPause(ctx, attempt); err != nil {
				return err
			}
		}
		fields, err := r.client.HMGet(ctx, key, fieldRecord, fieldVersion).Result()
		if err != nil {
			return r.wrap("delete", id, err)
		}
		value, _ := fields[0].(string)
		version, _ := fields[1].(string)
		if value == "" {
			return nil // nothing to delete, so no event
		}
		rec, err := decodeRecord(id, []byte(value))
		if err != nil {
			return err
		}
		events, err := o.events(id, rec, Record{})
		if err != nil {
			return err
		}
		result, err := deleteVersionScript.Run(ctx, r.client, r.keys(id), append([]any{version}, r.eventArgs(events)...)...).Int64()
		if err != nil {
			return r.wrap("delete", id, err)
		}
		switch result {
		case updateGone, updateStored:
			return nil
		case updateEventExists:
			return ErrEventExists
		}
	}
	return fmt.Errorf("state: delete %s: still conflicting after %d attempts", id, updateAttempts)
}

// sweepWithEvents is Sweep with events. The events are computed in Go from
// each record, so it reads the oldest entries and their records first, then
// one script deletes each record that is still at the version read, with its
// events. A record written in between is left (not returned): its UpdatedAt
// moved, or the next sweep takes it. Two replicas sweeping at once never
// return the same record: only one script can find it at its version.
func (r *Redis) sweepWithEvents(ctx context.Context, cutoff time.Time, limit, visits int, o writeOptions) ([]Record, error) {
	members, err := r.client.ZRangeByLex(ctx, r.indexKey, &redis.ZRangeBy{
		Min: "-", Max: "(" + indexMember(cutoff, ""), Count: int64(visits)}).Result()
	if err != nil {
		return nil, r.wrap("sweep", "", err)
	}
	cmds := make([]*redis.SliceCmd, len(members))
	if len(members) > 0 {
		_, err = r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, member := range members {
				cmds[i] = pipe.HMGet(ctx, r.recordPrefix+member[indexTimeLen:], fieldRecord, fieldMember, fieldVersion)
			}
			return nil
		})
		if err != nil {
			return nil, r.wrap("sweep", "", err)
		}
	}
	var stale []any
	var picked []Record
	var recordArgs []any
	for i, member := range members {
		if len(picked) == limit {
			break
		}
		fields := cmds[i].Val()
		value, _ := fields[0].(string)
		stored, _ := fields[1].(string)
		version, _ := fields[2].(string)
		if value == "" || stored != member {
			stale = append(stale, member)
			continue
		}
		id := member[indexTimeLen:]
		if len(value) < len(recordStart) || value[:len(recordStart)] != recordStart {
			if len(picked) > 0 {
				break // this one stops the next sweep, which reports it
			}
			return nil, fmt.Errorf("state: sweep: record %s is not in format %d, which this tusproxy reads; "+
				"is a newer tusproxy sharing this Redis?", id, recordFormat)
		}
		rec, err := decodeRecord(id, []byte(value))
		if err != nil {
			return nil, r.wrap("sweep", "", err)
		}
		events, err := o.events(id, rec, Record{})
		if err != nil {
			return nil, err
		}
		picked = append(picked, rec)
		recordArgs = append(recordArgs, id, member, version)
		recordArgs = append(recordArgs, r.eventArgs(events)[1:]...) // the prefix is passed once
	}
	if len(stale) == 0 && len(picked) == 0 {
		return nil, nil
	}
	args := append([]any{r.prefix, r.recordPrefix, indexTimeLen + 1, len(stale)}, stale...)
	args = append(append(args, len(picked)), recordArgs...)
	done, err := sweepVersionScript.Run(ctx, r.client, []string{r.indexKey}, args...).Int64Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.wrap("sweep", "", err)
	}
	var swept []Record
	var bad error
	for _, n := range done {
		if n < 0 {
			bad = ErrEventExists
			continue
		}
		swept = append(swept, picked[n-1])
	}
	if bad != nil {
		return swept, r.wrap("sweep", "", bad)
	}
	return swept, nil
}

// scoreSpan bounds the microsecond scores of events_ready: 2^52 µs after
// 1970, so a never-scheduled head's score (CreatedAt - scoreSpan) stays
// negative and every score is an exact float64.
const scoreSpan = 1 << 52

// microScore is t in microseconds since 1970, clamped to [0, scoreSpan).
func microScore(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case !t.Before(time.UnixMicro(scoreSpan)):
		return scoreSpan - 1
	}
	return t.UnixMicro()
}

// readyScore is the score of a head in events_ready: never-scheduled
// events (NextAt zero) below every scheduled one, by CreatedAt; scheduled
// ones by NextAt.
func readyScore(ev Event) int64 {
	if ev.NextAt.IsZero() {
		return microScore(ev.CreatedAt) - scoreSpan
	}
	return microScore(ev.NextAt)
}

// formatEventTime writes a time as RFC 3339 with nanoseconds, "" for zero.
func formatEventTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func parseEventTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// indexTime reads the time back from an index member (see indexMember).
func indexTime(member string) (time.Time, error) {
	var raw [12]byte
	if len(member) < indexTimeLen {
		return time.Time{}, fmt.Errorf("index member %q is too short", member)
	}
	if _, err := hex.Decode(raw[:], []byte(member[:indexTimeLen])); err != nil {
		return time.Time{}, fmt.Errorf("index member %q: %w", member, err)
	}
	sec := int64(binary.BigEndian.Uint64(raw[:8]) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(raw[8:]))), nil
}
