package presence

import (
	"strconv"
	"time"

	"github.com/chatgate/chatgate/internal/keyspace"
)

// Keys of the presence store, all under the tenant's hash tag.
//
//	cg:{t}:presence:<agent>                 HASH   <channel> → state, <channel>:since → Unix ms, <channel>:reason
//	cg:{t}:presence:history:<agent>         STREAM one entry per change: channel from to reason by cause at
//	cg:{t}:presence:totals:<agent>:<day>    HASH   <channel>:online → ms, <channel>:paused:<reason> → ms; day = Unix days
//	cg:{t}:presence:seen                    ZSET   agent → last heartbeat (Unix ms) of agents logged in somewhere
type keys struct {
	ks keyspace.Space
}

func (k keys) state(agent string) string   { return StateKey(k.ks, agent) }
func (k keys) history(agent string) string { return k.ks.Key("presence", "history", agent) }
func (k keys) seen() string                { return k.ks.Key("presence", "seen") }

// totalsPrefix is completed inside the transition script with the Unix day of each accrued span:
// the day keys are not known before the script reads `since`; they carry the tenant's hash tag.
func (k keys) totalsPrefix(agent string) string { return k.ks.Key("presence", "totals", agent) + ":" }

func (k keys) totals(agent string, day time.Time) string {
	return k.totalsPrefix(agent) + strconv.FormatInt(unixDay(day), 10)
}

func unixDay(t time.Time) int64 { return t.UTC().Unix() / 86400 }
