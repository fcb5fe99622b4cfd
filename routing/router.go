package routing

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/counters"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// Errors of routing; the HTTP layer maps each to its status and code.
var (
	ErrNotFound       = errors.New("not found")
	ErrNotYours       = errors.New("the card is not offered to or held by this agent")
	ErrWrongState     = errors.New("the card is not in a state that allows this")
	ErrUnknownQueue   = errors.New("unknown queue")
	ErrUnknownChannel = errors.New("unknown channel")
)

// Tunables that are not configuration.
const (
	dedupTTL      = 7 * 24 * time.Hour // Meta retries a notification for up to seven days
	cardsToScan   = 16
	agentsToScan  = 32
	previewLength = 140
	// least_busy scores are load·leastBusyLoadUnit + last offer ms (the offer script uses the same).
	leastBusyLoadUnit = 1e13
)

// Pauser pauses an agent who lets offers time out (presence.Store satisfies it).
type Pauser interface {
	Set(ctx context.Context, agent, channel string, want presence.State, reason, by, cause string) (presence.Result, error)
}

// Options are the router's collaborators.
type Options struct {
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Publisher  Publisher
	Pauser     Pauser
	// Audit records every offer with the agent's state at that moment (tests check invariants with it).
	Audit bool
	// Supervisors, when set, receives the floor's events for supervisors (SetSupervisorPublisher too).
	Supervisors SupervisorPublisher
	// ReportRetention keeps closed conversations' report rows (reports.detail_retention; 0: 35 days).
	ReportRetention time.Duration
	// ReportSummaryRetention keeps the daily aggregates (reports.summary_retention; 0: 400 days) and
	// ReportLocation decides their day and hour (reports.timezone; nil: UTC).
	ReportSummaryRetention time.Duration
	ReportLocation         *time.Location
	// Retention: how long closed conversations are kept, when silent ones close (retention.go).
	Retention RetentionOptions
}

type agentInfo struct {
	queues   []string
	channels map[string]int // channel → capacity
}

// Router routes conversations to agents.
type Router struct {
	client redis.UniversalClient
	keys   keys
	clock  clock.Clock
	logger *slog.Logger
	pub    Publisher
	// offeredLog: the intake script appends card.offered of a card it offers to this log itself (the
	// publisher allows it: scriptAppender); nil when it passes through pub.
	offeredLog *StreamLog
	pauser     Pauser
	audit      bool
	topo       *topology.Topology
	queues     map[string]configs.Queue
	agents     map[string]agentInfo
	entries    map[string]string // "channel:entry point" → queue
	// entryList is each channel's entry points, one a line: a contact merge moves conversations on all of them.
	entryList        map[string]string
	members          map[string][]string          // queue → agents
	schedules        map[string]*configs.Schedule // queue → business hours (none: always open)
	metrics          routerMetrics
	retention        RetentionOptions
	retentionMetrics retentionMetrics
	// autoReplier is set once at wiring, before traffic.
	autoReplier AutoReplier
	intake      *batcher[deliverArgs, deliverReply]
	offers      *batcher[offerArgs, decision] // concurrent dispatchers share round trips, each decision still one script

	listenersMu sync.RWMutex
	listeners   []ConversationListener
	supervisors atomic.Pointer[SupervisorPublisher]

	// reportRetention keeps closed conversations' report rows (reportLua).
	reportRetention time.Duration
	// reportSummaryRetention and reportLocation: the daily aggregates (reportLua).
	reportSummaryRetention time.Duration
	reportLocation         *time.Location
}

// ConversationListener hears of conversations that end (a channel tells its customer, for example).
type ConversationListener interface {
	ConversationClosed(ctx context.Context, conv Conversation)
}

// AddConversationListener registers a party to be told of every conversation that closes.
func (r *Router) AddConversationListener(l ConversationListener) {
	r.listenersMu.Lock()
	defer r.listenersMu.Unlock()
	r.listeners = append(r.listeners, l)
}

