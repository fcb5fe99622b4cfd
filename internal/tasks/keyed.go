package tasks

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

// Keyed is an asynq task that a Lua script enqueues itself, in the same step as its own writes, once
// it has decided the task's key: a string that stands at a placeholder in the payload and is the
// value of one header (an ordered sequence's key, a conversation the script found or opened). The
// script writes exactly what asynq's client would (Client.EnqueueContext, v0.26): the task message
// in asynq's protobuf encoding, its hash, the pending list (or the scheduled set) and the all-queues
// set, so asynq's workers and inspector cannot tell the difference.
//
// A script includes KeyedLua and calls asynqEnqueueKeyed(ARGV, i, key, pending) with Args at ARGV[i…].
// It touches keys of the queue's hash tag that the script computes: on Redis Cluster, where a script
// may touch one slot only, use SingleNode to keep to asynq's client there.
type Keyed struct {
	queue, id string
	// The message's encoding around what the key decides: fields before the payload, the payload
	// before and after the key, the fields between the payload and the headers (see KeyedLua).
	head, payPre, payPost, mid []byte
	header                     string
}

// ErrNotKeyable: the task cannot be written by KeyedLua (an option it does not express, headers
// other than the key's, no placeholder in its payload); enqueue it through asynq's client.
var ErrNotKeyable = errors.New("tasks: the task cannot be enqueued by a script")

// NewKeyed encodes the task typ with payload, whose key (the placeholder, once in the payload) is
// also the value of the header. opts must name the queue and the task id; MaxRetry, Timeout,
// Deadline and Retention are expressed, the others (ProcessAt, ProcessIn, Unique, Group) are not:
// the script decides between pending now and scheduled (Args).
func NewKeyed(typ string, payload []byte, placeholder, header string, opts ...asynq.Option) (Keyed, error) {
	retry, queue, id := 25, "", "" // asynq's defaults: 25 retries, no timeout or deadline
	var timeout, retention time.Duration
	var deadline time.Time
	for _, o := range opts {
		switch o.Type() {
		case asynq.MaxRetryOpt:
			retry = o.Value().(int)
		case asynq.QueueOpt:
			queue = o.Value().(string)
		case asynq.TaskIDOpt:
			id = o.Value().(string)
		case asynq.TimeoutOpt:
			timeout = o.Value().(time.Duration)
		case asynq.DeadlineOpt:
			deadline = o.Value().(time.Time)
		case asynq.RetentionOpt:
			retention = o.Value().(time.Duration)
		default:
			return Keyed{}, ErrNotKeyable
		}
	}
	pre, post, found := bytes.Cut(payload, []byte(placeholder))
	if typ == "" || strings.TrimSpace(queue) == "" || strings.TrimSpace(id) == "" || header == "" || placeholder == "" ||
		!found || bytes.Contains(post, []byte(placeholder)) {
		return Keyed{}, ErrNotKeyable
	}
	// As asynq's client: with neither a deadline nor a timeout, the default timeout of 30 minutes.
	var deadlineUnix int64
	if !deadline.IsZero() {
		deadlineUnix = deadline.Unix()
	}
	if deadlineUnix == 0 && timeout == 0 {
		timeout = 30 * time.Minute
	}
	// Fields in number order, zero values left out, as proto.Marshal writes asynq's TaskMessage:
	// 1 type, 2 payload, 3 id, 4 queue, 5 retry, 8 timeout, 9 deadline, 12 retention, 15 headers.
	k := Keyed{queue: queue, id: id, payPre: pre, payPost: post, header: header}
	k.head = protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), typ)
	m := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), id)
	m = protowire.AppendString(protowire.AppendTag(m, 4, protowire.BytesType), queue)
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{5, int64(int32(retry))}, {8, int64(timeout / time.Second)}, {9, deadlineUnix}, {12, int64(retention / time.Second)}} {
		if f.v != 0 {
			m = protowire.AppendVarint(protowire.AppendTag(m, f.num, protowire.VarintType), uint64(f.v))
		}
	}
	k.mid = m
	return k, nil
}

// Queue and ID are the task's.
func (k Keyed) Queue() string { return k.queue }
func (k Keyed) ID() string    { return k.id }

// KeyedArgs is how many ARGV Args takes.
const KeyedArgs = 10

// Args are asynqEnqueueKeyed's ARGV: the task pending since now, or, when the script enqueues it
// not pending, scheduled for now+later (asynq's ProcessIn(later)). A zero Keyed gives KeyedArgs
// empty strings: the script enqueues nothing.
func (k Keyed) Args(now time.Time, later time.Duration) []any {
	if k.queue == "" {
		return []any{"", "", "", "", "", "", "", "", "", ""}
	}
	return []any{asynqQueuePrefix(k.queue), k.id, k.head, k.payPre, k.payPost, k.mid, k.header,
		now.UnixNano(), now.Add(later).Unix(), k.queue}
}

// SingleNode reports whether a script on client may touch keys of any hash tag (not Redis Cluster).
func SingleNode(client redis.UniversalClient) bool {
	_, ok := client.(*redis.Client)
	return ok
}

// KeyedLua defines asynqEnqueueKeyed(a, i, key, pending): the task of Args at a[i…] with its key,
// written as asynq's enqueue script (pending) or schedule script does; 1 written, 0 the id is taken
// (asynq's ErrTaskIDConflict), -1 a key the payload cannot hold as it is (the caller enqueues it
// through asynq's client). The key must need no escaping in the payload's JSON string: letters,
// digits and - _ . : only.
const KeyedLua = `
local function asynqVarint(n)
  local s = ''
  while n >= 128 do
    s = s .. string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  return s .. string.char(n)
end
local function asynqBytes(tag, s) return tag .. asynqVarint(#s) .. s end
local function asynqEnqueueKeyed(a, i, key, pending)
  if not string.find(key, '^[%w%-_.:]+$') then return -1 end
  local qp, id = a[i], a[i + 1]
  local tk = qp .. 't:' .. id
  if redis.call('EXISTS', tk) == 1 then return 0 end
  -- asynq's TaskMessage: type, payload (2), id … retention, headers (15: one entry, key 1 and value 2)
  local msg = a[i + 2] .. asynqBytes('\18', a[i + 3] .. key .. a[i + 4]) .. a[i + 5] ..
    asynqBytes('\122', asynqBytes('\10', a[i + 6]) .. asynqBytes('\18', key))
  redis.call('SADD', 'asynq:queues', a[i + 9])
  if pending then
    redis.call('HSET', tk, 'msg', msg, 'state', 'pending', 'pending_since', a[i + 7])
    redis.call('LPUSH', qp .. 'pending', id)
  else
    redis.call('HSET', tk, 'msg', msg, 'state', 'scheduled')
    redis.call('ZADD', qp .. 'scheduled', a[i + 8], id)
  end
  return 1
end
`
