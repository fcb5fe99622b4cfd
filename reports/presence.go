package reports

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence states as the history records them (wrap_up: the agent finishing a conversation's work).
const (
	stOffline = "offline"
	stOnline  = "online"
	stPaused  = "paused"
	stWrapUp  = "wrap_up"
)

// PresenceEvent is one stored change of an agent's channel: a login, pause, resume, wrap-up or
// logout, with how long the state it began lasted (until the next change, or the period's end).
type PresenceEvent struct {
	Agent           string    `json:"agent"`
	Channel         string    `json:"channel"`
	Kind            string    `json:"kind"` // login, logout, pause, resume, pause_change, wrap_up
	From            string    `json:"from"`
	To              string    `json:"to"`
	Reason          string    `json:"reason"`
	ReasonLabel     string    `json:"reason_label"`
	By              string    `json:"by"`
	Cause           string    `json:"cause"`
	At              time.Time `json:"at"`
	Until           time.Time `json:"until"`
	DurationSeconds float64   `json:"duration_seconds"`
	Ongoing         bool      `json:"ongoing"`
}

func kind(from, to string) string {
	switch {
	case to == stOffline:
		return "logout"
	case from == stOffline:
		return "login"
	case to == stWrapUp:
		return "wrap_up"
	case to == stPaused && from == stPaused:
		return "pause_change"
	case to == stPaused:
		return "pause"
	}
	return "resume"
}

// span is a time an agent (or one channel of it) spent in one state.
type span struct {
	channel       string // "" for the agent's aggregate
	state, reason string
	start, end    time.Time
	entered       bool // began by a change inside the period (not carried in at its start)
}

// agentHistory is what one agent's history gives for the period.
type agentHistory struct {
	agent    string
	events   []PresenceEvent
	channels []span // per channel
	overall  []span // the agent's aggregate status
}

func (s *Service) historyKey(agent string) string { return s.ks.Key("presence", "history", agent) }

// agentsFor are the configured agents the query covers.
func (s *Service) agentsFor(q Query) []string {
	var out []string
	for _, a := range s.topo.Agents {
		if (q.Agent != "" && a.ID != q.Agent) || (q.Queue != "" && !slices.Contains(a.Queues, q.Queue)) ||
			(q.Channel != "" && !slices.Contains(a.Channels, q.Channel)) {
			continue
		}
		out = append(out, a.ID)
	}
	return out
}

// lookBack is how many entries before the period are read to learn each channel's state at its start.
const lookBack = 32

// histories reads the agents' history entries of the period (ids are the gateway's ms) and the few
// before it, and builds their events and spans, clipped to the period and to now.
func (s *Service) histories(ctx context.Context, q Query) ([]agentHistory, error) {
	agents := s.agentsFor(q)
	pipe := s.client.Pipeline()
	in := make([]*redis.XMessageSliceCmd, len(agents))
	before := make([]*redis.XMessageSliceCmd, len(agents))
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	for i, a := range agents {
		in[i] = pipe.XRange(ctx, s.historyKey(a), strconv.FormatInt(from, 10), "("+strconv.FormatInt(to, 10))
		before[i] = pipe.XRevRangeN(ctx, s.historyKey(a), "("+strconv.FormatInt(from, 10), "-", lookBack)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	end := q.To
	if now := s.clock.Now(); now.Before(end) {
		end = now
	}
	out := make([]agentHistory, 0, len(agents))
	for i, a := range agents {
		t, _ := s.topo.Agent(a)
		h := agentHistory{agent: a}
		cur := map[string]*span{}
		for _, ch := range t.Channels {
			cur[ch] = &span{channel: ch, state: stOffline, start: q.From}
		}
		// The latest entry before the period sets each channel's state at its start.
		seen := map[string]bool{}
		for _, e := range before[i].Val() {
			ch := str(e.Values["channel"])
			if sp, ok := cur[ch]; ok && !seen[ch] {
				seen[ch] = true
				sp.state, sp.reason = str(e.Values["to"]), str(e.Values["reason"])
			}
		}
		var agg []span
		fold := func(at time.Time, entered bool) {
			st, reason := aggregate(cur, t.Channels)
			if n := len(agg); n > 0 && agg[n-1].state == st && agg[n-1].reason == reason {
				return
			}
			if n := len(agg); n > 0 {
				if !agg[n-1].start.Before(at) {
					agg = agg[:n-1] // several changes at one instant: the last holds
				} else {
					agg[n-1].end = at
				}
			}
			agg = append(agg, span{state: st, reason: reason, start: at, end: end, entered: entered})
		}
		fold(q.From, false)
		for _, e := range in[i].Val() {
			ch := str(e.Values["channel"])
			ms, _ := strconv.ParseInt(str(e.Values["at"]), 10, 64)
			at := time.UnixMilli(ms).UTC()
			sp, ok := cur[ch]
			if !ok {
				continue
			}
			fromSt, toSt, reason := str(e.Values["from"]), str(e.Values["to"]), str(e.Values["reason"])
			if !seen[ch] && sp.state == stOffline && fromSt != stOffline {
				sp.state = fromSt // older than the look-back: the entry says what it was
			}
			seen[ch] = true
			if at.After(sp.start) {
				h.channels = append(h.channels, span{channel: ch, state: sp.state, reason: sp.reason, start: sp.start, end: at, entered: sp.entered})
			}
			stored := reason
			if toSt == stOffline || toSt == stOnline {
				stored = "" // a logout's reason is why it left, not a state
			}
			*sp = span{channel: ch, state: toSt, reason: stored, start: at, entered: true}
			if at.Before(end) {
				fold(at, true)
			}
			h.events = append(h.events, PresenceEvent{Agent: a, Channel: ch, Kind: kind(fromSt, toSt), From: fromSt, To: toSt,
				Reason: reason, ReasonLabel: s.reasons[reason], By: str(e.Values["by"]), Cause: str(e.Values["cause"]), At: at})
		}
		for _, ch := range t.Channels {
			sp := cur[ch]
			if end.After(sp.start) {
				h.channels = append(h.channels, span{channel: ch, state: sp.state, reason: sp.reason, start: sp.start, end: end, entered: sp.entered})
			}
		}
		// Each event lasts until the next change of its channel.
		for k := range h.events {
			ev := &h.events[k]
			ev.Until, ev.Ongoing = end, true
			for _, n := range h.events[k+1:] {
				if n.Channel == ev.Channel {
					ev.Until, ev.Ongoing = n.At, false
					break
				}
			}
			if ev.Until.Before(ev.At) {
				ev.Until = ev.At
			}
			ev.DurationSeconds = secs(ev.Until.Sub(ev.At))
		}
		sort.SliceStable(h.channels, func(i, j int) bool { return h.channels[i].channel < h.channels[j].channel })
		if n := len(agg); n > 0 && !agg[n-1].start.Before(end) {
			agg = agg[:n-1]
		}
		h.overall = agg
		out = append(out, h)
	}
	return out, nil
}

// aggregate is the agent's status from its channels': offline when no channel is logged in,
// wrap_up when one is in wrap-up, online when one is online, else paused (the first paused
// channel's reason) — the console's aggregate status.
func aggregate(cur map[string]*span, channels []string) (string, string) {
	st, paused, logged := stOffline, "", false
	for _, ch := range channels {
		sp := cur[ch]
		switch sp.state {
		case stWrapUp:
			st = stWrapUp
		case stOnline:
			if st != stWrapUp {
				st = stOnline
			}
		case stPaused:
			if paused == "" {
				paused = sp.reason
			}
		}
		if sp.state != stOffline {
			logged = true
		}
	}
	if logged && st == stOffline {
		return stPaused, paused
	}
	return st, ""
}

func secs(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func str(v any) string { s, _ := v.(string); return s }

// PresenceGroup is one line of the presence summary (seconds).
type PresenceGroup struct {
	Key           string             `json:"key"`
	LoggedSeconds float64            `json:"logged_seconds"`
	OnlineSeconds float64            `json:"online_seconds"`
	PausedSeconds float64            `json:"paused_seconds"`
	PausedBy      map[string]float64 `json:"paused_by_reason"`
	Pauses        int                `json:"pauses"`
	WrapUpSeconds float64            `json:"wrap_up_seconds"`
	FirstLogin    *time.Time         `json:"first_login"`
	LastLogout    *time.Time         `json:"last_logout"`
}

// PresenceReport is the presence summary.
type PresenceReport struct {
	Header Header          `json:"header"`
	Groups []PresenceGroup `json:"groups"`
}

// GroupsPresence are the group_by values of the presence summary.
var GroupsPresence = []string{"agent", "channel", "day", "reason"}

// Presence answers the presence summary. Without a channel filter (and for every group but
// channel) an agent's time is its aggregate status, so an agent on two channels is not counted
// twice; per channel, each channel's own.
func (s *Service) Presence(ctx context.Context, q Query) (PresenceReport, error) {
	if q.GroupBy == "" {
		q.GroupBy = "agent"
	}
	if !slices.Contains(GroupsPresence, q.GroupBy) {
		return PresenceReport{}, ErrBadGroupBy
	}
	hs, err := s.histories(ctx, q)
	if err != nil {
		return PresenceReport{}, err
	}
	groups := map[string]*PresenceGroup{}
	get := func(k string) *PresenceGroup {
		g, ok := groups[k]
		if !ok {
			g = &PresenceGroup{Key: k, PausedBy: map[string]float64{}}
			groups[k] = g
		}
		return g
	}
	for _, h := range hs {
		spans := h.overall
		if q.GroupBy == "channel" || q.Channel != "" {
			spans = nil
			for _, sp := range h.channels {
				if q.Channel == "" || sp.channel == q.Channel {
					spans = append(spans, sp)
				}
			}
		}
		for i, sp := range spans {
			prev, prevReason := "", ""
			if i > 0 && spans[i-1].channel == sp.channel {
				prev, prevReason = spans[i-1].state, spans[i-1].reason
			}
			for _, part := range s.splitDays(sp) {
				var key string
				switch q.GroupBy {
				case "agent":
					key = h.agent
				case "channel":
					key = sp.channel
				case "day":
					key = s.dayOf(part.start)
				case "reason":
					if sp.state != stPaused {
						continue
					}
					key = sp.reason
				}
				g := get(key)
				d := secs(part.end.Sub(part.start))
				switch sp.state {
				case stOnline:
					g.OnlineSeconds += d
				case stPaused:
					g.PausedSeconds += d
					g.PausedBy[sp.reason] += d
				case stWrapUp:
					g.WrapUpSeconds += d
				}
				if sp.state != stOffline {
					g.LoggedSeconds += d
				}
				if part.start.Equal(sp.start) && sp.entered {
					if sp.state == stPaused && (prev != stPaused || prevReason != sp.reason) {
						g.Pauses++
					}
					if sp.state != stOffline && (prev == stOffline || prev == "") && g.FirstLogin == nil {
						t := sp.start
						g.FirstLogin = &t
					}
					if sp.state == stOffline && prev != "" && prev != stOffline {
						t := sp.start
						g.LastLogout = &t
					}
				}
			}
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := PresenceReport{Header: s.header("presence", q), Groups: make([]PresenceGroup, 0, len(keys))}
	for _, k := range keys {
		out.Groups = append(out.Groups, *groups[k])
	}
	return out, nil
}

// splitDays cuts a span at midnights of the reports' time zone.
func (s *Service) splitDays(sp span) []span {
	var out []span
	for sp.start.Before(sp.end) {
		l := sp.start.In(s.loc)
		next := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, s.loc)
		part := sp
		if next.Before(sp.end) {
			part.end = next
		}
		out = append(out, part)
		sp.start = part.end
	}
	return out
}

// PresenceEventsReport is the detailed presence report, one page of it.
type PresenceEventsReport struct {
	Header Header          `json:"header"`
	Total  int             `json:"total"`
	Offset int             `json:"offset"`
	Limit  int             `json:"limit"`
	Rows   []PresenceEvent `json:"rows"`
}

// PresenceEvents answers the detailed report: every change in the period, by time; all when q.Limit is 0.
func (s *Service) PresenceEvents(ctx context.Context, q Query) (PresenceEventsReport, error) {
	hs, err := s.histories(ctx, q)
	if err != nil {
		return PresenceEventsReport{}, err
	}
	rows := []PresenceEvent{}
	for _, h := range hs {
		for _, e := range h.events {
			if q.Channel == "" || e.Channel == q.Channel {
				rows = append(rows, e)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].At.Before(rows[j].At) })
	out := PresenceEventsReport{Header: s.header("presence_events", q), Total: len(rows), Offset: q.Offset, Limit: q.Limit}
	if q.Limit > 0 {
		lo := min(q.Offset, len(rows))
		rows = rows[lo:min(lo+q.Limit, len(rows))]
	}
	out.Rows = rows
	return out, nil
}

// Segment is one bar of an agent's timeline.
type Segment struct {
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Label  string    `json:"label,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// AgentTimeline is an agent's aggregate status over the period.
type AgentTimeline struct {
	Agent    string    `json:"agent"`
	Name     string    `json:"name"`
	Segments []Segment `json:"segments"`
}

// TimelineReport draws each agent's day.
type TimelineReport struct {
	Header Header          `json:"header"`
	Agents []AgentTimeline `json:"agents"`
}

// Timeline answers each agent's aggregate status over the period.
func (s *Service) Timeline(ctx context.Context, q Query) (TimelineReport, error) {
	hs, err := s.histories(ctx, q)
	if err != nil {
		return TimelineReport{}, err
	}
	out := TimelineReport{Header: s.header("presence_timeline", q), Agents: make([]AgentTimeline, 0, len(hs))}
	for _, h := range hs {
		t, _ := s.topo.Agent(h.agent)
		at := AgentTimeline{Agent: h.agent, Name: t.Name, Segments: []Segment{}}
		for _, sp := range h.overall {
			at.Segments = append(at.Segments, Segment{State: sp.state, Reason: sp.reason, Label: s.reasons[sp.reason], Start: sp.start, End: sp.end})
		}
		out.Agents = append(out.Agents, at)
	}
	return out, nil
}
