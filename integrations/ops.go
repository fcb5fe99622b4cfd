package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/outbox"
)

// SubscriptionStatus is one subscription as the operations view shows it.
type SubscriptionStatus struct {
	ID     string   `json:"id"`
	Host   string   `json:"host"` // the receiver's host only: a URL may carry a token
	Events []string `json:"events,omitempty"`
	Queues []string `json:"queues,omitempty"`
	// State is healthy, unhealthy (failing continuously) or disabled (it answered 410 Gone).
	State         string     `json:"state"`
	Failures      int64      `json:"failures"`
	FailingSince  *time.Time `json:"failing_since,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// Pending counts the conversations (and agents) with events waiting for delivery.
	Pending     int64 `json:"pending"`
	DeadLetters int64 `json:"dead_letters"`
}

// Status is the integrations' state for operators.
type Status struct {
	Subscriptions []SubscriptionStatus `json:"subscriptions"`
	Outbox        int64                `json:"outbox"`
	Held          Holds                `json:"held"`
}

// Status reads every subscription's health and backlog.
func (s *Service) Status(ctx context.Context) (Status, error) {
	pipe := s.client.Pipeline()
	type cmds struct {
		health *redis.MapStringStringCmd
		chains *redis.IntCmd
		dead   *redis.IntCmd
	}
	cs := make([]cmds, len(s.order))
	for i, id := range s.order {
		cs[i] = cmds{pipe.HGetAll(ctx, s.keys.health(id)), pipe.HLen(ctx, s.keys.chain(id)), pipe.ZCard(ctx, s.keys.dead(id))}
	}
	xl := pipe.XLen(ctx, outbox.StreamKey(s.ks))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Status{}, err
	}
	st := Status{Outbox: xl.Val(), Subscriptions: make([]SubscriptionStatus, 0, len(s.order))}
	for i, id := range s.order {
		sub, h := s.subs[id], cs[i].health.Val()
		host := ""
		if u, err := url.Parse(sub.URL); err == nil {
			host = u.Host
		}
		failures, _ := strconv.ParseInt(h["failures"], 10, 64)
		st.Subscriptions = append(st.Subscriptions, SubscriptionStatus{ID: id, Host: host, Events: sub.events, Queues: sub.queues,
			State: firstNonEmpty(h["state"], "healthy"), Failures: failures, FailingSince: msPtr(h["failing_since"]),
			LastError: h["last_error"], LastSuccessAt: msPtr(h["last_success_at"]), Pending: cs[i].chains.Val(), DeadLetters: cs[i].dead.Val()})
	}
	held, err := s.HeldTotal(ctx)
	if err != nil {
		return Status{}, err
	}
	st.Held = held
	return st, nil
}

func msPtr(s string) *time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// DeadLetter is a dead-lettered event (never its body: it holds customers' data).
type DeadLetter struct {
	ID             string    `json:"id"` // the webhook-id
	Type           string    `json:"type"`
	ConversationID string    `json:"conversation_id,omitempty"`
	DeadAt         time.Time `json:"dead_at"`
	Error          string    `json:"error"`
	Attempts       int64     `json:"attempts"`
}

// ErrNoSubscription: no such subscription is configured.
var ErrNoSubscription = errors.New("no such subscription")

// ErrNoDeadLetter: no such dead letter.
var ErrNoDeadLetter = errors.New("no such dead letter")

// DeadLetters lists a subscription's dead letters, oldest first (at most limit).
func (s *Service) DeadLetters(ctx context.Context, sub string, limit int64) ([]DeadLetter, error) {
	if s.subs[sub] == nil {
		return nil, ErrNoSubscription
	}
	zs, err := s.client.ZRangeWithScores(ctx, s.keys.dead(sub), 0, limit-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(zs))
	for _, z := range zs {
		id := z.Member.(string)
		d := DeadLetter{ID: id, DeadAt: time.UnixMilli(int64(z.Score)).UTC()}
		var info struct {
			Key      string `json:"key"`
			Type     string `json:"type"`
			Error    string `json:"error"`
			Attempts int64  `json:"attempts"`
		}
		if raw, err := s.client.HGet(ctx, s.keys.deadInfo(sub), id).Result(); err == nil && json.Unmarshal([]byte(raw), &info) == nil {
			d.Type, d.Error, d.Attempts = info.Type, info.Error, info.Attempts
			if len(info.Key) > 0 && info.Key[:min(2, len(info.Key))] != agentKeyPrefix {
				d.ConversationID = info.Key
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// RetryDeadLetter puts a dead letter back at the end of its conversation's list (same webhook-id).
func (s *Service) RetryDeadLetter(ctx context.Context, sub, eventID string) error {
	return s.deadAction(ctx, sub, eventID, true)
}

// DeleteDeadLetter forgets a dead letter (and releases its hold on the conversation).
func (s *Service) DeleteDeadLetter(ctx context.Context, sub, eventID string) error {
	return s.deadAction(ctx, sub, eventID, false)
}

func (s *Service) deadAction(ctx context.Context, sub, eventID string, retry bool) error {
	if s.subs[sub] == nil {
		return ErrNoSubscription
	}
	r, err := deadScript.Run(ctx, s.client, deadArgs{keys: s.keys, sub: sub, eventID: eventID, retry: retry,
		now: s.clock.Now().UnixMilli(), retain: s.opts.RetainEvents.Milliseconds()})
	if err != nil {
		return err
	}
	if !r.found {
		return ErrNoDeadLetter
	}
	s.startChains(ctx, r.starts)
	return nil
}

// Replay sends again to a subscription every retained event it wants from since on, with their
// original webhook-ids, in order per conversation after what is already waiting. Returns how many.
func (s *Service) Replay(ctx context.Context, sub string, since time.Time) (int64, error) {
	w := s.subs[sub]
	if w == nil {
		return 0, ErrNoSubscription
	}
	var total int64
	from := strconv.FormatInt(since.UnixMilli(), 10)
	for {
		zs, err := s.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: s.keys.events(), ByScore: true, Start: from, Stop: "+inf",
			Count: 500}).Result()
		if err != nil {
			return total, err
		}
		if len(zs) == 0 {
			return total, nil
		}
		pipe := s.client.Pipeline()
		meta := make([]*redis.SliceCmd, len(zs))
		for i, z := range zs {
			meta[i] = pipe.HMGet(ctx, s.keys.ev(z.Member.(string)), "t", "k", "q")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return total, err
		}
		var batch [][2]string
		for i, z := range zs {
			v := meta[i].Val()
			typ, _ := v[0].(string)
			key, _ := v[1].(string)
			queue, _ := v[2].(string)
			if typ == "" || key == "" {
				continue
			}
			if w.wants(typ, queue) {
				batch = append(batch, [2]string{z.Member.(string), key})
			}
		}
		if len(batch) > 0 {
			r, err := replayScript.Run(ctx, s.client, replayArgs{keys: s.keys, sub: sub, now: s.clock.Now().UnixMilli(), events: batch})
			if err != nil {
				return total, err
			}
			if r.disabled {
				return total, ErrDisabled
			}
			total += r.pushed
			s.startChains(ctx, r.starts)
		}
		if len(zs) < 500 {
			return total, nil
		}
		// next page: after the last score (events at the same ms as the last are pushed again at most
		// once more; receivers dedup by webhook-id)
		from = "(" + strconv.FormatInt(int64(zs[len(zs)-1].Score), 10)
	}
}

// ErrDisabled: the subscription is disabled (enable it first).
var ErrDisabled = errors.New("the subscription is disabled")

// Enable clears a subscription's disabled (or unhealthy) state; events flow to it again from now on
// (a replay sends what it missed).
func (s *Service) Enable(ctx context.Context, sub string) error {
	if s.subs[sub] == nil {
		return ErrNoSubscription
	}
	if err := s.client.Del(ctx, s.keys.health(sub)).Err(); err != nil {
		return err
	}
	s.logger.Info("subscription enabled by an operator", "subscription", sub)
	return nil
}

// ---- HTTP ----------------------------------------------------------------------------------------

// Register mounts the operations API on an admin-only router (/v1/ops).
func (s *Service) Register(ops fiber.Router) {
	ops.Get("/integrations", s.httpStatus)
	ops.Get("/integrations/:id/dead-letters", s.httpDead)
	ops.Post("/integrations/:id/dead-letters/:event/retry", s.httpDeadAction(true))
	ops.Delete("/integrations/:id/dead-letters/:event", s.httpDeadAction(false))
	ops.Post("/integrations/:id/replay", s.httpReplay)
	ops.Post("/integrations/:id/enable", s.httpEnable)
}

func opsError(err error) error {
	switch {
	case errors.Is(err, ErrNoSubscription):
		return httpx.ErrSubscriptionNotFound
	case errors.Is(err, ErrNoDeadLetter):
		return httpx.ErrDeadLetterNotFound
	case errors.Is(err, ErrDisabled):
		return httpx.ErrSubscriptionDisabled
	}
	return err
}

func (s *Service) httpStatus(c *fiber.Ctx) error {
	st, err := s.Status(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Service) httpDead(c *fiber.Ctx) error {
	limit := int64(c.QueryInt("limit", 100))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	d, err := s.DeadLetters(c.UserContext(), c.Params("id"), limit)
	if err != nil {
		return opsError(err)
	}
	return c.JSON(fiber.Map{"dead_letters": d})
}

func (s *Service) httpDeadAction(retry bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := s.deadAction(c.UserContext(), c.Params("id"), c.Params("event"), retry); err != nil {
			return opsError(err)
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}

func (s *Service) httpReplay(c *fiber.Ctx) error {
	var req struct {
		Since string `json:"since"`
	}
	if err := httpx.BindJSON(c, &req); err != nil {
		return err
	}
	since, err := time.Parse(time.RFC3339, req.Since)
	if err != nil {
		return httpx.ErrInvalidSince
	}
	if s.subs[c.Params("id")] == nil {
		return httpx.ErrSubscriptionNotFound
	}
	n, err := s.Replay(c.UserContext(), c.Params("id"), since)
	if err != nil {
		return opsError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"replayed": n})
}

func (s *Service) httpEnable(c *fiber.Ctx) error {
	if err := s.Enable(c.UserContext(), c.Params("id")); err != nil {
		return opsError(err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
