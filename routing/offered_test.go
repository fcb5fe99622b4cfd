package routing

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// countingLog is the agents' log, counting the events published from Go.
type countingLog struct {
	*StreamLog
	published map[string]int // type → events
}

func (c *countingLog) Publish(ctx context.Context, agent string, ev Event) (string, error) {
	c.published[ev.Type]++
	return c.StreamLog.Publish(ctx, agent, ev)
}

// The intake script appends card.offered of a new customer's card itself; what it writes is, byte
// for byte, what Go writes for that card (StreamLog.Publish of cardWithConversation), and where it
// cannot write a string as Go does, Go publishes it.
func TestIntakeAppendsCardOfferedAsGoDoes(t *testing.T) {
	client := redistest.Client(t)
	ctx := context.Background()
	cfg := testConfig("longest_idle")
	cfg.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 100}
	// a time with milliseconds whose last digit is 0: Go drops the fraction's trailing zeros
	clk := clock.NewFake(time.Date(2027, 2, 28, 23, 59, 58, 120e6, time.UTC))
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{Clock: clk})
	log := &countingLog{StreamLog: NewStreamLog(client, ks, 100), published: map[string]int{}}
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clk, Publisher: log, Pauser: ps})
	ps.AddListener(r)
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("ab", 69) + "xé and more" // cut at 140 bytes inside é: Go writes what is left its own way
	cases := []struct {
		text, name, username string
		inScript             bool
	}{
		{"hello", "Ana Cliente", "", true},
		{"", "", "", true},
		{`<b> & "quotes" \ back` + "\n\r\t", "Zoë <O'Brien> & co", "zoe_b", true},
		{"olá, 日本語 😀", "José", "", true},
		{strings.Repeat("x", 200), "", "", true},
		{long, "", "", false},
		{"line\u2028sep", "", "", false},
		{"bell\x07", "", "", false},
		{"bad \xff byte", "", "", false},
		{"fine", "bad name \xc3", "", false},
	}
	for i, c := range cases {
		clk.Advance(1001 * time.Millisecond)
		before := log.published[EventCardOffered]
		ids := []Identifier{{Kind: IdentPhone, Value: fmt.Sprintf("55119%07d", i)}}
		if c.username != "" {
			ids = append(ids, Identifier{Kind: IdentUsername, Value: c.username})
		}
		res, err := r.Deliver(ctx, []Inbound{{Channel: "whatsapp", EntryPoint: "100", Identifiers: ids, ContactName: c.name,
			ProviderMessageID: fmt.Sprintf("wamid.%d", i), At: clk.Now(), Kind: "text", Text: c.text}})
		if err != nil || res.Recorded != 1 {
			t.Fatalf("case %d: %+v %v", i, res, err)
		}
		if got := log.published[EventCardOffered] - before; got != map[bool]int{true: 0, false: 1}[c.inScript] {
			t.Errorf("case %d (%q): %d card.offered published from Go, want in the script: %v", i, c.text, got, c.inScript)
		}
		stored, err := log.log.After(ctx, ks.Key("events", "ana"), "0", 0)
		if err != nil || len(stored) == 0 {
			t.Fatalf("case %d: %v %v", i, stored, err)
		}
		ev := stored[len(stored)-1]
		if ev.Type != EventCardOffered {
			t.Fatalf("case %d: last event %s", i, ev.Type)
		}
		var got Event
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil {
			t.Fatalf("case %d: %v: %s", i, err, ev.Data)
		}
		card, _ := client.HGetAll(ctx, ks.Key("card", got.Card.(map[string]any)["id"].(string))).Result()
		conv, _ := client.HGetAll(ctx, ks.Key("conv", card["conversation_id"])).Result()
		want, _ := json.Marshal(Event{Type: EventCardOffered, At: clk.Now().UTC(), Card: cardWithConversation(card, conv)})
		if ev.Data != string(want) {
			t.Errorf("case %d: stored\n%s\nGo writes\n%s", i, ev.Data, want)
		}
		if card["state"] != CardOffered || card["agent"] != "ana" || conv["agent"] != "ana" || conv["offers"] != "1" {
			t.Errorf("case %d: card %v conversation %v", i, card, conv)
		}
	}
}
