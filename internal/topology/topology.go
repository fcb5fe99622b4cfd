// Package topology is the contact center's shape, built once from the configuration by the
// composition root: the channels and what each allows, the queues, the agents with their capacities
// and channel groups, and the entry points through which customers arrive. routing, presence and
// outbound receive it instead of the whole configuration.
package topology

import (
	"sort"
	"time"

	"github.com/chatgate/chatgate/configs"
)

// The channels the gateway has adapters for.
const (
	WhatsApp = "whatsapp"
	WebChat  = "webchat"
)

// Channel is what a channel allows.
type Channel struct {
	ID string
	// Window is how long after the customer's last message agents may write free-form messages;
	// afterwards only templates go out (0: no window).
	Window time.Duration
	// AgentStarts: agents may start a conversation on the channel (from an approved template).
	AgentStarts bool
}

// capabilities of the known channels. WhatsApp's customer service window is Meta's rule: free-form
// messages only within 24 hours of the customer's last message, and businesses may open a
// conversation with a template. A configured channel not listed here allows neither.
var capabilities = map[string]Channel{
	WhatsApp: {ID: WhatsApp, Window: 24 * time.Hour, AgentStarts: true},
	WebChat:  {ID: WebChat},
}

// Agent is one configured agent.
type Agent struct {
	ID     string
	Name   string
	Queues []string
	// Capacity is how many conversations the agent holds at once on each enabled channel.
	Capacity map[string]int
	// Channels are the enabled channels, sorted.
	Channels []string
	// Groups maps each enabled channel to the channels that pause and resume with it (itself
	// included): two channels are grouped when a queue the agent serves is attached to both.
	Groups map[string][]string
}

// EntryPoint is where a channel's customers arrive (a WhatsApp number, a WebChat site) and the queue
// that takes them.
type EntryPoint struct {
	Channel string
	ID      string
	Queue   string
}

// Topology is the contact center's shape. It is read-only once built.
type Topology struct {
	// Queues, Agents and EntryPoints keep the configuration's order.
	Queues       []configs.Queue
	Agents       []Agent
	EntryPoints  []EntryPoint
	PauseReasons []configs.PauseReason

	channels map[string]Channel
	queues   map[string]int
	agents   map[string]int
}

// New builds the topology of a validated configuration.
func New(cfg *configs.Config) *Topology {
	t := &Topology{Queues: cfg.Queues, PauseReasons: cfg.PauseReasons,
		channels: map[string]Channel{}, queues: map[string]int{}, agents: map[string]int{}}
	for i, q := range cfg.Queues {
		t.queues[q.ID] = i
		for _, ch := range q.Channels {
			t.channels[ch] = channel(ch)
		}
	}
	for _, a := range cfg.Agents {
		agent := Agent{ID: a.ID, Name: a.Name, Queues: a.Queues, Capacity: map[string]int{}}
		for ch, c := range a.Channels {
			agent.Capacity[ch] = c.Capacity
			agent.Channels = append(agent.Channels, ch)
			t.channels[ch] = channel(ch)
		}
		sort.Strings(agent.Channels)
		agent.Groups = t.groups(agent)
		t.agents[a.ID] = len(t.Agents)
		t.Agents = append(t.Agents, agent)
	}
	for _, n := range cfg.WhatsApp.Numbers {
		t.EntryPoints = append(t.EntryPoints, EntryPoint{Channel: WhatsApp, ID: n.PhoneNumberID, Queue: n.Queue})
	}
	for _, s := range cfg.WebChat.Sites {
		t.EntryPoints = append(t.EntryPoints, EntryPoint{Channel: WebChat, ID: s.ID, Queue: s.Queue})
	}
	return t
}

func channel(id string) Channel {
	if c, ok := capabilities[id]; ok {
		return c
	}
	return Channel{ID: id}
}

// Channel returns what a channel allows; an unknown channel allows nothing.
func (t *Topology) Channel(id string) Channel {
	if c, ok := t.channels[id]; ok {
		return c
	}
	return channel(id)
}

// Queue returns a configured queue.
func (t *Topology) Queue(id string) (configs.Queue, bool) {
	i, ok := t.queues[id]
	if !ok {
		return configs.Queue{}, false
	}
	return t.Queues[i], true
}

// Agent returns a configured agent.
func (t *Topology) Agent(id string) (Agent, bool) {
	i, ok := t.agents[id]
	if !ok {
		return Agent{}, false
	}
	return t.Agents[i], true
}

// groups computes the connected components of the agent's channel–queue graph.
func (t *Topology) groups(a Agent) map[string][]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] != x {
			parent[x] = find(parent[x])
		}
		return parent[x]
	}
	for _, ch := range a.Channels {
		parent[ch] = ch
	}
	for _, qid := range a.Queues {
		q, _ := t.Queue(qid)
		var first string
		for _, ch := range q.Channels {
			if _, enabled := a.Capacity[ch]; !enabled {
				continue
			}
			if first == "" {
				first = ch
				continue
			}
			parent[find(ch)] = find(first)
		}
	}
	groups := map[string][]string{}
	for _, ch := range a.Channels {
		root := find(ch)
		for _, other := range a.Channels {
			if find(other) == root {
				groups[ch] = append(groups[ch], other)
			}
		}
	}
	return groups
}