func (r *Router) conversationClosed(ctx context.Context, conv Conversation) {
	r.listenersMu.RLock()
	ls := r.listeners
	r.listenersMu.RUnlock()
	for _, l := range ls {
		l.ConversationClosed(ctx, conv)
	}
}

type routerMetrics struct {
	delivered   *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	offers      *prometheus.CounterVec
	timeouts    prometheus.Counter
	autoReplies *prometheus.CounterVec
	maxWait     *prometheus.CounterVec
	floor       floorMetrics
	// the children of delivered and duplicates by channel, counted for every message
	deliveredOf, duplicatesOf *counters.ByLabel
}

// NewRouter builds a router on the topology's queues, agents and entry points.
func NewRouter(client redis.UniversalClient, ks keyspace.Space, topo *topology.Topology, opts Options) *Router {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Publisher == nil {
		opts.Publisher = NewStreamLog(client, ks, 0)
	}
	r := &Router{client: client, keys: keys{ks}, clock: opts.Clock, logger: opts.Logger.With("component", "routing"),
		pub: opts.Publisher, pauser: opts.Pauser, audit: opts.Audit, reportRetention: opts.ReportRetention, topo: topo,
		reportSummaryRetention: opts.ReportSummaryRetention, reportLocation: opts.ReportLocation,
		queues: map[string]configs.Queue{}, agents: map[string]agentInfo{}, entries: map[string]string{}, members: map[string][]string{},
		entryList: map[string]string{},
		metrics: routerMetrics{
			delivered:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_messages_total", Help: "Inbound messages recorded, by channel."}, []string{"channel"}),
			duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_duplicates_total", Help: "Redelivered inbound messages recognised, by channel."}, []string{"channel"}),
			offers:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_offers_total", Help: "Cards offered, by queue."}, []string{"queue"}),
			timeouts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "chatgate_routing_offer_timeouts_total", Help: "Offers that timed out."}),
			autoReplies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_auto_replies_total",
				Help: "Automatic messages sent to customers, by reason (no_agents, max_wait, closed, position)."}, []string{"reason"}),
			maxWait: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_routing_max_wait_total",
				Help: "Waits that passed their queue's maximum, by queue and action."}, []string{"queue", "action"}),
			floor: newFloorMetrics(),
		}}
	r.metrics.deliveredOf, r.metrics.duplicatesOf = counters.New(r.metrics.delivered), counters.New(r.metrics.duplicates)
	if opts.Supervisors != nil {
		r.SetSupervisorPublisher(opts.Supervisors)
	}
	if opts.Retention.ClosedConversations <= 0 {
		opts.Retention.ClosedConversations = 7 * 24 * time.Hour
	}
	r.retention, r.retentionMetrics = opts.Retention, newRetentionMetrics()
	r.offeredLog = r.scriptLog(EventCardOffered)
	r.intake = newBatcher(client, deliverScript, deliverMulti)
	r.offers = newBatcher(client, offerScript, nil)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.metrics.delivered, r.metrics.duplicates, r.metrics.offers, r.metrics.timeouts,
			r.metrics.autoReplies, r.metrics.maxWait, r.metrics.floor.transfers, r.metrics.floor.unanswered, r.retentionMetrics.deleted, r.retentionMetrics.idleClosed,
			r.retentionMetrics.held, r.retentionMetrics.oldestHold)
	}
	for _, q := range topo.Queues {
		r.queues[q.ID] = q
	}
	r.schedules = compileSchedules(topo.Queues)
	for _, a := range topo.Agents {
		r.agents[a.ID] = agentInfo{queues: a.Queues, channels: a.Capacity}
		for _, q := range a.Queues {
			r.members[q] = append(r.members[q], a.ID)
		}
	}
	for _, e := range topo.EntryPoints {
		r.entries[e.Channel+":"+e.ID] = e.Queue
		r.entryList[e.Channel] += e.ID + "\n"
	}
	return r
}

