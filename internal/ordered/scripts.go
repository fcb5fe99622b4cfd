package ordered

import (
	"fmt"
	"time"

	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/tasks"
)

// Every script takes the four keys of one sequence: KEYS[1] items ZSET, KEYS[2] admitted HASH,
// KEYS[3] counter, KEYS[4] lease.

// sequence names the sequence a call acts on: the sequencer's keys and name, and the task key.
type sequence struct {
	keys      keys
	name, key string
}

func (q sequence) keyList() []string { return q.keys.all(q.name, q.key) }

// headReply reads admit's and renew's 1 (yes) or 0.
func headReply(v any) (bool, error) {
	n, err := luascript.Integer(v)
	return n == 1, err
}

// admitScript numbers an item and puts it at the end of its sequence; admitting it again keeps
// its place. ARGV: 1 member, 2 now ms, 3 idle TTL ms. Returns 1 when the item is the head.
var admitScript = luascript.New[admitArgs, bool]("ordered admit", AdmitLua+`
return orderedAdmit(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
`, headReply)

// AdmitLua defines orderedAdmit(items, at, counter, member, now ms, idle TTL ms), admitScript's
// work, for a script that admits a task itself (Admission).
const AdmitLua = `
local function orderedAdmit(items, at, counter, member, now, ttl)
  -- the counter exists exactly while the sequence has items (they are deleted together): 1 is the
  -- first item, the head; a re-admission spends a number and keeps its place
  local n = redis.call('INCR', counter)
  local added = redis.call('ZADD', items, 'NX', n, member) == 1
  if added then redis.call('HSET', at, member, now) end
  for _, k in ipairs({items, at, counter}) do redis.call('PEXPIRE', k, ttl) end
  if added then
    if n == 1 then return 1 end
    return 0
  end
  if redis.call('ZRANGE', items, 0, 0)[1] == member then return 1 end
  return 0
end
`

// AdmitTaskLua defines orderedAdmitAt(a, i, key): the admission at a[i…] (Admission.Args) of a task of
// key, and, when the admission carries its task (AdmitTask), the task's enqueue (tasks.KeyedLua):
// pending when it heads its sequence, else asleep for the recheck. Returns 1 when the task heads its
// sequence (else 0), and 1 when its task was enqueued (else 0: the caller enqueues it). It includes
// KeysLua and AdmitLua.
const AdmitTaskLua = KeysLua + AdmitLua + tasks.KeyedLua + `
local function orderedAdmitAt(a, i, key)
  if a[i] == '' then return 0, 0 end
  local items, at, counter = orderedKeys(a[i], key)
  local head = orderedAdmit(items, at, counter, a[i + 1], a[i + 2], a[i + 3])
  if a[i + 4] == '' or asynqEnqueueKeyed(a, i + 4, key, head == 1) < 0 then return head, 0 end
  return head, 1
end
`

// admitArgs admits member to the sequence at now (ms); idleTTL (ms) is how long an idle sequence stays.
type admitArgs struct {
	sequence
	member       string
	now, idleTTL int64
}

func (a admitArgs) KeysAndArgv() ([]string, []any) {
	return a.keyList(), []any{a.member, a.now, a.idleTTL}
}

// claimScript gives the head its turn: the item must be the head and the lease free (or already
// its own). ARGV: 1 member, 2 token, 3 lease ms.
var claimScript = luascript.New[claimArgs, claimResult]("ordered claim", claimLua+`
return orderedClaim(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3])
`, parseClaimReply)

// claimLua defines orderedClaim(items, at, lease, member, token, lease ms), claimScript's work.
// Returns {"go"} / {"gone"} (not in the sequence) / {"busy", lease ms left} (the head, leased by
// another execution) / {"wait", head, "1" when the head is leased, head's admission ms}.
const claimLua = `
local function orderedClaim(items, at, lease, member, token, ms)
  local head = redis.call('ZRANGE', items, 0, 0)[1]
  if head ~= member then
    if not redis.call('ZSCORE', items, member) then return {'gone'} end
    return {'wait', head, tostring(redis.call('EXISTS', lease)), redis.call('HGET', at, head) or '0'}
  end
  if redis.call('SET', lease, token, 'NX', 'PX', ms) then return {'go'} end
  if redis.call('GET', lease) == token then
    redis.call('PEXPIRE', lease, ms)
    return {'go'}
  end
  return {'busy', tostring(redis.call('PTTL', lease))}
end
`

