package presence

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/chatgate/chatgate/internal/topology"
)

// ChannelPresence is one channel's state for a UI: since is when the state began (a running clock).
type ChannelPresence struct {
	Channel     string     `json:"channel"`
	State       State      `json:"state"`
	Since       *time.Time `json:"since,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	ReasonLabel string     `json:"reason_label,omitempty"`
	// Group lists the channels that pause and resume with this one (shared-queue rule).
	Group []string `json:"group"`
	// WrapUpUntil: the channel is in wrap-up after a conversation closed and takes no new offer
	// until then (routing writes the <channel>:wrap_up_until field; the agent may end it early).
	WrapUpUntil *time.Time `json:"wrap_up_until,omitempty"`
}

// AgentPresence is an agent's presence on every enabled channel and the aggregate chat status:
// offline when no channel is logged in, paused when every logged-in channel is paused, else online.
type AgentPresence struct {
	Agent                string            `json:"agent"`
	Name                 string            `json:"name,omitempty"`
	Status               State             `json:"status"`
	Logged               int               `json:"logged"`
	Enabled              int               `json:"enabled"`
	CanStartConversation bool              `json:"can_start_conversation"`
	Channels             []ChannelPresence `json:"channels"`
}

func (s *Store) build(agent string, t *topology.Agent, h map[string]string, now time.Time) AgentPresence {
	p := AgentPresence{Agent: agent, Name: t.Name, Enabled: len(t.Channels), Channels: make([]ChannelPresence, 0, len(t.Channels))}
	paused := 0
	for _, ch := range t.Channels {
		st := State(h[ch])
		if st == "" {
			st = Offline
		}
		cp := ChannelPresence{Channel: ch, State: st, Reason: h[ch+":reason"], Group: t.Groups[ch]}
		if ms, err := strconv.ParseInt(h[ch+":since"], 10, 64); err == nil {
			since := time.UnixMilli(ms).UTC()
			cp.Since = &since
		}
		if cp.Reason != "" {
			cp.ReasonLabel = s.reasons[cp.Reason]
		}
		if ms, err := strconv.ParseInt(h[ch+":wrap_up_until"], 10, 64); err == nil && ms > now.UnixMilli() && st != Offline {
			until := time.UnixMilli(ms).UTC()
			cp.WrapUpUntil = &until
		}
		if st != Offline {
			p.Logged++
			if s.channels.Channel(ch).AgentStarts {
				p.CanStartConversation = true
			}
		}
		if st == Paused {
			paused++
		}
		p.Channels = append(p.Channels, cp)
	}
	switch {
	case p.Logged == 0:
		p.Status = Offline
	case paused == p.Logged:
		p.Status = Paused
	default:
		p.Status = Online
	}
	return p
}

// Totals are the time an agent spent online and paused (per reason) on each channel during one UTC day.
type Totals struct {
	Agent    string                   `json:"agent"`
	Day      string                   `json:"day"`
	Channels map[string]ChannelTotals `json:"channels"`
}

// ChannelTotals is one channel's share of a day, in seconds.
type ChannelTotals struct {
	OnlineSeconds float64            `json:"online_seconds"`
	PausedSeconds map[string]float64 `json:"paused_seconds"`
}

// Totals returns the day's totals, including the part of the current state not yet closed by a change.
func (s *Store) Totals(ctx context.Context, agent string, day time.Time) (Totals, error) {
	t, ok := s.agents[agent]
	if !ok {
		return Totals{}, ErrUnknownAgent
	}
	dayStart := time.Unix(unixDay(day)*86400, 0).UTC()
	dayEnd := dayStart.Add(24 * time.Hour)
	pipe := s.client.Pipeline()
	// The HASH holds every kept day (a few fields per channel and day); the day's are picked by prefix.
	stored := pipe.HGetAll(ctx, s.keys.totals(agent))
	state := pipe.HGetAll(ctx, s.keys.state(agent))
	if _, err := pipe.Exec(ctx); err != nil {
		return Totals{}, err
	}
	out := Totals{Agent: agent, Day: dayStart.Format("2006-01-02"), Channels: map[string]ChannelTotals{}}
	for _, ch := range t.Channels {
		out.Channels[ch] = ChannelTotals{PausedSeconds: map[string]float64{}}
	}
	add := func(ch, field string, ms int64) {
		ct, ok := out.Channels[ch]
		if !ok {
			return
		}
		if field == "online" {
			ct.OnlineSeconds += float64(ms) / 1000
		} else if reason, ok := strings.CutPrefix(field, "paused:"); ok {
			ct.PausedSeconds[reason] += float64(ms) / 1000
		}
		out.Channels[ch] = ct
	}
	dayPrefix := totalsField(unixDay(dayStart), "")
	for field, v := range stored.Val() {
		field, ok := strings.CutPrefix(field, dayPrefix)
		if !ok {
			continue
		}
		ch, rest, ok := strings.Cut(field, ":")
		ms, err := strconv.ParseInt(v, 10, 64)
		if ok && err == nil {
			add(ch, rest, ms)
		}
	}
	now := s.clock.Now()
	h := state.Val()
	for _, ch := range t.Channels {
		st := State(h[ch])
		since, err := strconv.ParseInt(h[ch+":since"], 10, 64)
		if err != nil || (st != Online && st != Paused) {
			continue
		}
		from := maxTime(time.UnixMilli(since), dayStart)
		to := minTime(now, dayEnd)
		if to.After(from) {
			field := "online"
			if st == Paused {
				field = "paused:" + h[ch+":reason"]
			}
			add(ch, field, to.Sub(from).Milliseconds())
		}
	}
	return out, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
