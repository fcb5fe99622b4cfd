package presence

import (
	"strconv"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
)

// Keys of the presence store, all under the tenant's hash tag.
//
//	cg:{t}:presence:<agent>                 HASH   <channel> → state, <channel>:since → Unix ms, <channel>:reason
//	cg:{t}:presence:history:<agent>         STREAM one entry per change: channel from to reason by cause at; ids are
//	                                               the gateway's ms (<at>-<seq>), so reports read a period by id
//	cg:{t}:presence:totals:<agent>          HASH   <day>:<channel>:online → ms, <day>:<channel>:paused:<reason> → ms,
//	                                               pruned → last day old fields were dropped; day = Unix days
//	cg:{t}:presence:seen                    ZSET   agent → last heartbeat (Unix ms) of agents logged in somewhere
type keys struct {
	ks keyspace.Space
}

func (k keys) state(agent string) string   { return StateKey(k.ks, agent) }
func (k keys) history(agent string) string { return k.ks.Key("presence", "history", agent) }
func (k keys) seen() string                { return k.ks.Key("presence", "seen") }

// totals holds every day of the agent's totals in one HASH, so the transition script gets it in
// KEYS (a key per day could only be built inside the script, out of sight of Redis Cluster).
func (k keys) totals(agent string) string { return k.ks.Key("presence", "totals", agent) }

// totalsField is a field of the totals HASH: the Unix day, then <channel>:online or
// <channel>:paused:<reason>.
func totalsField(day int64, rest string) string { return strconv.FormatInt(day, 10) + ":" + rest }

func unixDay(t time.Time) int64 { return t.UTC().Unix() / 86400 }
