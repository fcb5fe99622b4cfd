package integrations

import "github.com/chatgate/chatgate/internal/keyspace"

// keys are the integrations' Redis keys of one tenant (all under its hash tag):
//
//	integ:on                 STRING  outbox on (outbox.OnKey)
//	integ:outbox             STREAM  events not yet dispatched (outbox.StreamKey)
//	integ:cursor             STRING  the last outbox entry dispatched
//	integ:leader             STRING  the dispatcher's lease (one process dispatches, in order)
//	integ:ev:<event>         HASH    a retained event: t type, k order key, at ms, b body (TTL retain_events)
//	integ:events             ZSET    retained events by time, for replays
//	integ:subs               SET     subscriptions known to Redis (a removed one is cleaned up)
//	integ:q:<sub>:<key>      LIST    a subscription's undelivered events of one conversation (or agent), in order
//	integ:chain:<sub>        HASH    order key → the asynq task delivering that list
//	integ:chains:<sub>       ZSET    order key → when its task was last checked to exist, or last recorded deliveries
//	integ:dead:<sub>         ZSET    dead-lettered events by time
//	integ:deadinfo:<sub>     HASH    event → {key, type, error, attempts}
//	integ:health:<sub>       HASH    state healthy|unhealthy|disabled, failures, last_error, …
//	integ:unacked            HASH    conversation → events accepted for delivery and not acknowledged (retention's hold)
//	integ:unacked_since      ZSET    conversation → when its hold began
type keys struct{ ks keyspace.Space }

func (k keys) prefix() string               { return k.ks.Prefix() }
func (k keys) cursor() string               { return k.ks.Key("integ", "cursor") }
func (k keys) leader() string               { return k.ks.Key("integ", "leader") }
func (k keys) ev(id string) string          { return k.ks.Key("integ", "ev", id) }
func (k keys) events() string               { return k.ks.Key("integ", "events") }
func (k keys) subs() string                 { return k.ks.Key("integ", "subs") }
func (k keys) queue(sub, key string) string { return k.ks.Key("integ", "q", sub, key) }
func (k keys) chain(sub string) string      { return k.ks.Key("integ", "chain", sub) }
func (k keys) chains(sub string) string     { return k.ks.Key("integ", "chains", sub) }
func (k keys) dead(sub string) string       { return k.ks.Key("integ", "dead", sub) }
func (k keys) deadInfo(sub string) string   { return k.ks.Key("integ", "deadinfo", sub) }
func (k keys) health(sub string) string     { return k.ks.Key("integ", "health", sub) }
func (k keys) unacked() string              { return k.ks.Key("integ", "unacked") }
func (k keys) unackedSince() string         { return k.ks.Key("integ", "unacked_since") }

// agentKeyPrefix marks an order key that is an agent (presence events), not a conversation: such
// events hold no conversation. Conversation ids are ULIDs, which never contain ':'.
const agentKeyPrefix = "a:"
