// Package sse carries chatgate's resumable Server-Sent Event streams: a durable log (one Redis STREAM
// per subscriber, announced on one pub/sub channel per tenant), a hub that hands the announcements to
// the streams open in this process, and the connection loop that writes them. A client reconnecting
// with Last-Event-ID, to this replica or another, first gets what it missed from the log, then live
// events, never twice. The agents' streams and the widget's visitor streams are built on it.
package sse

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one event as a stream writes it. ID is its Redis stream entry id, the SSE id a client
// resumes from; an event without one is a passing notice, written live and never replayed.
type Event struct {
	ID   string
	Type string
	Data string // the event's JSON
}

// Log keeps each subscriber's events in a Redis STREAM (fields type and event) and announces new
// ones on one channel, so every replica's hub sees them.
type Log struct {
	client  redis.UniversalClient
	channel string
	maxLen  int64
	ttl     time.Duration
}

// NewLog builds a log announcing on channel. Each STREAM keeps about maxLen entries and, when ttl is
// positive, expires ttl after its last event.
func NewLog(client redis.UniversalClient, channel string, maxLen int64, ttl time.Duration) *Log {
	return &Log{client: client, channel: channel, maxLen: maxLen, ttl: ttl}
}

// AppendLua defines sseAppend(key, maxLen, typ, body, channel, subscriber, ttl): the append as a Lua
// function, so that a script whose state change an event reports can append it in the same step
// (routing's intake appends card.offered). It appends to the subscriber's STREAM, refreshes its
// expiry when ttl (seconds) is positive and announces the event (see announcement), so a live reader
// never sees an announcement of an event it cannot re-read; it returns the entry id.
const AppendLua = `
local function sseAppend(key, maxLen, typ, body, channel, subscriber, ttl)
  local id = redis.call('XADD', key, 'MAXLEN', '~', maxLen, '*', 'type', typ, 'event', body)
  if tonumber(ttl) > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  redis.call('PUBLISH', channel, subscriber .. '\n' .. id .. '\n' .. body .. '\n' .. typ)
  return id
end
`

// appendScript is AppendLua in a script of its own.
//
// KEYS[1] the subscriber's STREAM; ARGV: 1 max length, 2 type, 3 event JSON, 4 channel, 5 subscriber,
// 6 TTL seconds (0: none). Returns the entry id.
var appendScript = redis.NewScript(AppendLua + `
return sseAppend(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
`)

// MaxLen is the length each of the log's STREAMs keeps (about), for a script that appends with AppendLua.
func (l *Log) MaxLen() int64 { return l.maxLen }

// announcement is what the channel carries: "<subscriber>\n<id>\n<JSON>\n<type>" (id empty for a
// passing notice). Neither a subscriber id, an entry id, a type nor marshalled JSON holds a newline.
// The type comes last so that during a rolling upgrade a replica of the previous version, which reads
// everything after the id as the JSON, still writes a frame EventSource reads (the type line is a
// field it ignores).
func announcement(subscriber, id, typ string, body []byte) string {
	return subscriber + "\n" + id + "\n" + string(body) + "\n" + typ
}

func parseAnnouncement(payload string) (subscriber string, ev Event, ok bool) {
	subscriber, rest, ok1 := strings.Cut(payload, "\n")
	id, rest, ok2 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 {
		return "", Event{}, false
	}
	ev.ID = id
	if i := strings.LastIndexByte(rest, '\n'); i >= 0 {
		ev.Data, ev.Type = rest[:i], rest[i+1:]
		return subscriber, ev, true
	}
	// From a replica of the previous version, which announced no type: the event's own says it.
	ev.Data = rest
	var typed struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal([]byte(rest), &typed)
	ev.Type = typed.Type
	return subscriber, ev, true
}