// Start writes the configured capacities to Redis before traffic arrives, so that offers and new
// conversations see them from the first request. When Redis cannot be reached yet, the sweeper
// keeps trying.
func (r *Router) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.SyncCapacity(ctx); err != nil {
		r.logger.Warn("capacities not synced at start; retrying", "err", err)
	}
	return nil
}

// Shutdown stops the intake workers; call it after HTTP has drained.
func (r *Router) Shutdown() { r.intake.close(); r.offers.close() }

// QueueFor returns the queue an entry point (a WhatsApp phone number id, a WebChat site) feeds.
func (r *Router) QueueFor(channel, entryPoint string) (string, bool) {
	q, ok := r.entries[channel+":"+entryPoint]
	return q, ok
}

// SyncCapacity writes every agent's configured capacities to Redis, where the offer script reads
// them, and raises waiting cards to agents whose capacity grew. It runs at start-up and again after
// Redis lost its state (redisx.ResetWatcher); it is idempotent.
func (r *Router) SyncCapacity(ctx context.Context) error {
	// One transaction: every replica may run this at once after a Redis reset, and the offer
	// script must never see an agent's capacity deleted and not yet written.
	pipe := r.client.TxPipeline()
	for id, a := range r.agents {
		fields := make([]any, 0, 2*len(a.channels))
		for ch, c := range a.channels {
			fields = append(fields, ch, c)
		}
		pipe.Del(ctx, r.keys.capacity(id))
		pipe.HSet(ctx, r.keys.capacity(id), fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("sync capacity: %w", err)
	}
	return r.Reconcile(ctx)
}

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// newID returns a ULID; ids made in one millisecond by this process increase, so cards that arrive
// in the same millisecond keep their order in the queue (ties in a ZSET sort by member).
func newID() string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Now(), idEntropy).String()
}

// newIDs sets each of ids to a new ULID, as newID, taking the lock and the time once.
func newIDs(ids ...*string) {
	idMu.Lock()
	defer idMu.Unlock()
	now := ulid.Now()
	for _, id := range ids {
		*id = ulid.MustNew(now, idEntropy).String()
	}
}

// Inbound is a customer's message as providers hand it to routing.
type Inbound struct {
	Channel    string
	EntryPoint string
	// Identifiers are every way the provider names the customer in this message (WhatsApp: phone,
	// business-scoped user id, username): the contact is found by any of them and keeps them all.
	// Without identifiers (WebChat), ContactID is the contact.
	Identifiers []Identifier
	// Replaced are identifiers the customer no longer has (a changed number, a new user id): they
	// find the contact too, then leave it.
	Replaced     []Identifier
	ContactID    string
	ContactName  string
	ContactPhone string
	// Notice marks the provider's own message about the customer (WhatsApp's system messages): it
	// joins the open conversation as a note the agent sees, opens none and leaves the window alone.
	Notice            bool
	ProviderMessageID string
	// Sender is the scope in which ProviderMessageID is unique, for ids the provider does not
	// guarantee (WebChat's: chosen by a site or a visitor's browser); a redelivery is recognised only
	// from the same sender. Empty for WhatsApp: wamids are made by Meta and unique across senders
	// (and Meta redelivers a notification with the same wamid), so they are kept as they are.
	Sender  string
	At      time.Time
	Kind    string
	Text    string
	Payload json.RawMessage
}

// DeliverResult says what Deliver recorded.
type DeliverResult struct {
	Recorded   int      `json:"recorded"`
	Duplicates int      `json:"duplicates"`
	Unrouted   int      `json:"unrouted"`
	Messages   []string `json:"messages"`
}

