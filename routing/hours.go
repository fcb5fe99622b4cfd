package routing

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/luascript"
)

// Business hours and the customer's place in line (issue 17).
//
// Decision: business hours govern what customers are told, not what agents may do. A card that
// arrives while its queue is closed waits (closed_action wait) and is offered as usual to an agent
// who is logged in after hours: an operator who keeps someone on shift wants them to serve, and a
// customer waiting for the opening is offered the moment the first agent logs in.

// Reasons of the automatic messages added here, and closed_by of an out-of-hours close.
const (
	AutoReplyClosed   = "closed"
	AutoReplyPosition = "position"
	ClosedOutOfHours  = "out_of_hours"
)

// Keys of this file (all under the tenant's hash tag):
//
//	cg:{t}:closednotice:<conversation>  STRING  ms of the opening that ends the closed period it was told of
//	cg:{t}:waits:<queue>                LIST    recent waits "accepted ms:wait ms", newest first (recentWaits kept)
func (k keys) closedNotice(conv string) string { return k.ks.Key("closednotice", conv) }
func (k keys) waits(queue string) string       { return k.ks.Key("waits", queue) }

// recentWaits bounds the record of a queue's waits the estimate reads.
const recentWaits = 20

// compileSchedules builds each queue's schedule; the configuration was validated, so a queue whose
// hours fail to compile here has none (always open).
func compileSchedules(queues []configs.Queue) map[string]*configs.Schedule {
	out := map[string]*configs.Schedule{}
	for _, q := range queues {
		if q.Hours == nil {
			continue
		}
		if s, err := q.Hours.Compile(); err == nil {
			out[q.ID] = s
		}
	}
	return out
}

// QueueOpen reports whether the queue is within its business hours at now and when that changes
// (zero: never, as for a queue without hours, always open).
func (r *Router) QueueOpen(queue string, now time.Time) (bool, time.Time) {
	s := r.schedules[queue]
	if s == nil {
		return true, time.Time{}
	}
	return s.At(now)
}

// floorCheck is a message recorded while its conversation waits, to be answered if the queue is closed.
type floorCheck struct{ queue, channel, conversation, card string }

// answerOutOfHours tells a customer who wrote while the queue is closed, once per conversation and
// closed period, and with closed_action close ends the conversation (closed_by out_of_hours). It
// reports whether the queue was closed.
func (r *Router) answerOutOfHours(ctx context.Context, fc floorCheck) bool {
	q := r.queues[fc.queue]
	open, opens := r.QueueOpen(fc.queue, r.clock.Now())
	if open {
		return false
	}
	if q.ClosedMessage != "" && r.autoReplier != nil {
		period := "never"
		ttl := 7 * 24 * time.Hour
		if !opens.IsZero() {
			period = strconv.FormatInt(opens.UnixMilli(), 10)
			ttl = opens.Sub(r.clock.Now()) + time.Hour
		}
		// SET … GET: one step tells whether this closed period was already announced to it.
		prev, err := r.client.SetArgs(ctx, r.keys.closedNotice(fc.conversation), period, redis.SetArgs{Get: true, TTL: ttl}).Result()
		if err != nil && err != redis.Nil {
			r.logger.Warn("closed message not sent", "conversation_id", fc.conversation, "err", err)
		} else if prev != period {
			if conv, err := r.Conversation(ctx, fc.conversation); err == nil {
				if err := r.autoReplier.AutoReply(ctx, conv, q.ClosedMessage); err != nil {
					r.logger.Warn("closed message not sent", "conversation_id", fc.conversation, "err", err)
				} else {
					r.metrics.autoReplies.WithLabelValues(AutoReplyClosed).Inc()
				}
			}
		}
	}
	if q.ClosedAction == "close" && fc.card != "" {
		if _, err := r.CloseWith(ctx, fc.card, ClosedOutOfHours, true, CloseDetails{Reason: ClosedOutOfHours}); err != nil {
			r.logger.Warn("out-of-hours close failed", "card_id", fc.card, "err", err)
		}
	}
	return true
}