// prefetchingClaim is claimScript with a Prefetcher's function in the same script: prefetch(keys,
// argv, granted) runs right after the claim on the KEYS and ARGV that follow the claim's. Returns
// {the claim's reply, prefetch's reply}.
func prefetchingClaim(prefetchLua string) *luascript.Script[prefetchClaimArgs, prefetchClaimReply] {
	return luascript.New[prefetchClaimArgs, prefetchClaimReply]("ordered claim and prefetch", `
redis.replicate_commands()
`+claimLua+prefetchLua+`
local r = orderedClaim(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2], ARGV[3])
return {r, prefetch({unpack(KEYS, 5)}, {unpack(ARGV, 4)}, r[1] == 'go')}
`, parsePrefetchClaimReply)
}

// prefetchClaimArgs are a claim's, then the Prefetcher's keys and arguments.
type prefetchClaimArgs struct {
	claimArgs
	pre Prefetch
}

func (a prefetchClaimArgs) KeysAndArgv() ([]string, []any) {
	keys, argv := a.claimArgs.KeysAndArgv()
	return append(keys, a.pre.Keys...), append(argv, a.pre.Args...)
}

// prefetchClaimReply: the claim's answer and prefetch's reply (nil when it returned none).
type prefetchClaimReply struct {
	claim    claimResult
	prefetch any
}

func parsePrefetchClaimReply(v any) (prefetchClaimReply, error) {
	a, err := luascript.AsArray(v)
	if err != nil {
		return prefetchClaimReply{}, err
	}
	if len(a) == 0 {
		return prefetchClaimReply{}, fmt.Errorf("%w: an empty array", luascript.ErrReply)
	}
	r := prefetchClaimReply{}
	if r.claim, err = parseClaimReply(a[0]); err != nil {
		return prefetchClaimReply{}, err
	}
	if len(a) > 1 {
		r.prefetch = a[1]
	}
	return r, nil
}

// claimArgs asks the head's turn for member under the lease token, for lease ms.
type claimArgs struct {
	sequence
	member, token string
	lease         int64
}

func (a claimArgs) KeysAndArgv() ([]string, []any) {
	return a.keyList(), []any{a.member, a.token, a.lease}
}

// claimResult: state "go", "gone", "busy" (leaseLeft) or "wait" (head, leased, admittedAt).
type claimResult struct {
	state      string
	head       string
	leased     bool
	admittedAt time.Time
	leaseLeft  time.Duration
}

func parseClaimReply(v any) (claimResult, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return claimResult{}, err
	}
	r := claimResult{state: code}
	switch code {
	case "go", "gone":
	case "busy":
		r.leaseLeft = max(time.Duration(a.Int(1))*time.Millisecond, 100*time.Millisecond)
	case "wait":
		r.head, r.leased = a.Str(1), a.Str(2) == "1"
		r.admittedAt = time.UnixMilli(a.Int(3))
	default:
		return claimResult{}, luascript.UnexpectedCode(code)
	}
	return r, nil
}

// renewScript extends the lease while its holder works. ARGV: 1 token, 2 lease ms. Returns 1 if held.
var renewScript = luascript.New[leaseArgs, bool]("ordered renew", `
if redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[4], ARGV[2])
  return 1
end
return 0
`, headReply)

// leaseArgs names the lease token (and, to renew it, its lease ms).
type leaseArgs struct {
	sequence
	token string
	lease int64
}

func (a leaseArgs) KeysAndArgv() ([]string, []any) {
	return a.keyList(), []any{a.token, a.lease}
}

// releaseScript frees the lease after a failed attempt that will be retried: the item stays head.
// ARGV: 1 token.
var releaseScript = luascript.New[releaseArgs, int64]("ordered release", `
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 0
`, luascript.Integer)

// releaseArgs frees the lease held by token.
type releaseArgs struct {
	sequence
	token string
}