// Deliver records each message durably and routes it: a redelivered provider message id produces
// nothing new; a message of an open conversation goes to its agent (sticky, even when paused); a new
// conversation becomes a card waiting in its entry point's queue and is offered at once if an agent
// is eligible. A nil error means every message is recorded (the provider may be answered 2xx).
func (r *Router) Deliver(ctx context.Context, msgs []Inbound) (DeliverResult, error) {
	var res DeliverResult
	var dispatch []pendingDispatch
	var arrived [][3]string     // queue, channel, conversation of each new card
	var outOfHours []floorCheck // messages of waiting conversations in queues with business hours
	for _, m := range msgs {
		queue, ok := r.QueueFor(m.Channel, m.EntryPoint)
		if !ok {
			res.Unrouted++
			continue
		}
		now := r.clock.Now()
		at := m.At
		if at.IsZero() {
			at = now
		}
		window := ""
		if win := r.topo.Channel(m.Channel).Window; win > 0 {
			window = strconv.FormatInt(at.Add(win).UnixMilli(), 10)
		}
		q := r.queues[queue]
		var msgID, convID, cardID, contactID string
		if m.ProviderMessageID != "" {
			msgID = InboundMessageID(m.Channel, m.Sender, m.ProviderMessageID)
			newIDs(&convID, &cardID, &contactID)
		} else {
			newIDs(&msgID, &convID, &cardID, &contactID)
		}
		at = at.Truncate(time.Millisecond)
		x, display := compactPayload(m, at)
		if len(m.Payload) > 0 && x == "" {
			x = "{}" // a payload, all of it in other fields
		}
		out, err := r.intake.run(ctx, deliverArgs{keys: r.keys, channel: m.Channel, entryPoint: m.EntryPoint, queue: queue,
			sender: m.Sender, providerMessageID: m.ProviderMessageID, contactID: m.ContactID,
			messageID: msgID, conversationID: convID, cardID: cardID, newContactID: contactID, now: now.UnixMilli(), at: at.UnixMilli(),
			kind: m.Kind, text: m.Text, payload: x, contactName: m.ContactName, contactPhone: m.ContactPhone,
			windowExpires: window, entryDisplay: display, offerTimeout: q.OfferTimeout.Milliseconds(),
			strategy: q.Strategy, audit: r.audit, notice: m.Notice, cardsToScan: cardsToScan, agentsToScan: agentsToScan,
			eventsMaxLen: r.offeredEventsMaxLen(), entries: r.entryList[m.Channel], identifiers: m.Identifiers, replaced: m.Replaced})
		if err != nil {
			return res, fmt.Errorf("deliver: %w", err)
		}
		if out.duplicate {
			res.Duplicates++
			r.metrics.duplicatesOf.Of(m.Channel).Inc()
			continue
		}
		res.Recorded++
		res.Messages = append(res.Messages, out.messageID)
		r.metrics.deliveredOf.Of(m.Channel).Inc()
		convID, cardID, newCard, agent, cardState := out.conversationID, out.cardID, out.newCardID, out.agent, out.cardState
		if convID == "" {
			continue // a notice about a customer without an open conversation: identifiers moved, nothing to show
		}
		// A new card with candidates in its queue had its first routing decision in the intake script;
		// the dispatch announces it and goes on if cards still wait. A card already waiting was tried
		// when it arrived and moves on the next login, resume or close.
		if newCard != "" && out.candidates > 0 {
			dispatch = append(dispatch, pendingDispatch{queue: queue, channel: m.Channel, decision: out.decision})
		}
		if newCard != "" {
			arrived = append(arrived, [3]string{queue, m.Channel, convID})
		}
		if r.schedules[queue] != nil && !m.Notice && (newCard != "" || agent == "") {
			// A conversation without an agent is waiting: its customer hears of the hours; one being
			// served after hours is left to its agent.
			outOfHours = append(outOfHours, floorCheck{queue: queue, channel: m.Channel, conversation: convID, card: cardID})
		}
		if agent != "" && (cardState == CardOffered || cardState == CardAccepted) {
			msg := Message{ID: out.messageID, ConversationID: convID, Direction: "in", Channel: m.Channel, ProviderMessageID: m.ProviderMessageID,
				Kind: m.Kind, Text: m.Text, Payload: m.Payload, At: at.UTC()}
			r.publish(ctx, agent, Event{Type: EventMessageReceived, Message: msg, Conversation: map[string]string{"id": convID, "card_id": cardID}})
		}
	}
	for _, d := range dispatch {
		if err := r.dispatch(ctx, d.queue, d.channel, d.decision); err != nil {
			// The cards are recorded and waiting; the next trigger or the sweeper offers them.
			r.logger.Warn("dispatch after delivery failed", "queue", d.queue, "channel", d.channel, "err", err)
		}
	}
	closedTold := map[string]bool{}
	for _, fc := range outOfHours {
		// A customer told the queue is closed is not told, besides, that nobody is logged in.
		closedTold[fc.conversation] = r.answerOutOfHours(ctx, fc)
	}
	for _, a := range arrived {
		if !closedTold[a[2]] {
			r.greetIfNobody(ctx, a[0], a[1], a[2])
		}
	}
	return res, nil
}

