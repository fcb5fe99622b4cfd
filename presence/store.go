package presence

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/topology"
)

// Errors of the state machine; the HTTP layer maps each to its status and code.
var (
	ErrUnknownAgent      = errors.New("unknown agent")
	ErrChannelNotEnabled = errors.New("channel not enabled for the agent")
	ErrInvalidState      = errors.New("unknown state")
	ErrReasonRequired    = errors.New("a pause needs a reason")
	ErrUnknownReason     = errors.New("unknown pause reason")
	ErrChannelOffline    = errors.New("the channel is offline")
	ErrLoginDenied       = errors.New("only the agent itself may log in")
)

// Cause values recorded in the history.
const (
	CauseToggle       = "toggle"
	CauseDisconnected = "disconnected"
	CauseNoAnswer     = "no_answer"
	BySystem          = "system"
)

// ReasonDisconnected is the history reason of the reaper's logouts (a reason of leaving, not a pause
// reason: the channel's stored state is offline without a reason).
const ReasonDisconnected = "disconnected"

// DefaultHistoryRetention keeps history and totals when neither Options nor the configuration say.
const DefaultHistoryRetention = 90 * 24 * time.Hour

// Options are the store's collaborators.
type Options struct {
	Clock            clock.Clock
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
	HistoryRetention time.Duration
}

// Store keeps every agent's per-channel presence in Redis.
type Store struct {
	client     redis.UniversalClient
	keys       keys
	clock      clock.Clock
	logger     *slog.Logger
	retention  time.Duration
	channels   *topology.Topology // what each channel allows
	agents     map[string]*topology.Agent
	order      []string // agent ids in configuration order
	reasons    map[string]string
	mu         sync.RWMutex
	listeners  []Listener
	transition *prometheus.CounterVec
}

// NewStore builds the store on the topology's agents, channel groups and pause reasons.
func NewStore(client redis.UniversalClient, ks keyspace.Space, topo *topology.Topology, opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HistoryRetention < time.Second {
		// A zero retention would make the script EXPIRE the totals at once and trim the whole history.
		opts.HistoryRetention = DefaultHistoryRetention
	}
	s := &Store{
		client: client, keys: keys{ks}, clock: opts.Clock, logger: opts.Logger.With("component", "presence"),
		retention: opts.HistoryRetention, channels: topo, agents: map[string]*topology.Agent{}, reasons: map[string]string{},
		transition: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatgate_presence_transitions_total", Help: "Presence transitions by channel and new state.",
		}, []string{"channel", "to"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.transition)
	}
	for _, r := range topo.PauseReasons {
		s.reasons[r.ID] = r.Label
	}
	for i := range topo.Agents {
		a := &topo.Agents[i]
		s.agents[a.ID] = a
		s.order = append(s.order, a.ID)
	}
	return s
}

// AddListener registers a party to be told of every stored change.
func (s *Store) AddListener(l Listener) {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
}

// Group returns the channels that pause and resume together with channel (channel included).
func (s *Store) Group(agent, channel string) []string {
	if t, ok := s.agents[agent]; ok {
		return append([]string(nil), t.Groups[channel]...)
	}
	return nil
}

// Known reports whether agent is configured.
func (s *Store) Known(agent string) bool { _, ok := s.agents[agent]; return ok }

// ReasonLabel returns a pause reason's label, and whether it is in the catalogue.
func (s *Store) ReasonLabel(id string) (string, bool) { l, ok := s.reasons[id]; return l, ok }

// Result is what a toggle did: the stored changes (none when it was a no-op) and the presence after it.
type Result struct {
	Changes  []Change      `json:"changes"`
	Presence AgentPresence `json:"presence"`
}

// Set is the toggle. want is online (login, or resume of a paused channel), offline (logout) or paused
// (with a reason from the catalogue). by is who asks: the agent itself, a supervisor's id, or "system";
// only the agent itself may log in. Setting the current state again changes nothing.
func (s *Store) Set(ctx context.Context, agent, channel string, want State, reason, by, cause string) (Result, error) {
	t, ok := s.agents[agent]
	if !ok {
		return Result{}, ErrUnknownAgent
	}
	if _, enabled := t.Groups[channel]; !enabled {
		return Result{}, ErrChannelNotEnabled
	}
	switch want {
	case Online, Offline:
		reason = ""
	case Paused:
		if reason == "" {
			return Result{}, ErrReasonRequired
		}
		if _, known := s.reasons[reason]; !known {
			return Result{}, ErrUnknownReason
		}
	default:
		return Result{}, ErrInvalidState
	}
	allowLogin := by == agent
	return s.run(ctx, agent, t, channel, string(want), reason, by, cause, allowLogin, "")
}

