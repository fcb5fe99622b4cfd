package integrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/outbox"
)

// dispatchBatch is how many outbox entries one accept script moves.
const dispatchBatch = 256

// leaseScript takes or renews the dispatcher's lease. KEYS[1] lease; ARGV: 1 token, 2 ms. Returns 1 if held.
var leaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// dispatchLoop: while this process holds the lease, move the outbox into delivery in order.
func (s *Service) dispatchLoop() {
	defer s.wg.Done()
	ctx := context.Background()
	var renewed time.Time
	var ahead *batch // the next batch, read while the previous one was accepted
	// the previous batch's chain starts, enqueued while the next batch is accepted (a chain's task
	// reads its list whenever it runs: when it is enqueued does not matter to the order)
	var starting sync.WaitGroup
	defer starting.Wait()
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if time.Since(renewed) > s.opts.Lease/3 {
			held, err := leaseScript.Run(ctx, s.client, []string{s.keys.leader()}, s.token, s.opts.Lease.Milliseconds()).Int()
			if err != nil || held != 1 {
				ahead = nil
				if err != nil {
					s.logger.Warn("dispatcher lease", "err", err)
				}
				if !sleep(s.stop, s.opts.Lease/5) {
					return
				}
				continue
			}
			renewed = time.Now()
		}
		n, next, starts, err := s.dispatchAhead(ctx, ahead)
		ahead = next
		starting.Wait()
		if len(starts) > 0 {
			starting.Add(1)
			go func() {
				defer starting.Done()
				s.startChains(ctx, starts)
			}()
		}
		if err != nil {
			s.logger.Warn("dispatch failed; trying again", "err", err)
			if !sleep(s.stop, 500*time.Millisecond) {
				return
			}
			continue
		}
		if n == 0 {
			// Wait for a new entry (bounded, to renew the lease and see stop).
			cursor, _ := s.client.Get(ctx, s.keys.cursor()).Result()
			_ = s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{outbox.StreamKey(s.ks), firstNonEmpty(cursor, "0-0")},
				Count: 1, Block: 200 * time.Millisecond}).Err()
		}
	}
}

// batch is a run of outbox entries after cursor with their events built, ready for the accept script.
type batch struct {
	cursor  string
	entries []redis.XMessage
	events  []acceptedEvent
	err     error
}

// readBatch reads up to dispatchBatch entries after cursor and builds their events.
func (s *Service) readBatch(ctx context.Context, cursor string) *batch {
	b := &batch{cursor: cursor}
	b.entries, b.err = s.client.XRangeN(ctx, outbox.StreamKey(s.ks), "("+cursor, "+", dispatchBatch).Result()
	if b.err != nil || len(b.entries) == 0 {
		return b
	}
	src, err := s.snapshot(ctx, b.entries)
	if err != nil {
		b.err = err
		return b
	}
	b.events = make([]acceptedEvent, len(b.entries))
	for i, e := range b.entries {
		if b.events[i], b.err = s.event(ctx, src, e); b.err != nil {
			return b // Redis is failing: the batch is read again
		}
	}
	return b
}

// dispatchAhead moves one batch (ahead, read during the previous call, or read now from the stored
// cursor) and, while its accept script runs, reads the batch after it, which it returns for the
// next call, with the chains the batch started (for the caller to enqueue). The accept script moves
// the cursor only from the batch's own cursor, so a batch read ahead by a dispatcher that lost its
// lease, or after another one moved, changes nothing. The entries a batch refers to were written
// before them: reading them ahead sees what reading them later would.
func (s *Service) dispatchAhead(ctx context.Context, ahead *batch) (int, *batch, []chainStart, error) {
	b := ahead
	if b == nil {
		cursor, err := s.client.Get(ctx, s.keys.cursor()).Result()
		if errors.Is(err, redis.Nil) {
			cursor = "0-0"
		} else if err != nil {
			return 0, nil, nil, err
		}
		b = s.readBatch(ctx, cursor)
	}
	if b.err != nil || len(b.entries) == 0 {
		return 0, nil, nil, b.err
	}
	last := b.entries[len(b.entries)-1].ID
	next := make(chan *batch, 1)
	go func() { next <- s.readBatch(ctx, last) }()
	r, err := acceptScript.Run(ctx, s.client, acceptArgs{keys: s.keys, outbox: outbox.StreamKey(s.ks), expected: b.cursor,
		cursor: last, now: s.clock.Now().UnixMilli(), retain: s.opts.RetainEvents.Milliseconds(), events: b.events})
	if err != nil {
		<-next
		return 0, nil, nil, err
	}
	if r.moved {
		<-next
		return len(b.entries), nil, nil, nil // another dispatcher moved it: read again from where it is
	}
	s.metrics.dispatched.Add(float64(len(b.entries)))
	nb := <-next
	if nb.err != nil {
		nb = nil // read again from the stored cursor
	}
	return len(b.entries), nb, r.starts, nil
}