// recordWait keeps the accepted card's wait in its queue's bounded record (for the estimate).
func (r *Router) recordWait(ctx context.Context, card Card) {
	if card.AcceptedAt == nil || card.CreatedAt.IsZero() {
		return
	}
	wait := max(card.AcceptedAt.Sub(card.CreatedAt), 0)
	pipe := r.client.Pipeline()
	pipe.LPush(ctx, r.keys.waits(card.Queue), fmt.Sprintf("%d:%d", card.AcceptedAt.UnixMilli(), wait.Milliseconds()))
	pipe.LTrim(ctx, r.keys.waits(card.Queue), 0, recentWaits-1)
	if _, err := pipe.Exec(ctx); err != nil {
		r.logger.Debug("wait not recorded", "queue", card.Queue, "err", err)
	}
}

// EstimateWait estimates how long the customer at position (1 first) still waits: position times
// the interval between recent accepts in the queue (its recent pace); with a single recorded wait,
// that wait times position. ok is false without any record.
func (r *Router) EstimateWait(ctx context.Context, queue string, position int) (time.Duration, bool) {
	rows, err := r.client.LRange(ctx, r.keys.waits(queue), 0, recentWaits-1).Result()
	if err != nil || len(rows) == 0 {
		return 0, false
	}
	var accepts []int64
	var waits []int64
	for _, row := range rows {
		a, w, ok := strings.Cut(row, ":")
		at, err1 := strconv.ParseInt(a, 10, 64)
		ms, err2 := strconv.ParseInt(w, 10, 64)
		if ok && err1 == nil && err2 == nil {
			accepts, waits = append(accepts, at), append(waits, ms)
		}
	}
	if len(accepts) == 0 {
		return 0, false
	}
	slices.Sort(accepts)
	if span := accepts[len(accepts)-1] - accepts[0]; len(accepts) >= 2 && span > 0 {
		pace := time.Duration(span/int64(len(accepts)-1)) * time.Millisecond
		// Never below the typical wait's share: a burst of accepts must not promise seconds.
		slices.Sort(waits)
		median := time.Duration(waits[len(waits)/2]) * time.Millisecond
		return max(pace*time.Duration(position), median/2), true
	}
	return time.Duration(waits[0]) * time.Millisecond * time.Duration(position), true
}