func (a releaseArgs) KeysAndArgv() ([]string, []any) { return a.keyList(), []any{a.token} }

// RemoveLua defines orderedRemove(items, at, counter, lease, member, mode, token), which takes an
// item out of its sequence and returns {"ok", the new head when removing it made one, "" otherwise}
// (an emptied sequence leaves no key behind). mode: "done" (the lease holder finished; token is its
// lease), "skip" (a lost head: only when it is still the head and nobody holds the lease), "cancel"
// (never enqueued; anywhere in the sequence). Returns {"held"} when a skip found the lease taken or
// the head moved. Another package's script includes it to end a turn in its own last write (see
// Advance).
//
// It also defines orderedRemoveWake(…, wake): orderedRemove, then, when wake is "1", the new head's
// asynq task made pending in the same step (tasks.RunNowLua: the wake's round trip saved), its
// answer third in the reply (-4: the wake failed; the caller wakes it as before). wake must be "0"
// on Redis Cluster, where asynq's keys are of another slot.
const RemoveLua = tasks.RunNowLua + `
local function orderedRemove(items, at, counter, lease, member, mode, token)
  local first = redis.call('ZRANGE', items, 0, 1)
  local head, nxt = first[1], first[2]
  if mode == 'skip' and (head ~= member or redis.call('EXISTS', lease) == 1) then return {'held'} end
  local ours = mode == 'done' and redis.call('GET', lease) == token
  if not head or (head == member and not nxt) then
    -- the sequence empties: all its keys go in one step (the lease too when it is ours)
    if ours then redis.call('DEL', items, at, counter, lease) else redis.call('DEL', items, at, counter) end
    return {'ok', ''}
  end
  if ours then redis.call('DEL', lease) end
  redis.call('ZREM', items, member)
  redis.call('HDEL', at, member)
  -- only a new head needs waking: waking an item that was already head would cut its retry backoff
  if head ~= member then return {'ok', ''} end
  return {'ok', nxt}
end
local function orderedRemoveWake(items, at, counter, lease, member, mode, token, wake)
  local r = orderedRemove(items, at, counter, lease, member, mode, token)
  if wake == '1' and r[1] == 'ok' and r[2] ~= '' then
    local q, id = string.match(r[2], '^(%S+) (.+)$')
    local n = -4
    if q then n = asynqRunNowIn(q, id) end
    if type(n) ~= 'number' then n = -4 end
    r[3] = n
  end
  return r
end
`

// AdvanceLua is RemoveLua with tasks.CompleteLua, for the handler's script that ends its turn and
// may complete its task (Advance).
const AdvanceLua = RemoveLua + tasks.CompleteLua

// removeScript runs orderedRemoveWake on one sequence. ARGV: 1 member, 2 mode, 3 token, 4 wake.
var removeScript = luascript.New[removeArgs, removeReply]("ordered remove", RemoveLua+`
return orderedRemoveWake(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`, parseRemoveReply)

// Modes of removeScript.
const (
	removeDone   = "done"
	removeSkip   = "skip"
	removeCancel = "cancel"
)

// removeArgs takes member out of the sequence; token is the lease holder's (mode done); wake: the
// script wakes the new head itself.
type removeArgs struct {
	sequence
	member, mode, token string
	wake                bool
}

func (a removeArgs) KeysAndArgv() ([]string, []any) {
	return a.keyList(), []any{a.member, a.mode, a.token, luascript.Flag(a.wake)}
}

// removeReply: held (a skip found the head leased or moved), or the new head ("" none), and whether
// the script woke it (or found nothing to wake: pending already, or no task yet, which wakes itself
// after its enqueue).
type removeReply struct {
	held  bool
	next  string
	woken bool
}

func parseRemoveReply(v any) (removeReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return removeReply{}, err
	}
	switch code {
	case "held":
		return removeReply{held: true}, nil
	case "ok":
		r := removeReply{next: a.Str(1)}
		if len(a) > 2 {
			_, err := tasks.RunNowAnswer(a.Int(2))
			r.woken = err == nil && a.Int(2) >= -2
		}
		return r, nil
	}
	return removeReply{}, luascript.UnexpectedCode(code)
}