// event builds one outbox entry's event and picks the subscriptions that want it.
func (s *Service) event(ctx context.Context, src Source, e redis.XMessage) (acceptedEvent, error) {
	id := "evt_" + e.ID
	b, err := s.build(ctx, src, id, e.Values)
	if err != nil {
		return acceptedEvent{}, err
	}
	if b.drop {
		s.logger.Debug("outbox entry names nothing that exists any more", "entry", e.ID, "type", b.typ)
		return acceptedEvent{streamID: e.ID}, nil
	}
	var subs []string
	for _, sid := range s.order {
		if s.subs[sid].wants(b.typ, b.queue) {
			subs = append(subs, sid)
		}
	}
	return acceptedEvent{id: id, streamID: e.ID, typ: b.typ, key: b.key, at: b.at.UnixMilli(), body: b.body,
		subs: strings.Join(subs, ","), queue: b.queue}, nil
}

// snapshot reads ahead, in two round trips, everything a batch of entries refers to.
func (s *Service) snapshot(ctx context.Context, entries []redis.XMessage) (Source, error) {
	var convs, msgs, cards []string
	for _, e := range entries {
		str := func(k string) string { v, _ := e.Values[k].(string); return v }
		if c := str(outbox.FieldConversation); c != "" {
			convs = append(convs, c)
		}
		if m := str(outbox.FieldMessage); m != "" {
			msgs = append(msgs, m)
		}
		if k := str(outbox.FieldCard); k != "" {
			cards = append(cards, k)
		}
	}
	snap, err := s.src.ReadSnapshot(ctx, dedup(convs), dedup(msgs), dedup(cards))
	if err != nil {
		return nil, err
	}
	return snapshotSource{Source: s.src, snap: snap}, nil
}

func dedup(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// startChains enqueues the task of each chain that started; one that fails is found by the sweeper.
// Enqueues run side by side (one round trip each; asynq has no batch enqueue).
func (s *Service) startChains(ctx context.Context, starts []chainStart) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, c := range starts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.enqueue(ctx, c.sub, c.key, c.taskID); err != nil {
				s.logger.Warn("could not enqueue a delivery; the sweeper will", "subscription", c.sub, "err", err)
			}
		}()
	}
	wg.Wait()
}

// chainPayload is a delivery task's payload.
type chainPayload struct {
	Sub string `json:"s"`
	Key string `json:"k"`
}

func (s *Service) enqueue(ctx context.Context, sub, key, taskID string) error {
	p, _ := json.Marshal(chainPayload{Sub: sub, Key: key})
	_, err := s.enqueuer.EnqueueContext(ctx, asynq.NewTask(TaskType, p), asynq.Queue(QueuePrefix+sub), asynq.TaskID(taskID),
		asynq.MaxRetry(1<<30), asynq.Timeout(chainTimeout+time.Minute))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// sweepLoop makes sure every chain has its task: one whose enqueue was lost (the process died
// between the accept script and the enqueue, or Redis failed) is enqueued again; an existing one
// is left alone (its task id is taken).
func (s *Service) sweepLoop() {
	defer s.wg.Done()
	for sleep(s.stop, s.opts.SweepEvery) {
		if err := s.keepOn(context.Background()); err != nil {
			s.logger.Warn("integrations: outbox flag not set", "err", err)
			continue
		}
		if err := s.Sweep(context.Background()); err != nil {
			s.logger.Warn("integrations sweep", "err", err)
		}
	}
}

// Sweep checks the chains not checked for a while (SweepEvery) and enqueues their task again.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.clock.Now()
	for _, sid := range s.order {
		due, err := s.client.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.keys.chains(sid), ByScore: true, Start: "-inf",
			Stop: now.Add(-s.opts.SweepEvery).UnixMilli(), Count: 1000}).Result()
		if err != nil {
			return err
		}
		for _, key := range due {
			tid, err := s.client.HGet(ctx, s.keys.chain(sid), key).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return err
			}
			if err := s.enqueue(ctx, sid, key, tid); err != nil {
				return err
			}
			s.client.ZAddXX(ctx, s.keys.chains(sid), redis.Z{Score: float64(now.UnixMilli()), Member: key})
		}
	}
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
