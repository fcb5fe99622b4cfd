package routing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/presence"
)

// Accept: the agent takes the card offered to it.
func (r *Router) Accept(ctx context.Context, cardID, agent string) (Card, error) {
	out, err := acceptScript.Run(ctx, r.client, acceptArgs{keys: r.keys, card: cardID, agent: agent, now: r.clock.Now().UnixMilli()})
	if err != nil {
		return Card{}, err
	}
	if err := out.err(); err != nil {
		return Card{}, err
	}
	r.startFirstResponseTimer(ctx, cardID)
	card, err := r.Card(ctx, cardID)
	if err == nil {
		// The agent's other tabs learn of it from the stream and stop offering Accept.
		r.publish(ctx, agent, Event{Type: EventCardAccepted, Card: card})
		r.recordWait(ctx, card)
	}
	return card, err
}

// Decline: the agent refuses the offer; the card goes to another eligible agent, and to this one
// again only after the queue's reoffer_after, when no agent that never refused it is left.
func (r *Router) Decline(ctx context.Context, cardID, agent string) (Card, error) {
	rels, err := r.release(ctx, cardID, agent, releaseDecline)
	for _, rel := range rels {
		if err == nil {
			err = r.Dispatch(ctx, rel.queue, rel.channel)
		}
	}
	if err != nil {
		return Card{}, err
	}
	card, err := r.Card(ctx, cardID)
	if err == nil {
		// The card may already be offered to someone else: the event names who declined it.
		r.publish(ctx, agent, Event{Type: EventCardDeclined, Card: declinedCard{ID: cardID, ConversationID: card.ConversationID, Channel: card.Channel, State: "declined"}})
	}
	return card, err
}

// declinedCard is what a declining agent's stream says of the card: only that it left this agent.
type declinedCard struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	Channel        string `json:"channel"`
	State          string `json:"state"`
}

// released is a (queue, channel) to offer again after a release.
type released struct{ queue, channel string }

// release puts an offered card back in its queue (declined, or its offer timed out) and makes its
// holder a candidate again. It returns the queues to dispatch (the card's, and the holder's others
// where it has room again); the caller dispatches them, so that a sweep of many timeouts
// dispatches each queue once, not once per card (each dispatch may scan the waiting queue).
func (r *Router) release(ctx context.Context, cardID, agent, mode string) ([]released, error) {
	// The card's queue sets the re-offer delay; an offered card does not change queue meanwhile.
	queue, err := r.client.HGet(ctx, r.keys.card(cardID), "queue").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out, err := releaseScript.Run(ctx, r.client, releaseArgs{keys: r.keys, card: cardID, agent: agent, now: r.clock.Now().UnixMilli(), mode: mode,
		reofferAfter: r.queues[queue].ReofferAfter.Milliseconds()})
	if err != nil {
		return nil, err
	}
	if out.code == "not_due" {
		return nil, nil
	}
	if err := out.err(); err != nil {
		return nil, err
	}
	holder, channel, noAnswer := out.holder, out.channel, out.noAnswer
	queue = out.queue
	if mode == releaseTimeout {
		r.metrics.timeouts.Inc()
		card, _ := r.Card(ctx, cardID)
		r.publish(ctx, holder, Event{Type: EventCardRevoked, Card: card})
		if limit := r.queues[queue].NoAnswerLimit; limit > 0 && noAnswer >= int64(limit) && r.pauser != nil {
			r.client.Del(ctx, r.keys.noAnswer(holder))
			if _, err := r.pauser.Set(ctx, holder, channel, presence.Paused, presence.CauseNoAnswer, presence.BySystem, presence.CauseNoAnswer); err != nil {
				r.logger.Warn("pause after unanswered offers failed", "agent", holder, "err", err)
			}
		}
	}
	rels := []released{{queue: queue, channel: channel}}
	for _, q := range r.candidate(ctx, holder, channel) {
		if q != queue {
			rels = append(rels, released{queue: q, channel: channel})
		}
	}
	return rels, nil
}

// Close ends the conversation of a card held by the agent (a supervisor may close any card, force);
// the card and its conversation record agent as closed_by.
func (r *Router) Close(ctx context.Context, cardID, agent string, force bool) (Card, error) {
	return r.CloseWith(ctx, cardID, agent, force, CloseDetails{})
}