// WordEstimate says a wait the way a person would, in pt-BR or en: "menos de 1 minuto",
// "cerca de 5 minutos", "cerca de 1 hora e 30 minutos"; "alguns minutos" when nothing is known.
// Minutes round up to 1 … 5, then to the nearest multiple of 5; an hour or more to the half hour.
func WordEstimate(d time.Duration, known bool, lang string) string {
	en := lang == "en"
	if !known {
		if en {
			return "a few minutes"
		}
		return "alguns minutos"
	}
	if d < time.Minute {
		if en {
			return "less than 1 minute"
		}
		return "menos de 1 minuto"
	}
	mins := int(math.Ceil(d.Minutes()))
	if mins > 5 {
		mins = (mins + 2) / 5 * 5 // the nearest 5: nobody reads "cerca de 13 minutos" as an estimate
	}
	if mins < 60 {
		if en {
			return fmt.Sprintf("about %d %s", mins, plural(mins, "minute", "minutes"))
		}
		return fmt.Sprintf("cerca de %d %s", mins, plural(mins, "minuto", "minutos"))
	}
	halves := int(math.Round(d.Minutes() / 30))
	h, half := halves/2, halves%2 == 1
	if en {
		if half {
			return fmt.Sprintf("about %d %s and 30 minutes", h, plural(h, "hour", "hours"))
		}
		return fmt.Sprintf("about %d %s", h, plural(h, "hour", "hours"))
	}
	if half {
		return fmt.Sprintf("cerca de %d %s e 30 minutos", h, plural(h, "hora", "horas"))
	}
	return fmt.Sprintf("cerca de %d %s", h, plural(h, "hora", "horas"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// positionScan bounds the waiting cards examined per queue and channel in one sweep.
const positionScan = 200

// positionClaimScript claims the right to tell a waiting card its place: only while the card waits
// (never once offered or accepted), after position_after of waiting, at most every position_every,
// and only when the place changed since the last message. Several replicas may sweep: the claim is
// the card's, so one of them sends.
//
// On a channel with a customer service window (ARGV[5] = 1) the conversation's window must be open;
// that is checked before the claim, so a customer who writes again (reopening it) is told.
//
// KEYS[1] card. ARGV: 1 now ms, 2 after ms, 3 every ms, 4 position, 5 window flag, 6 key prefix.
// Returns {code, conversation id}: claimed, or why not (state, early, recent, same, window).
var positionClaimScript = luascript.New[positionClaimArgs, positionClaimReply]("position_claim", `
local c = redis.call('HMGET', KEYS[1], 'state', 'created_at', 'position_at', 'position_sent', 'conversation_id')
if c[1] ~= 'waiting' then return {'state', ''} end
local now = tonumber(ARGV[1])
if now - tonumber(c[2] or '0') < tonumber(ARGV[2]) then return {'early', ''} end
if c[3] and c[3] ~= '' and now - tonumber(c[3]) < tonumber(ARGV[3]) then return {'recent', ''} end
if c[4] == ARGV[4] then return {'same', ''} end
if ARGV[5] == '1' then
  local exp = redis.call('HGET', ARGV[6] .. 'conv:' .. (c[5] or ''), 'window_expires_at')
  if not exp or exp == '' or tonumber(exp) <= now then return {'window', ''} end
end
redis.call('HSET', KEYS[1], 'position_at', ARGV[1], 'position_sent', ARGV[4])
return {'claimed', c[5] or ''}
`, parsePositionClaim)

type positionClaimArgs struct {
	keys              keys
	card              string
	now, after, every int64
	position          int
	window            bool
}

func (a positionClaimArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.card(a.card)}, []any{a.now, a.after, a.every, a.position, luascript.Flag(a.window), a.keys.prefix()}
}

type positionClaimReply struct{ code, conversationID string }

func parsePositionClaim(v any) (positionClaimReply, error) {
	a, code, err := luascript.Coded(v)
	if err != nil {
		return positionClaimReply{}, err
	}
	return positionClaimReply{code: code, conversationID: a.Str(1)}, nil
}

// SweepPositions tells waiting customers their place in line (queues with position_message): after
// position_after of waiting, then every position_every (default position_after) when the place
// changed. On a channel with a customer service window (WhatsApp's 24 hours) nothing is sent once it
// closed: the customer would get a failure, not a message. It returns how many messages were sent.
func (r *Router) SweepPositions(ctx context.Context) (int, error) {
	now := r.clock.Now()
	sent := 0
	for _, q := range r.orderedQueues() {
		if q.PositionMessage == "" || r.autoReplier == nil {
			continue
		}
		every := q.PositionEvery
		if every <= 0 {
			every = max(q.PositionAfter, time.Minute)
		}
		for _, ch := range q.Channels {
			cards, err := r.client.ZRange(ctx, r.keys.waiting(q.ID, ch), 0, positionScan-1).Result()
			if err != nil {
				return sent, err
			}
			for i, card := range cards {
				n, err := r.tellPosition(ctx, q, ch, card, i+1, every, now)
				if err != nil {
					return sent, err
				}
				sent += n
			}
		}
	}
	return sent, nil
}

func (r *Router) tellPosition(ctx context.Context, q configs.Queue, channel, card string, position int, every time.Duration, now time.Time) (int, error) {
	out, err := positionClaimScript.Run(ctx, r.client, positionClaimArgs{keys: r.keys, card: card, now: now.UnixMilli(),
		after: q.PositionAfter.Milliseconds(), every: every.Milliseconds(), position: position,
		window: r.topo.Channel(channel).Window > 0})
	if err != nil {
		return 0, err
	}
	if out.code != "claimed" {
		return 0, nil
	}
	conv, err := r.Conversation(ctx, out.conversationID)
	if err != nil {
		return 0, nil
	}
	est, known := r.EstimateWait(ctx, q.ID, position)
	text := strings.NewReplacer("{{position}}", strconv.Itoa(position),
		"{{estimated_wait}}", WordEstimate(est, known, q.PositionLanguage)).Replace(q.PositionMessage)
	if err := r.autoReplier.AutoReply(ctx, conv, text); err != nil {
		r.logger.Warn("position message not sent", "conversation_id", conv.ID, "err", err)
		return 0, nil
	}
	r.metrics.autoReplies.WithLabelValues(AutoReplyPosition).Inc()
	return 1, nil
}