// Append stores an event of the subscriber under key, announces it and returns its id.
func (l *Log) Append(ctx context.Context, key, subscriber, typ string, body []byte) (string, error) {
	return appendScript.Run(ctx, l.client, []string{key}, l.maxLen, typ, body, l.channel, subscriber,
		int64(l.ttl/time.Second)).Text()
}

// Announce tells the subscriber's open streams of a passing event without keeping it: it has no id
// and is not replayed on resume.
func (l *Log) Announce(ctx context.Context, subscriber, typ string, body []byte) error {
	return l.client.Publish(ctx, l.channel, announcement(subscriber, "", typ, body)).Err()
}

// After returns the events stored under key after id ("" or "0" for every kept one), oldest first,
// at most count of them (0: all).
func (l *Log) After(ctx context.Context, key, id string, count int64) ([]Event, error) {
	start := "-"
	if id != "" && id != "0" {
		start = "(" + id
	}
	var entries []redis.XMessage
	var err error
	if count > 0 {
		entries, err = l.client.XRangeN(ctx, key, start, "+", count).Result()
	} else {
		entries, err = l.client.XRange(ctx, key, start, "+").Result()
	}
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(entries))
	for _, e := range entries {
		if body, ok := e.Values["event"].(string); ok {
			typ, _ := e.Values["type"].(string)
			out = append(out, Event{ID: e.ID, Type: typ, Data: body})
		}
	}
	return out, nil
}

// Decode unmarshals stored events into T, giving each its id with withID; an event whose JSON does
// not decode is skipped.
func Decode[T any](stored []Event, withID func(*T, string)) []T {
	out := make([]T, 0, len(stored))
	for _, e := range stored {
		var v T
		if json.Unmarshal([]byte(e.Data), &v) == nil {
			withID(&v, e.ID)
			out = append(out, v)
		}
	}
	return out
}

// EventStreamReset tells a client that resumed from an event no longer kept that it missed some:
// it refetches its state.
const EventStreamReset = "stream.reset"

// backlog is what a stream resuming after last writes before live events: the kept events after
// last, preceded by stream.reset when the oldest kept one is newer than last and some were trimmed
// in between. A new stream (last empty) starts live, or with every kept event when replayAll.
func (l *Log) backlog(ctx context.Context, key, last string, replayAll, resetWhenTrimmed bool) ([]Event, error) {
	if last == "" && !replayAll {
		return nil, nil
	}
	entries, err := l.After(ctx, key, last, 0)
	if err != nil || last == "" || !resetWhenTrimmed {
		return entries, err
	}
	if l.trimmedAfter(ctx, key, last, entries) {
		reset := Event{ID: last, Type: EventStreamReset, Data: `{"type":"` + EventStreamReset + `","at":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`}
		entries = append([]Event{reset}, entries...)
	}
	return entries, nil
}

// trimmedAfter reports whether an event after last is no longer kept: last is older than the oldest
// kept entry, and entries were trimmed (Redis 7 counts the entries ever added, so a stream that never
// lost one, as long as it keeps all it was given, never resets a client whose id it does not hold).
func (l *Log) trimmedAfter(ctx context.Context, key, last string, entries []Event) bool {
	first, err := l.client.XRangeN(ctx, key, "-", "+", 1).Result()
	if err != nil || len(first) != 1 || !IDLess(last, first[0].ID) || len(entries) == 0 || entries[0].ID != first[0].ID {
		return false
	}
	if info, err := l.client.XInfoStream(ctx, key).Result(); err == nil && info.EntriesAdded > 0 {
		return info.EntriesAdded > info.Length
	}
	return true // the store does not count additions (the embedded one): assume the worst
}

// IDLess compares Redis stream ids "ms-seq".
func IDLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ams, _ := strconv.ParseUint(am, 10, 64)
	bms, _ := strconv.ParseUint(bm, 10, 64)
	if ams != bms {
		return ams < bms
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	return asq < bsq
}

// ValidID reports whether id is a Redis stream id "ms-seq".
func ValidID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}