// LogoutAll logs the agent out of every channel (the reaper, a supervisor, an administrator).
func (s *Store) LogoutAll(ctx context.Context, agent, by, cause string) (Result, error) {
	t, ok := s.agents[agent]
	if !ok {
		return Result{}, ErrUnknownAgent
	}
	return s.run(ctx, agent, t, "", "logout_all", "", by, cause, false, "")
}

func (s *Store) run(ctx context.Context, agent string, t *topology.Agent, channel, want, reason, by, cause string, allowLogin bool, cutoff string) (Result, error) {
	now := s.clock.Now()
	res, err := transitionScript.Run(ctx, s.client, transitionArgs{keys: s.keys, agent: agent, channel: channel, want: want,
		reason: reason, by: by, cause: cause, now: now, retention: s.retention, allowLogin: allowLogin, reaperCutoff: cutoff,
		group: t.Groups[channel], channels: t.Channels})
	if err != nil {
		return Result{}, err
	}
	switch res.code {
	case "channel_offline":
		return Result{}, ErrChannelOffline
	case "login_denied":
		return Result{}, ErrLoginDenied
	case "skipped":
		return Result{}, nil
	}
	at := time.UnixMilli(now.UnixMilli()).UTC()
	changes := make([]Change, 0, len(res.changes))
	for _, c := range res.changes {
		changes = append(changes, Change{Agent: agent, Channel: c.channel, From: State(c.from), To: State(c.to),
			Reason: c.reason, By: by, Cause: cause, At: at})
	}
	state := res.state
	result := Result{Changes: changes, Presence: s.build(agent, t, state, now)}
	if len(changes) > 0 {
		for _, c := range changes {
			s.transition.WithLabelValues(c.Channel, string(c.To)).Inc()
		}
		s.notify(ctx, changes)
	}
	return result, nil
}

func (s *Store) notify(ctx context.Context, changes []Change) {
	s.mu.RLock()
	listeners := s.listeners
	s.mu.RUnlock()
	for _, l := range listeners {
		l.PresenceChanged(ctx, changes)
	}
}

// Heartbeat records that the agent's client is alive; it never logs anyone in.
func (s *Store) Heartbeat(ctx context.Context, agent string) error {
	if _, ok := s.agents[agent]; !ok {
		return ErrUnknownAgent
	}
	_, err := heartbeatScript.Run(ctx, s.client, heartbeatArgs{keys: s.keys, agent: agent, now: s.clock.Now().UnixMilli()})
	return err
}

// Get returns an agent's presence on every enabled channel and the aggregate.
func (s *Store) Get(ctx context.Context, agent string) (AgentPresence, error) {
	t, ok := s.agents[agent]
	if !ok {
		return AgentPresence{}, ErrUnknownAgent
	}
	h, err := s.client.HGetAll(ctx, s.keys.state(agent)).Result()
	if err != nil {
		return AgentPresence{}, err
	}
	return s.build(agent, t, h, s.clock.Now()), nil
}

// List returns every configured agent's presence (the supervisor's view), pipelined.
func (s *Store) List(ctx context.Context) ([]AgentPresence, error) { return s.ListOf(ctx, s.order) }

// ListOf returns the presence of the given agents, in that order, pipelined; ids that are not
// configured agents are left out.
func (s *Store) ListOf(ctx context.Context, agents []string) ([]AgentPresence, error) {
	known := make([]string, 0, len(agents))
	for _, id := range agents {
		if _, ok := s.agents[id]; ok {
			known = append(known, id)
		}
	}
	if len(known) == 0 {
		return nil, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(known))
	for i, id := range known {
		cmds[i] = pipe.HGetAll(ctx, s.keys.state(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	out := make([]AgentPresence, len(known))
	for i, id := range known {
		out[i] = s.build(id, s.agents[id], cmds[i].Val(), now)
	}
	return out, nil
}

// History returns the agent's stored changes between from and to, oldest first.
func (s *Store) History(ctx context.Context, agent string, from, to time.Time) ([]Change, error) {
	if _, ok := s.agents[agent]; !ok {
		return nil, ErrUnknownAgent
	}
	// Entry ids are Redis's clock; "at" is the gateway's (injectable) clock, so filter on "at". The
	// stream is bounded by the retention, so reading it whole stays cheap.
	entries, err := s.client.XRange(ctx, s.keys.history(agent), "-", "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(entries))
	for _, e := range entries {
		at, _ := strconv.ParseInt(str(e.Values["at"]), 10, 64)
		if at < from.UnixMilli() || at > to.UnixMilli() {
			continue
		}
		out = append(out, Change{Agent: agent, Channel: str(e.Values["channel"]), From: State(str(e.Values["from"])),
			To: State(str(e.Values["to"])), Reason: str(e.Values["reason"]), By: str(e.Values["by"]),
			Cause: str(e.Values["cause"]), At: time.UnixMilli(at).UTC()})
	}
	return out, nil
}

func str(v any) string { s, _ := v.(string); return s }
