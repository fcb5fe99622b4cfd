package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/sse"
	"github.com/chatgate/chatgate/presence"
)

// The supervisors' wallboard: one resumable stream (GET /v1/supervisor/events) for every supervisor
// of the tenant, carrying each agent's presence changes as they are stored, each agent's row (presence
// per channel, load against capacity, conversations) and each queue's counters whenever they change,
// and the floor's notices (transfers, unanswered conversations). GET /v1/supervisor/wallboard is the
// same rows at once, for a page that opens or lost its place.
//
// Keys (under the tenant's hash tag):
//
//	cg:{t}:board:events   STREAM  the supervisors' events (type, event JSON), trimmed like the agents'
//	cg:{t}:board:digest   HASH    "agent:<id>" | "queue:<id>" → digest of the row last published
//
// The stream's announcements travel on the agents' channel under the subscriber "~board", which no
// agent id can be (ids start with a letter or digit).

// Event types of the supervisors' stream (besides presence.changed and the agents' floor notices).
const (
	EventBoardAgent = "agent.updated"
	EventBoardQueue = "queue.updated"
	boardSubscriber = "~board"
)

// forwarded are the agents' event types the supervisors' stream also carries (as they are, with
// the agent named). The floor's own supervisor events (transfers, unanswered conversations, wrap-ups)
// arrive once through PublishSupervisor instead, not once per agent told.
var forwarded = map[string]bool{
	EventPresenceChanged: true,
}

// dirtying are the agents' event types after which the agent's row (load, conversations) is read again.
var dirtying = map[string]bool{
	EventCardOffered: true, EventCardRevoked: true, EventCardAccepted: true, EventCardDeclined: true,
	EventConversationClosed: true, EventPresenceChanged: true,
	EventConversationTransferred: true, EventConversationUnanswered: true, EventWrapUpStarted: true, EventWrapUpEnded: true,
}

func (k keys) boardEvents() string { return k.ks.Key("board", "events") }
func (k keys) boardDigest() string { return k.ks.Key("board", "digest") }

// BoardEvent is one entry of the supervisors' stream.
type BoardEvent struct {
	ID    string    `json:"id,omitempty"`
	Type  string    `json:"type"`
	At    time.Time `json:"at"`
	Agent string    `json:"agent,omitempty"`
	// Row is the agent's whole row (agent.updated).
	Row *BoardAgent `json:"row,omitempty"`
	// Queue is the queue's counters (queue.updated).
	Queue *QueueStatus `json:"queue,omitempty"`
	// Presence, Card, Conversation: as on the agent's stream (forwarded events).
	Presence     any `json:"presence,omitempty"`
	Card         any `json:"card,omitempty"`
	Conversation any `json:"conversation,omitempty"`
	// Transfer, Unanswered, WrapUp: the floor's events for supervisors, as the router gives them.
	Transfer   any `json:"transfer,omitempty"`
	Unanswered any `json:"unanswered,omitempty"`
	WrapUp     any `json:"wrap_up,omitempty"`
}

// BoardAgent is an agent's row on the wallboard: its presence on each channel (state, since, reason,
// and whatever else presence reports, such as wrap_up_until), its load against capacity per channel
// and the conversations it holds or is offered.
type BoardAgent struct {
	presence.AgentPresence
	Loads []BoardLoad `json:"loads"`
	// Cards are the agent's oldest conversations, at most boardCardsPerAgent of them; CardsTotal
	// counts them all.
	Cards      []BoardCard `json:"cards"`
	CardsTotal int         `json:"cards_total"`
	// lastListed is the id of the last card read for Cards (the greatest: ids are ULIDs).
	lastListed string
}

// boardCardsPerAgent bounds the conversations read for one row: a row is read again after every
// event of its agent, and an agent holding hundreds (a bulk queue, a test) must not cost hundreds
// of reads each time. A supervisor acts on the oldest.
const boardCardsPerAgent = 20

// boardEventGap is the least time between two event-driven reads of the rows: a burst of offers
// costs one read of the agents it touched, not one per offer.
const boardEventGap = 500 * time.Millisecond

