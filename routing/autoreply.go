package routing

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// AutoReplier sends the gateway's own message to a customer (outbound.Service satisfies it).
type AutoReplier interface {
	AutoReply(ctx context.Context, conv Conversation, text string) error
}

// Reasons an automatic message is sent.
const (
	AutoReplyNoAgents = "no_agents"
	AutoReplyMaxWait  = "max_wait"
)

// SetAutoReplier lets routing answer customers itself: a queue's no_agents_message when a
// conversation arrives while nobody is logged in on its channel, and its max_wait_message when a
// wait ends with max_wait_action close.
func (r *Router) SetAutoReplier(a AutoReplier) { r.autoReplier = a }

// nobodyLoggedIn reports whether no member of the queue is logged in (online or paused) on channel.
func (r *Router) nobodyLoggedIn(ctx context.Context, queue, channel string) (bool, error) {
	members := r.members[queue]
	if len(members) == 0 {
		return true, nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StringCmd, 0, len(members))
	for _, a := range members {
		if _, ok := r.agents[a].channels[channel]; ok {
			cmds = append(cmds, pipe.HGet(ctx, r.keys.prefix()+"presence:"+a, channel))
		}
	}
	if len(cmds) == 0 {
		return true, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return false, err
	}
	for _, c := range cmds {
		if st := c.Val(); st == "online" || st == "paused" {
			return false, nil
		}
	}
	return true, nil
}

// greetIfNobody sends the queue's no-agents message for a conversation that just arrived while
// nobody can answer. The card still waits.
func (r *Router) greetIfNobody(ctx context.Context, queue, channel, convID string) {
	q := r.queues[queue]
	if r.autoReplier == nil || q.NoAgentsMessage == "" {
		return
	}
	nobody, err := r.nobodyLoggedIn(ctx, queue, channel)
	if err != nil || !nobody {
		return
	}
	conv, err := r.Conversation(ctx, convID)
	if err != nil {
		return
	}
	if err := r.autoReplier.AutoReply(ctx, conv, q.NoAgentsMessage); err != nil {
		r.logger.Warn("no-agents message not sent", "conversation_id", convID, "err", err)
		return
	}
	r.metrics.autoReplies.WithLabelValues(AutoReplyNoAgents).Inc()
}

// maxWaitScan bounds the cards examined per queue and channel in one sweep.
const maxWaitScan = 200

// SweepMaxWait ends the waits that passed their queue's max_wait: with action keep the card stays
// in line and is counted once; with close the customer gets the queue's max_wait_message and the
// conversation closes; with overflow the card goes first in line in the queue's overflow_queue. The wait counts from the card's creation. Several replicas may sweep.
func (r *Router) SweepMaxWait(ctx context.Context) (int, error) {
	now := r.clock.Now()
	handled := 0
	for id, q := range r.queues {
		if q.MaxWait <= 0 {
			continue
		}
		action := q.MaxWaitAction
		if action == "" {
			action = "keep"
		}
		for _, ch := range q.Channels {
			// Positions are enqueue times (requeued cards sort first with a large negative offset), so
			// every card due is within this score range; created_at decides.
			max := strconv.FormatInt(now.Add(-q.MaxWait).UnixMilli(), 10)
			cards, err := r.client.ZRangeByScore(ctx, r.keys.waiting(id, ch), &redis.ZRangeBy{Min: "-inf", Max: max, Count: maxWaitScan}).Result()
			if err != nil {
				return handled, err
			}
			for _, card := range cards {
				out, err := maxWaitScript.Run(ctx, r.client, maxWaitArgs{keys: r.keys, card: card, queue: id, channel: ch,
					now: now.UnixMilli(), maxWait: q.MaxWait.Milliseconds(), action: action, overflowQueue: q.OverflowQueue,
					reportRetention: r.reportRetentionSeconds(), agg: r.reportAgg(now, q.ServiceLevel)})
				if err != nil {
					return handled, err
				}
				switch out.code {
				case "kept":
					handled++
					r.metrics.maxWait.WithLabelValues(id, "keep").Inc()
					r.logger.Info("card waited past the queue's maximum", "queue", id, "channel", ch, "card_id", card)
				case "overflowed":
					handled++
					r.metrics.maxWait.WithLabelValues(id, "overflow").Inc()
					r.logger.Info("card moved to the overflow queue", "queue", id, "overflow_queue", q.OverflowQueue, "channel", ch, "card_id", card)
					if err := r.Dispatch(ctx, q.OverflowQueue, ch); err != nil {
						return handled, err
					}
				case "closed":
					handled++
					r.metrics.maxWait.WithLabelValues(id, "close").Inc()
					conv, err := r.Conversation(ctx, out.conversationID)
					if err != nil {
						continue
					}
					if r.autoReplier != nil && q.MaxWaitMessage != "" {
						if err := r.autoReplier.AutoReply(ctx, conv, q.MaxWaitMessage); err != nil {
							r.logger.Warn("max-wait message not sent", "conversation_id", conv.ID, "err", err)
						} else {
							r.metrics.autoReplies.WithLabelValues(AutoReplyMaxWait).Inc()
						}
					}
					r.conversationClosed(ctx, conv)
				}
			}
		}
	}
	return handled, nil
}