// pendingDispatch is a queue to dispatch after a delivery, with the decision the intake script made.
type pendingDispatch struct {
	queue, channel string
	decision       decision
}

// Dispatch offers waiting cards of (queue, channel) to eligible agents until one side runs out.
func (r *Router) Dispatch(ctx context.Context, queue, channel string) error {
	return r.dispatch(ctx, queue, channel, decision{})
}

// dispatch is Dispatch going on from a first decision already made (by the intake script), if any.
func (r *Router) dispatch(ctx context.Context, queue, channel string, first decision) error {
	q, ok := r.queues[queue]
	if !ok {
		return ErrUnknownQueue
	}
	// The first try scans a bounded head; when that finds nobody because it stopped at a bound, the
	// scan widens: every candidate, then the next pages of waiting cards. That path only runs when
	// the head's cards were refused by every candidate scanned, so it is rare and ends at the first
	// eligible pair. A decision made by the intake script was such a first try.
	from, maxAgents := 0, agentsToScan
	for i := 0; i < 1000; i++ {
		d := first
		first = decision{}
		if d.outcome == "" {
			now := r.clock.Now()
			var err error
			d, err = r.offers.run(ctx, offerArgs{keys: r.keys, queue: queue, channel: channel, now: now.UnixMilli(),
				offerTimeout: q.OfferTimeout.Milliseconds(), strategy: q.Strategy, audit: r.audit, cardsToScan: cardsToScan,
				agentsToScan: maxAgents, from: from, reofferAfter: q.ReofferAfter.Milliseconds()})
			if err != nil {
				return fmt.Errorf("offer: %w", err)
			}
		}
		switch d.outcome {
		case "offered":
		case "none":
			switch {
			case d.cutScan && maxAgents != 0:
				maxAgents = 0
			case d.moreCards:
				from, maxAgents = from+cardsToScan, 0
			default:
				return nil
			}
			continue
		default:
			return nil
		}
		r.metrics.offers.WithLabelValues(queue).Inc()
		if d.eventID != "" {
			r.pub.(scriptAppender).appended(d.agent, EventCardOffered, d.card) // the intake script appended card.offered
		} else if len(d.cardFields) == 0 {
			return fmt.Errorf("offer: card %s: %w", d.card, ErrNotFound)
		} else {
			card := cardWithConversation(d.cardFields, d.convFields)
			r.nameTransfer(card.Transfer)
			r.publish(ctx, d.agent, Event{Type: EventCardOffered, Card: card})
		}
		if !d.stillWaiting {
			return nil
		}
		if maxAgents != 0 {
			from = 0
		}
		// In the widened scan, the pages before from had no card any candidate could take; an
		// offer only takes capacity away, so they still have none: go on from here, not the head
		// (from the head, each offer would rescan every refused card: quadratic in the backlog).
	}
	return nil
}