// boardSweepEvery is how many intervals pass between reads of every agent's row; in between, rows
// are read when their agent's events pass through (every change of a row has one), and the
// queues' counters every interval (waits grow with the clock).
const boardSweepEvery = 30

// BoardLoad is an agent's load on one channel.
type BoardLoad struct {
	Channel  string `json:"channel"`
	Load     int    `json:"load"`
	Capacity int    `json:"capacity"`
}

// BoardCard is one conversation on an agent's row.
type BoardCard struct {
	ID             string     `json:"id"`
	ConversationID string     `json:"conversation_id"`
	Queue          string     `json:"queue"`
	Channel        string     `json:"channel"`
	State          string     `json:"state"`
	Contact        string     `json:"contact,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	AcceptedAt     *time.Time `json:"accepted_at,omitempty"`
}

// Board is the whole wallboard at one moment.
type Board struct {
	Agents []BoardAgent  `json:"agents"`
	Queues []QueueStatus `json:"queues"`
	At     time.Time     `json:"at"`
}

// Wallboard keeps the supervisors' stream: it wraps the agents' publisher (every agent event passes
// through it) and refreshes rows when they change.
type Wallboard struct {
	inner    Publisher
	router   *Router
	presence *presence.Store
	log      *sse.Log
	keys     keys
	logger   *slog.Logger
	interval time.Duration

	mu          sync.Mutex
	dirtyAgents map[string]dirtyRow
	queuesDirty bool
	// listed is what the last read of each agent's row showed, for reading less of it after offers
	// alone (rowsToRead).
	listed map[string]listedCards
	// unlisted are the agents whose listed cards are to be forgotten (heard).
	unlisted map[string]struct{}
	wake     chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

var _ Publisher = (*Wallboard)(nil)

// NewWallboard builds the wallboard over the agents' event log. Give it to the router and to
// PresenceEvents as their Publisher (after SetRouter), so it hears every agent event.
func NewWallboard(client redis.UniversalClient, events *StreamLog, ps *presence.Store, maxLen int64, interval time.Duration, logger *slog.Logger) *Wallboard {
	if maxLen <= 0 {
		maxLen = 1000
	}
	if interval <= 0 {
		interval = time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Wallboard{inner: events, presence: ps, log: sse.NewLog(client, events.keys.eventsChannel(), maxLen, 0), keys: events.keys,
		logger: logger.With("component", "wallboard"), interval: interval,
		dirtyAgents: map[string]dirtyRow{}, listed: map[string]listedCards{}, unlisted: map[string]struct{}{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// SetRouter gives the wallboard the router whose loads and queues it reads (the router is built
// with the wallboard as its publisher, so this comes after).
func (w *Wallboard) SetRouter(r *Router) { w.router = r }

// Publish is the agent's publisher: the event goes to the agent's stream, then the supervisors'
// stream carries it when it is one of theirs, and the agent's row is read again soon.
func (w *Wallboard) Publish(ctx context.Context, agent string, ev Event) (string, error) {
	id, err := w.inner.Publish(ctx, agent, ev)
	if forwarded[ev.Type] {
		at := ev.At
		if at.IsZero() {
			at = time.Now().UTC()
		}
		w.append(ctx, BoardEvent{Type: ev.Type, At: at, Agent: agent, Presence: ev.Presence, Card: ev.Card, Conversation: ev.Conversation})
	}
	w.heard(agent, ev.Type, offeredID(ev))
	return id, err
}

// offeredID is the id of the card a card.offered event offers; "" for any other event or a card of
// a form it does not know.
func offeredID(ev Event) string {
	if ev.Type != EventCardOffered {
		return ""
	}
	switch c := ev.Card.(type) {
	case Card:
		return c.ID
	case *Card:
		if c != nil {
			return c.ID
		}
	}
	return ""
}

var _ scriptAppender = (*Wallboard)(nil)

// scriptLog lets a script append the agent's events the supervisors' stream does not carry.
func (w *Wallboard) scriptLog(typ string) *StreamLog {
	if inner, ok := w.inner.(scriptAppender); ok && !forwarded[typ] {
		return inner.scriptLog(typ)
	}
	return nil
}

// appended is Publish's part after the agent's log, for an event a script appended.
func (w *Wallboard) appended(agent, typ, card string) {
	if inner, ok := w.inner.(scriptAppender); ok {
		inner.appended(agent, typ, card)
	}
	if typ != EventCardOffered {
		card = ""
	}
	w.heard(agent, typ, card)
}

// heard: an event of the agent's passed through. Its row is read again after one that changes it;
// after any other (a message, whose contact may be renamed) its next read is in full, not with the
// cards listed.
func (w *Wallboard) heard(agent, typ, offered string) {
	if dirtying[typ] {
		w.markDirty(agent, offered)
		return
	}
	w.mu.Lock()
	w.unlisted[agent] = struct{}{}
	w.mu.Unlock()
}

var _ SupervisorPublisher = (*Wallboard)(nil)

// PublishSupervisor carries the router's events meant for supervisors (transfers, unanswered
// conversations, wrap-ups) on the supervisors' stream, and has the queues' counters read again (the
// agents concerned hear their own events, which mark their rows).
func (w *Wallboard) PublishSupervisor(ctx context.Context, ev Event) error {
	at := ev.At
	if at.IsZero() {
		at = time.Now().UTC()
	}
	if !w.append(ctx, BoardEvent{Type: ev.Type, At: at, Card: ev.Card, Conversation: ev.Conversation,
		Transfer: ev.Transfer, Unanswered: ev.Unanswered, WrapUp: ev.WrapUp}) {
		return fmt.Errorf("wallboard: %s not published", ev.Type)
	}
	w.markDirty("", "")
	return nil
}

// dirtyRow is why an agent's row is to be read again: offers alone (of cards from offered on, in
// id order), or anything else (full).
type dirtyRow struct {
	full    bool
	offered string
}

// listedCards are the cards the last read of an agent's row listed, and the digest of that row.
type listedCards struct {
	cards  []BoardCard
	last   string // the greatest id listed: the oldest cards are the lowest ids
	digest string
}

// markDirty notes that the agent's row (none for "") and the queues' counters are to be read again:
// after the offer of card offered alone, or in full ("").
func (w *Wallboard) markDirty(agent, offered string) {
	w.mu.Lock()
	if agent != "" {
		d, seen := w.dirtyAgents[agent]
		switch {
		case offered == "":
			d.full = true
		case !seen || offered < d.offered:
			d.offered = offered
		}
		w.dirtyAgents[agent] = d
	}
	w.queuesDirty = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // already woken
	}
}

// takeDirty hands over the rows and counters marked since the last call.
func (w *Wallboard) takeDirty() (agents map[string]dirtyRow, queues bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	agents = w.dirtyAgents
	w.dirtyAgents = map[string]dirtyRow{}
	// After the read that may have listed them before the event (the reads run one at a time).
	for a := range w.unlisted {
		delete(w.listed, a)
	}
	clear(w.unlisted)
	queues, w.queuesDirty = w.queuesDirty, false
	return agents, queues
}

func (w *Wallboard) append(ctx context.Context, ev BoardEvent) bool {
	body, err := json.Marshal(ev)
	if err == nil {
		_, err = w.log.Append(ctx, w.keys.boardEvents(), boardSubscriber, ev.Type, body)
	}
	if err != nil {
		w.logger.Warn("wallboard event not published", "type", ev.Type, "err", err)
		return false
	}
	return true
}

// changedScript records rows' digests (ARGV: field, digest, expected, field, digest, expected…) and
// returns the 1-based positions of the rows whose digest differs from the last one published, so
// that replicas refreshing the same rows publish each change once. A row with an expected digest
// ("" for none) is recorded only if the last one published is that one; its position is returned
// negated when it is not.
var changedScript = luascript.New[changedArgs, []int64]("board_changed", `
local out = {}
for i = 1, #ARGV, 3 do
  local last = redis.call('HGET', KEYS[1], ARGV[i])
  if last ~= ARGV[i + 1] then
    if ARGV[i + 2] ~= '' and last ~= ARGV[i + 2] then
      out[#out + 1] = -(i + 2) / 3
    else
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
      out[#out + 1] = (i + 2) / 3
    end
  end
end
return out
`, changedPositions)

func changedPositions(v any) ([]int64, error) {
	arr, err := luascript.AsArray(v)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(arr))
	for i := range arr {
		out[i] = arr.Int(i)
	}
	return out, nil
}

type changedArgs struct {
	keys  keys
	pairs []any
}

func (a changedArgs) KeysAndArgv() ([]string, []any) {
	return []string{a.keys.boardDigest()}, a.pairs
}

// changedPerCall bounds one digest script's rows, so a board of thousands of agents does not hold
// Redis for one long script.
const changedPerCall = 256

// publishChanged publishes the events whose rows changed since the last ones published; it returns
// how many it published and each row's digest. A failed publish forgets the digest, so the next read
// tries again. expect (nil for none) holds the digest each row must have had last for it to be
// published ("" for any); the rows that did not are returned in stale, not published.
func (w *Wallboard) publishChanged(ctx context.Context, fields []string, evs []BoardEvent, expect []string) (n int, digests []string, stale []int, err error) {
	digests = make([]string, len(evs))
	for lo := 0; lo < len(evs); lo += changedPerCall {
		hi := min(lo+changedPerCall, len(evs))
		args := make([]any, 0, 3*(hi-lo))
		for i := lo; i < hi; i++ {
			row, err := json.Marshal(struct {
				A *BoardAgent  `json:"a"`
				Q *QueueStatus `json:"q"`
			}{evs[i].Row, evs[i].Queue})
			if err != nil {
				return n, digests, stale, err
			}
			sum := sha256.Sum256(row)
			digests[i] = hex.EncodeToString(sum[:12])
			want := ""
			if expect != nil {
				want = expect[i]
			}
			args = append(args, fields[i], digests[i], want)
		}
		changed, err := changedScript.Run(ctx, w.router.client, changedArgs{keys: w.router.keys, pairs: args})
		if err != nil {
			return n, digests, stale, err
		}
		for _, pos := range changed {
			if pos < 0 && lo-int(pos)-1 < hi {
				stale = append(stale, lo-int(pos)-1)
				continue
			}
			i := lo + int(pos) - 1
			if i < lo || i >= hi {
				continue
			}
			if !w.append(ctx, evs[i]) {
				w.router.client.HDel(context.WithoutCancel(ctx), w.router.keys.boardDigest(), fields[i])
				continue
			}
			n++
		}
	}
	return n, digests, stale, nil
}

// Refresh reads every agent's row and every queue's counters and publishes those that changed; it
// returns how many it published. The wallboard runs it at start and every boardSweepEvery
// intervals; tests call it directly.
func (w *Wallboard) Refresh(ctx context.Context) (int, error) {
	n, err := w.refreshAgents(ctx, nil)
	if err != nil {
		return n, err
	}
	m, err := w.refreshQueues(ctx)
	return n + m, err
}

// refreshAgents reads the rows of the given agents (every agent, in full, for nil) and publishes
// those that changed.
func (w *Wallboard) refreshAgents(ctx context.Context, agents map[string]dirtyRow) (int, error) {
	var all []presence.AgentPresence
	var err error
	if agents == nil {
		all, err = w.presence.List(ctx)
	} else {
		all, err = w.presence.ListOf(ctx, slices.Collect(maps.Keys(agents)))
	}
	if err != nil || len(all) == 0 {
		return 0, err
	}
	full, counted, listed := w.rowsToRead(all, agents)
	n, stale, err := w.publishRows(ctx, full, counted, listed)
	if err != nil || len(stale) == 0 {
		return n, err
	}
	// Another replica published these rows since this one read them: their cards may have changed
	// without this replica hearing of it.
	m, _, err := w.publishRows(ctx, stale, nil, nil)
	return n + m, err
}

// rowsToRead splits the agents' rows into those to read in full and those whose listed cards still
// stand (counted, with what was listed): their agent's only events since were offers of cards after
// the last listed, and the row listed as many as it shows, so the oldest cards are the same.
func (w *Wallboard) rowsToRead(all []presence.AgentPresence, agents map[string]dirtyRow) (full, counted []presence.AgentPresence, listed []listedCards) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range all {
		d, dirty := agents[p.Agent]
		l, ok := w.listed[p.Agent]
		if dirty && !d.full && ok && d.offered > l.last {
			counted, listed = append(counted, p), append(listed, l)
		} else {
			full = append(full, p)
		}
	}
	return full, counted, listed
}

// publishRows reads the rows (full in full, counted with the cards listed), publishes those that
// changed, and remembers what they list. The counted rows are published only if the last row
// published for their agent is the one read with those cards; the others are returned in stale.
func (w *Wallboard) publishRows(ctx context.Context, full, counted []presence.AgentPresence, listed []listedCards) (int, []presence.AgentPresence, error) {
	rows, err := w.rows(ctx, full)
	if err != nil {
		return 0, nil, err
	}
	more, err := w.countedRows(ctx, counted, listed)
	if err != nil {
		return 0, nil, err
	}
	rows = append(rows, more...)
	at := w.router.clock.Now().UTC()
	fields := make([]string, len(rows))
	evs := make([]BoardEvent, len(rows))
	expect := make([]string, len(rows))
	for i := range rows {
		fields[i] = "agent:" + rows[i].Agent
		evs[i] = BoardEvent{Type: EventBoardAgent, At: at, Agent: rows[i].Agent, Row: &rows[i]}
		if i >= len(full) {
			expect[i] = listed[i-len(full)].digest
		}
	}
	n, digests, staleAt, err := w.publishChanged(ctx, fields, evs, expect)
	var stale []presence.AgentPresence
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, i := range staleAt {
		delete(w.listed, rows[i].Agent)
		stale = append(stale, rows[i].AgentPresence)
		digests[i] = ""
	}
	for i := range rows {
		switch {
		case err != nil || digests[i] == "":
			delete(w.listed, rows[i].Agent)
		case i < len(full) && len(rows[i].Cards) == boardCardsPerAgent:
			w.listed[rows[i].Agent] = listedCards{cards: rows[i].Cards, last: rows[i].lastListed, digest: digests[i]}
		case i < len(full):
			delete(w.listed, rows[i].Agent) // fewer than a row shows: a new card is among them
		default:
			w.listed[rows[i].Agent] = listedCards{cards: rows[i].Cards, last: rows[i].lastListed, digest: digests[i]}
		}
	}
	return n, stale, err
}

// countedRows completes the agents' presence with their loads and how many cards they hold, the
// cards being those listed (one pipelined round trip of constant-time reads).
func (w *Wallboard) countedRows(ctx context.Context, all []presence.AgentPresence, listed []listedCards) ([]BoardAgent, error) {
	if len(all) == 0 {
		return nil, nil
	}
	r := w.router
	pipe := r.client.Pipeline()
	loads := make([]*redis.MapStringStringCmd, len(all))
	counts := make([]*redis.IntCmd, len(all))
	for i, p := range all {
		loads[i] = pipe.HGetAll(ctx, r.keys.load(p.Agent))
		counts[i] = pipe.SCard(ctx, r.keys.agentCards(p.Agent))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	out := make([]BoardAgent, len(all))
	for i, p := range all {
		out[i] = BoardAgent{AgentPresence: p, Loads: w.loadsOf(p, loads[i].Val()), Cards: listed[i].cards,
			CardsTotal: int(counts[i].Val()), lastListed: listed[i].last}
	}
	return out, nil
}

// loadsOf is the agent's load against capacity on each of its channels.
func (w *Wallboard) loadsOf(p presence.AgentPresence, load map[string]string) []BoardLoad {
	info := w.router.agents[p.Agent]
	out := []BoardLoad{}
	for _, ch := range p.Channels {
		out = append(out, BoardLoad{Channel: ch.Channel, Load: atoiOr0(load[ch.Channel]), Capacity: info.channels[ch.Channel]})
	}
	return out
}

// refreshQueues reads every queue's counters and publishes those that changed. The oldest wait grows
// every second: the stream carries it to the second, and pages count on from there.
func (w *Wallboard) refreshQueues(ctx context.Context) (int, error) {
	queues, err := w.router.QueuesStatus(ctx)
	if err != nil {
		return 0, err
	}
	at := w.router.clock.Now().UTC()
	fields := make([]string, len(queues))
	evs := make([]BoardEvent, len(queues))
	for i := range queues {
		fields[i] = "queue:" + queues[i].ID
		evs[i] = BoardEvent{Type: EventBoardQueue, At: at, Queue: &queues[i]}
	}
	n, _, _, err := w.publishChanged(ctx, fields, evs, nil)
	return n, err
}

// boardRowsPerRead bounds the agents whose rows one read takes. Redis runs a pipeline's commands in
// one go, the others' (webhooks' intake scripts) waiting behind them, and a row costs an SMEMBERS
// as long as the agent's cards: a hundred agents holding 300 each held Redis ~5 ms (46 µs an SMEMBERS).
const boardRowsPerRead = 16

// rows completes the agents' presence with their loads and their oldest conversations, in three
// pipelined round trips per boardRowsPerRead agents.
func (w *Wallboard) rows(ctx context.Context, all []presence.AgentPresence) ([]BoardAgent, error) {
	out := make([]BoardAgent, 0, len(all))
	for lo := 0; lo < len(all); lo += boardRowsPerRead {
		rows, err := w.rowsOf(ctx, all[lo:min(lo+boardRowsPerRead, len(all))])
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (w *Wallboard) rowsOf(ctx context.Context, all []presence.AgentPresence) ([]BoardAgent, error) {
	r := w.router
	pipe := r.client.Pipeline()
	loads := make([]*redis.MapStringStringCmd, len(all))
	ids := make([]*redis.StringSliceCmd, len(all))
	for i, p := range all {
		loads[i] = pipe.HGetAll(ctx, r.keys.load(p.Agent))
		ids[i] = pipe.SMembers(ctx, r.keys.agentCards(p.Agent))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	pipe = r.client.Pipeline()
	cards := make([][]*redis.MapStringStringCmd, len(all))
	n := 0
	for i := range all {
		held := ids[i].Val()
		// Card ids are ULIDs: in id order, the oldest first.
		sort.Strings(held)
		for _, id := range held[:min(len(held), boardCardsPerAgent)] {
			cards[i] = append(cards[i], pipe.HGetAll(ctx, r.keys.card(id)))
			n++
		}
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, err
		}
	}
	pipe = r.client.Pipeline()
	names := make([][]*redis.StringCmd, len(all))
	for i := range all {
		for _, c := range cards[i] {
			names[i] = append(names[i], pipe.HGet(ctx, r.keys.conv(c.Val()["conversation_id"]), "contact_name"))
		}
	}
	if n > 0 {
		_, _ = pipe.Exec(ctx) // a conversation without a name is shown without one
	}
	out := make([]BoardAgent, len(all))
	for i, p := range all {
		row := BoardAgent{AgentPresence: p, Loads: w.loadsOf(p, loads[i].Val()), Cards: []BoardCard{}, CardsTotal: len(ids[i].Val())}
		if k := len(cards[i]); k > 0 {
			row.lastListed = ids[i].Val()[k-1] // sorted above
		}
		for j, c := range cards[i] {
			if len(c.Val()) == 0 {
				row.CardsTotal--
				continue
			}
			card := cardFrom(c.Val())
			row.Cards = append(row.Cards, BoardCard{ID: card.ID, ConversationID: card.ConversationID, Queue: card.Queue,
				Channel: card.Channel, State: card.State, Contact: names[i][j].Val(), CreatedAt: card.CreatedAt, AcceptedAt: card.AcceptedAt})
		}
		sort.Slice(row.Cards, func(x, y int) bool { return row.Cards[x].CreatedAt.Before(row.Cards[y].CreatedAt) })
		out[i] = row
	}
	return out, nil
}

func atoiOr0(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// Snapshot is the whole wallboard now: every configured agent's row and every queue's counters.
func (w *Wallboard) Snapshot(ctx context.Context) (Board, error) {
	all, err := w.presence.List(ctx)
	if err != nil {
		return Board{}, err
	}
	b := Board{At: w.router.clock.Now().UTC()}
	if b.Agents, err = w.rows(ctx, all); err != nil {
		return Board{}, err
	}
	if b.Queues, err = w.router.QueuesStatus(ctx); err != nil {
		return Board{}, err
	}
	return b, nil
}

// Start reads the whole board at once; then the rows of agents whose events passed through (at most
// one read per boardEventGap, however many events), the queues' counters every interval and after
// events, and every row every boardSweepEvery intervals.
func (w *Wallboard) Start() error {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.interval)
		defer t.Stop()
		w.run(w.Refresh, "wallboard refresh failed")
		ticks := 0
		for {
			select {
			case <-w.stop:
				return
			case <-w.wake:
				agents, queues := w.takeDirty()
				w.run(func(ctx context.Context) (int, error) {
					n, err := 0, error(nil)
					if len(agents) > 0 {
						n, err = w.refreshAgents(ctx, agents)
					}
					if err == nil && queues {
						var m int
						m, err = w.refreshQueues(ctx)
						n += m
					}
					return n, err
				}, "wallboard rows not refreshed")
				// Events arriving meanwhile wait for the next read, which takes them all.
				select {
				case <-w.stop:
					return
				case <-time.After(boardEventGap):
				}
			case <-t.C:
				if ticks++; ticks%boardSweepEvery == 0 {
					w.run(w.Refresh, "wallboard refresh failed")
				} else {
					w.run(w.refreshQueues, "wallboard queues not refreshed")
				}
			}
		}
	}()
	return nil
}

// run runs one read of the board, bounded in time, and logs its failure.
func (w *Wallboard) run(read func(context.Context) (int, error), failure string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*w.interval)
	defer cancel()
	if _, err := read(ctx); err != nil {
		w.logger.Warn(failure, "err", err)
	}
}

// Shutdown stops the refreshes.
func (w *Wallboard) Shutdown() {
	close(w.stop)
	w.wg.Wait()
}

// Register mounts GET /v1/supervisor/wallboard and the supervisors' stream GET /v1/supervisor/events
// (served by the agents' stream hub, resumable with Last-Event-ID) for supervisors and admins.
func (w *Wallboard) Register(v1 fiber.Router, streams *Streams, gate fiber.Handler) {
	sup := auth.Require(auth.RoleSupervisor)
	v1.Get("/supervisor/wallboard", sup, func(c *fiber.Ctx) error {
		b, err := w.Snapshot(c.UserContext())
		if err != nil {
			return err
		}
		return c.JSON(b)
	})
	handlers := []fiber.Handler{sup}
	if gate != nil {
		handlers = append(handlers, gate)
	}
	handlers = append(handlers, func(c *fiber.Ctx) error {
		last, ok := sse.LastEventID(c)
		if !ok {
			return errBadEventID
		}
		expires := auth.Caller(c).ExpiresAt
		return streams.hub.Serve(c, sse.Stream{Subscriber: boardSubscriber, Key: w.keys.boardEvents(), Last: last,
			ResetWhenTrimmed: true, Expires: expires,
			Expired: func() sse.Event {
				return sse.Event{Type: EventSessionExpired, Data: `{"type":"` + EventSessionExpired + `","at":"` +
					time.Now().UTC().Format(time.RFC3339Nano) + `","message":"the token has expired: sign in again and reconnect with Last-Event-ID"}`}
			}})
	})
	v1.Get("/supervisor/events", handlers...)
}