// CloseWith is Close with a disposition and its note, checked against the card's queue
// (ErrDisposition); a holder who had accepted the card then begins the queue's wrap-up on its channel.
func (r *Router) CloseWith(ctx context.Context, cardID, agent string, force bool, d CloseDetails) (Card, error) {
	queue, err := r.client.HGet(ctx, r.keys.card(cardID), "queue").Result()
	if errors.Is(err, redis.Nil) {
		return Card{}, ErrNotFound
	}
	if err != nil {
		return Card{}, err
	}
	q := r.queues[queue]
	if err := checkDisposition(q, d); err != nil {
		return Card{}, err
	}
	now := r.clock.Now()
	out, err := closeScript.Run(ctx, r.client, closeArgs{keys: r.keys, card: cardID, agent: agent, now: now.UnixMilli(), force: force,
		wrapUp: q.WrapUp.Milliseconds(), disposition: d.Disposition, dispoNote: d.Note,
		reportRetention: r.reportRetentionSeconds(), reason: d.Reason, agg: r.reportAgg(now, q.ServiceLevel)})
	if err != nil {
		return Card{}, err
	}
	if err := out.err(); err != nil {
		return Card{}, err
	}
	if out.wrapUpUntil > 0 {
		r.wrapUpStarted(ctx, out.holder, out.channel, out.wrapUpUntil)
	}
	holder, queue, channel, convID := out.holder, out.queue, out.channel, out.conversationID
	if holder != agent && agent != ClosedIdle {
		// A supervisor acted on someone else's work (or on a card nobody held): an audit line.
		r.logger.Info("supervisor closed a card", "audit", "card.closed", "actor", agent, "holder", holder,
			"card", cardID, "conversation", convID, "queue", queue, "channel", channel)
	}
	card, err := r.Card(ctx, cardID)
	if err != nil {
		return Card{}, err
	}
	conv, convErr := r.Conversation(ctx, convID)
	if holder != "" {
		r.publish(ctx, holder, Event{Type: EventConversationClosed, Card: card, Conversation: conv})
		r.refreshAgent(ctx, holder, channel)
	}
	if convErr == nil {
		r.conversationClosed(ctx, conv)
	}
	return card, r.Dispatch(ctx, queue, channel)
}

// reofferScan bounds the refusals that come due handled in one sweep.
const reofferScan = 1000

