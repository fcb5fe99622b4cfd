package ordered

import "github.com/chatgate/chatgate/internal/keyspace"

// keys of one sequence; all under the tenant's hash tag, so each script touches one slot.
type keys struct{ space keyspace.Space }

// list is the sequence's items, scored by their admission number (ZSET of "queue task-id").
func (k keys) list(name, key string) string { return k.space.Key("ord", name, key, "items") }

// admitted holds when each item was admitted (HASH member → unix ms), to tell a lost head.
func (k keys) admitted(name, key string) string { return k.space.Key("ord", name, key, "at") }

// counter numbers the admissions (STRING, reset when the sequence empties).
func (k keys) counter(name, key string) string { return k.space.Key("ord", name, key, "seq") }

// lease is held by the execution sending the head (STRING token with a TTL).
func (k keys) lease(name, key string) string { return k.space.Key("ord", name, key, "lease") }

func (k keys) all(name, key string) []string {
	return []string{k.list(name, key), k.admitted(name, key), k.counter(name, key), k.lease(name, key)}
}

// keyPrefix is what a sequence's keys start with, before the task key (for KeysLua).
func (k keys) keyPrefix(name string) string { return k.space.Key("ord", name) + ":" }

// KeysLua defines orderedKeys(prefix, key), the four keys of a sequence (items, admitted, counter,
// lease) as keys.all names them, for a script that decides the task key itself (Admission).
const KeysLua = `
local function orderedKeys(prefix, key)
  local p = prefix .. key .. ':'
  return p .. 'items', p .. 'at', p .. 'seq', p .. 'lease'
end
`