// scriptLog is the log a script may append the agents' events of type typ to itself: the publisher
// allows it (scriptAppender) and its keys are named from the router's prefix, as the scripts name
// them; nil when such events must pass through the publisher.
func (r *Router) scriptLog(typ string) *StreamLog {
	sa, ok := r.pub.(scriptAppender)
	if !ok {
		return nil
	}
	if l := sa.scriptLog(typ); l != nil && l.keys.prefix() == r.keys.prefix() {
		return l
	}
	return nil
}

// offeredEventsMaxLen is the length of the log the intake script appends card.offered to, 0 for none.
func (r *Router) offeredEventsMaxLen() int64 {
	if r.offeredLog == nil {
		return 0
	}
	return r.offeredLog.log.MaxLen()
}

func (r *Router) publish(ctx context.Context, agent string, ev Event) {
	if ev.At.IsZero() {
		ev.At = r.clock.Now().UTC()
	}
	if _, err := r.pub.Publish(ctx, agent, ev); err != nil {
		r.logger.Warn("publish event failed", "agent", agent, "type", ev.Type, "err", err)
	}
}

// Card returns a card with its conversation's contact and window.
func (r *Router) Card(ctx context.Context, id string) (Card, error) {
	h, err := r.client.HGetAll(ctx, r.keys.card(id)).Result()
	if err != nil {
		return Card{}, err
	}
	if len(h) == 0 {
		return Card{}, ErrNotFound
	}
	conv, err := r.client.HGetAll(ctx, r.keys.conv(h["conversation_id"])).Result()
	if err != nil {
		conv = nil
	}
	c := cardWithConversation(h, conv)
	r.nameTransfer(c.Transfer)
	return c, nil
}

// nameTransfer gives a transfer its author's configured name, so an agent reads who, not an id.
func (r *Router) nameTransfer(t *Transfer) {
	if t == nil {
		return
	}
	if a, ok := r.topo.Agent(t.By); ok {
		t.ByName = a.Name
	}
}

// cardWithConversation is a card as agents see it: with its conversation's contact and window (when
// the conversation's fields are given) and a bounded preview.
func cardWithConversation(card, conv map[string]string) Card {
	c := cardFrom(card)
	if len(conv) > 0 {
		cv := conversationFrom(conv)
		c.Contact = &cv.Contact
		c.WindowExpiresAt = cv.WindowExpiresAt
	}
	if len(c.Preview) > previewLength {
		c.Preview = c.Preview[:previewLength]
	}
	return c
}

// Cards returns the cards offered to or held by an agent, oldest first.
func (r *Router) Cards(ctx context.Context, agent string) ([]Card, error) {
	ids, err := r.client.SMembers(ctx, r.keys.agentCards(agent)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Card, 0, len(ids))
	for _, id := range ids {
		c, err := r.Card(ctx, id)
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Conversation returns one conversation.
func (r *Router) Conversation(ctx context.Context, id string) (Conversation, error) {
	h, err := r.client.HGetAll(ctx, r.keys.conv(id)).Result()
	if err != nil {
		return Conversation{}, err
	}
	if len(h) == 0 {
		return Conversation{}, ErrNotFound
	}
	c := conversationFrom(h)
	r.nameTransfer(c.LastTransfer)
	return c, nil
}

// Messages returns a conversation's messages, oldest first (at most limit, the latest ones).
func (r *Router) Messages(ctx context.Context, conversationID string, limit int64) ([]Message, error) {
	ids, err := r.client.LRange(ctx, r.keys.convMsgs(conversationID), -limit, -1).Result()
	if err != nil {
		return nil, err
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, r.keys.msg(id))
	}
	conv := pipe.HGetAll(ctx, r.keys.conv(conversationID)) // completes inbound payloads (compact.go)
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]Message, 0, len(ids))
	for i, c := range cmds {
		if len(c.Val()) > 0 {
			out = append(out, messageFrom(ids[i], c.Val(), conv.Val()))
		}
	}
	return out, nil
}