// sweepReoffers dispatches the queues of the waiting cards whose refusals came due (reoffer_after
// passed since an agent declined or let the offer time out), so a card every eligible agent refused
// is offered again within one sweep of the delay. A refusal due while its agent cannot take the card
// needs no entry any more: the agent becoming eligible dispatches by itself. Entries are dropped
// after the dispatch, so a crash between the two repeats it, never skips it.
func (r *Router) sweepReoffers(ctx context.Context) error {
	due, err := r.client.ZRangeByScore(ctx, r.keys.reoffers(), &redis.ZRangeBy{Min: "-inf",
		Max: strconv.FormatInt(r.clock.Now().UnixMilli(), 10), Count: reofferScan}).Result()
	if err != nil || len(due) == 0 {
		return err
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(due))
	for i, m := range due {
		card, _, _ := strings.Cut(m, "|")
		cmds[i] = pipe.HMGet(ctx, r.keys.card(card), "state", "queue", "channel")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	touched := map[released]bool{}
	for _, c := range cmds {
		v := c.Val()
		if st, _ := v[0].(string); st == CardWaiting {
			q, _ := v[1].(string)
			ch, _ := v[2].(string)
			touched[released{queue: q, channel: ch}] = true
		}
	}
	for rel := range touched {
		if err := r.Dispatch(ctx, rel.queue, rel.channel); err != nil {
			return err
		}
	}
	members := make([]any, len(due))
	for i, m := range due {
		members[i] = m
	}
	return r.client.ZRem(ctx, r.keys.reoffers(), members...).Err()
}

// SweepTimeouts revokes every offer past its expiry and moves the card on, then offers again the
// cards whose refusals came due (sweepReoffers); several replicas may sweep.
func (r *Router) SweepTimeouts(ctx context.Context) (int, error) {
	due, err := r.client.ZRangeByScore(ctx, r.keys.offers(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(r.clock.Now().UnixMilli(), 10)}).Result()
	if err != nil {
		return 0, err
	}
	touched := map[released]bool{}
	for _, card := range due {
		rels, err := r.release(ctx, card, "", releaseTimeout)
		if err != nil && err != ErrWrongState && err != ErrNotFound {
			return 0, err
		}
		for _, rel := range rels {
			touched[rel] = true
		}
	}
	for rel := range touched {
		if err := r.Dispatch(ctx, rel.queue, rel.channel); err != nil {
			return 0, err
		}
	}
	// floor: wrap-ups that ended and first responses that came due (floor.go)
	return len(due), errors.Join(r.sweepReoffers(ctx), r.sweepWrapUps(ctx), r.sweepFirstResponses(ctx))
}

// PresenceChanged keeps the candidate sets in step with presence: a login or resume makes the agent
// a candidate and offers waiting cards; a logout gives its cards on that channel back to their queues.
func (r *Router) PresenceChanged(ctx context.Context, changes []presence.Change) {
	for _, c := range changes {
		switch c.To {
		case presence.Online:
			r.refreshAgent(ctx, c.Agent, c.Channel)
			for _, q := range r.agentQueues(c.Agent, c.Channel) {
				if err := r.Dispatch(ctx, q, c.Channel); err != nil {
					r.logger.Warn("dispatch after login failed", "agent", c.Agent, "err", err)
				}
			}
		case presence.Paused:
			for _, q := range r.agentQueues(c.Agent, c.Channel) {
				r.client.ZRem(ctx, r.keys.avail(q, c.Channel), c.Agent)
			}
		case presence.Offline:
			for _, q := range r.agentQueues(c.Agent, c.Channel) {
				r.client.ZRem(ctx, r.keys.avail(q, c.Channel), c.Agent)
			}
			if err := r.requeue(ctx, c.Agent, c.Channel); err != nil {
				r.logger.Warn("requeue after logout failed", "agent", c.Agent, "err", err)
			}
		}
	}
}

func (r *Router) agentQueues(agent, channel string) []string {
	info, ok := r.agents[agent]
	if !ok {
		return nil
	}
	if _, enabled := info.channels[channel]; !enabled {
		return nil
	}
	var out []string
	for _, q := range info.queues {
		for _, ch := range r.queues[q].Channels {
			if ch == channel {
				out = append(out, q)
			}
		}
	}
	return out
}

// refreshAgent makes the agent a candidate again (see candidate) and offers what waits in those queues.
func (r *Router) refreshAgent(ctx context.Context, agent, channel string) {
	for _, q := range r.candidate(ctx, agent, channel) {
		if err := r.Dispatch(ctx, q, channel); err != nil {
			r.logger.Warn("dispatch failed", "queue", q, "err", err)
		}
	}
}

// candidate puts the agent back in the candidate sets of its queues of the channel when it is
// online and below capacity, and returns those queues (none when it is not eligible); the offer
// script re-checks both, so a stale add is harmless. It offers nothing: the caller dispatches.
func (r *Router) candidate(ctx context.Context, agent, channel string) []string {
	queues := r.agentQueues(agent, channel)
	if len(queues) == 0 {
		return nil
	}
	// One round trip for both reads (this runs on every conversation an agent opens or closes).
	pipe := r.client.Pipeline()
	stateCmd := pipe.HGet(ctx, presence.StateKey(r.keys.ks, agent), channel)
	loadCmd := pipe.HGet(ctx, r.keys.load(agent), channel)
	_, _ = pipe.Exec(ctx)
	state, _ := stateCmd.Result()
	load, _ := loadCmd.Int()
	if !r.eligible(agent, channel, state, load) {
		return nil
	}
	now := r.clock.Now().UnixMilli()
	for _, q := range queues {
		key := r.keys.avail(q, channel)
		switch r.queues[q].Strategy {
		case "least_busy":
			r.client.ZAdd(ctx, key, redis.Z{Score: float64(load)*leastBusyLoadUnit + float64(now), Member: agent})
		case "round_robin":
			r.client.ZAddNX(ctx, key, redis.Z{Score: float64(now), Member: agent})
		default:
			r.client.ZAdd(ctx, key, redis.Z{Score: float64(now), Member: agent})
		}
	}
	return queues
}

// eligible: online on the channel and below its capacity there (the queue membership is the
// caller's, through agentQueues).
func (r *Router) eligible(agent, channel, state string, load int) bool {
	return state == string(presence.Online) && load < r.agents[agent].channels[channel]
}

func (r *Router) requeue(ctx context.Context, agent, channel string) error {
	out, err := requeueScript.Run(ctx, r.client, requeueArgs{keys: r.keys, agent: agent, channel: channel, now: r.clock.Now().UnixMilli()})
	if err != nil {
		return err
	}
	queues := map[string]bool{}
	for _, rq := range out {
		card, _ := r.Card(ctx, rq.card)
		r.publish(ctx, agent, Event{Type: EventCardRevoked, Card: card})
		queues[rq.queue] = true
	}
	for q := range queues {
		if err := r.Dispatch(ctx, q, channel); err != nil {
			return err
		}
	}
	return nil
}

// Reconcile rebuilds the candidate sets from presence and offers what waits: it covers a crash
// between a presence change and this router hearing of it. It runs every 30 s on every replica, so
// it must not disturb the strategy order: agents already in a set keep their score (ZADD NX; for
// least_busy only the load part is corrected, the time part kept), missing eligible agents are
// added, ineligible or unknown ones removed. Two pipelined round trips, whatever the agent count.
func (r *Router) Reconcile(ctx context.Context) error {
	type slot struct {
		agent, channel string
		state          *redis.StringCmd
		load           *redis.StringCmd
	}
	type set struct {
		queue, channel string
		members        *redis.ZSliceCmd
	}
	var slots []slot
	var sets []set
	read := r.client.Pipeline()
	for agent, info := range r.agents {
		for ch := range info.channels {
			slots = append(slots, slot{agent: agent, channel: ch,
				state: read.HGet(ctx, presence.StateKey(r.keys.ks, agent), ch), load: read.HGet(ctx, r.keys.load(agent), ch)})
		}
	}
	for _, q := range r.orderedQueues() {
		for _, ch := range q.Channels {
			sets = append(sets, set{queue: q.ID, channel: ch, members: read.ZRangeWithScores(ctx, r.keys.avail(q.ID, ch), 0, -1)})
		}
	}
	cmds, _ := read.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) { // a missing field is no error
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	eligible := map[[2]string]map[string]int{} // (queue, channel) → agent → load
	for _, s := range slots {
		load, _ := strconv.Atoi(s.load.Val())
		if !r.eligible(s.agent, s.channel, s.state.Val(), load) {
			continue
		}
		for _, q := range r.agentQueues(s.agent, s.channel) {
			k := [2]string{q, s.channel}
			if eligible[k] == nil {
				eligible[k] = map[string]int{}
			}
			eligible[k][s.agent] = load
		}
	}
	now := float64(r.clock.Now().UnixMilli())
	write := r.client.Pipeline()
	for _, s := range sets {
		key := r.keys.avail(s.queue, s.channel)
		want := eligible[[2]string{s.queue, s.channel}]
		present := map[string]float64{}
		for _, z := range s.members.Val() {
			a := z.Member.(string)
			present[a] = z.Score
			if _, ok := want[a]; !ok {
				write.ZRem(ctx, key, a)
			}
		}
		for agent, load := range want {
			score, in := present[agent]
			switch {
			case r.queues[s.queue].Strategy == "least_busy":
				// Score is load·1e13 + last offer ms: fix the load, keep the time.
				at := now
				if in {
					at = math.Mod(score, leastBusyLoadUnit)
				}
				if next := float64(load)*leastBusyLoadUnit + at; !in || next != score {
					write.ZAdd(ctx, key, redis.Z{Score: next, Member: agent})
				}
			case !in:
				write.ZAddNX(ctx, key, redis.Z{Score: now, Member: agent})
			}
		}
	}
	if _, err := write.Exec(ctx); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	for _, s := range sets {
		if err := r.Dispatch(ctx, s.queue, s.channel); err != nil {
			return err
		}
	}
	return nil
}

// Sweeper drives offer timeouts and periodic reconciliation; it survives restarts because the
// offers live in a Redis sorted set.
type Sweeper struct {
	router    *Router
	interval  time.Duration
	reconcile time.Duration
	stop      chan struct{}
	wg        sync.WaitGroup
}

// NewSweeper builds a sweeper that checks offers every interval and reconciles every reconcile.
func NewSweeper(r *Router, interval, reconcile time.Duration) *Sweeper {
	return &Sweeper{router: r, interval: interval, reconcile: reconcile, stop: make(chan struct{})}
}

// Start begins sweeping.
func (s *Sweeper) Start() error {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.interval)
		defer t.Stop()
		last := time.Now()
		var lastPositions time.Time
		synced := false
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), 10*s.interval)
				if !synced {
					// Capacities come from configuration; retried until Redis answers.
					synced = s.router.SyncCapacity(ctx) == nil
				}
				if _, err := s.router.SweepTimeouts(ctx); err != nil {
					s.router.logger.Warn("offer sweep failed", "err", err)
				}
				if _, err := s.router.SweepMaxWait(ctx); err != nil {
					s.router.logger.Warn("max-wait sweep failed", "err", err)
				}
				// Places in line are told in minutes: every five seconds is soon enough.
				if time.Since(lastPositions) >= 5*time.Second {
					lastPositions = time.Now()
					if _, err := s.router.SweepPositions(ctx); err != nil {
						s.router.logger.Warn("position sweep failed", "err", err)
					}
				}
				if _, err := s.router.SweepRetention(ctx); err != nil {
					s.router.logger.Warn("retention sweep failed", "err", err)
				}
				if time.Since(last) >= s.reconcile {
					last = time.Now()
					if err := s.router.Reconcile(ctx); err != nil {
						s.router.logger.Warn("reconcile failed", "err", err)
					}
				}
				cancel()
			}
		}
	}()
	return nil
}

// Shutdown stops sweeping.
func (s *Sweeper) Shutdown() {
	close(s.stop)
	s.wg.Wait()
}
