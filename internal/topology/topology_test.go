package topology

import (
	"reflect"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
)

func testConfig() *configs.Config {
	return &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues: []configs.Queue{
			{ID: "sales", Channels: []string{"whatsapp", "webchat"}},
			{ID: "support", Channels: []string{"webchat"}},
			{ID: "voice", Channels: []string{"phone"}},
		},
		Agents: []configs.Agent{
			{ID: "ana", Name: "Ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{
				"whatsapp": {Capacity: 3}, "webchat": {Capacity: 5}, "phone": {Capacity: 1}}},
			{ID: "bia", Queues: []string{"support", "voice"}, Channels: map[string]configs.AgentChannel{
				"webchat": {Capacity: 2}, "phone": {Capacity: 1}}},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "200", Queue: "sales"}, {PhoneNumberID: "100", Queue: "sales"}}},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "shop", Queue: "support"}}},
	}
}

func TestChannelCapabilities(t *testing.T) {
	topo := New(testConfig())
	cases := []struct {
		id     string
		window time.Duration
		starts bool
	}{
		{"whatsapp", 24 * time.Hour, true},
		{"webchat", 0, false},
		{"phone", 0, false},   // configured, but no adapter grants it anything
		{"unknown", 0, false}, // not configured at all
	}
	for _, c := range cases {
		got := topo.Channel(c.id)
		if got.ID != c.id || got.Window != c.window || got.AgentStarts != c.starts {
			t.Errorf("Channel(%q) = %+v, want window %v, agents start %v", c.id, got, c.window, c.starts)
		}
	}
}

func TestAgentsQueuesAndEntryPoints(t *testing.T) {
	topo := New(testConfig())
	ana, ok := topo.Agent("ana")
	if !ok {
		t.Fatal("ana is configured")
	}
	if want := []string{"phone", "webchat", "whatsapp"}; !reflect.DeepEqual(ana.Channels, want) {
		t.Errorf("ana's channels: %v, want %v (sorted)", ana.Channels, want)
	}
	if ana.Capacity["webchat"] != 5 || ana.Name != "Ana" {
		t.Errorf("ana: %+v", ana)
	}
	// sales joins whatsapp and webchat; phone is in none of ana's queues, so alone.
	wantGroups := map[string][]string{"phone": {"phone"}, "webchat": {"webchat", "whatsapp"}, "whatsapp": {"webchat", "whatsapp"}}
	if !reflect.DeepEqual(ana.Groups, wantGroups) {
		t.Errorf("ana's groups: %v, want %v", ana.Groups, wantGroups)
	}
	bia, _ := topo.Agent("bia")
	// support (webchat) and voice (phone) are separate queues: no shared queue, separate groups.
	if want := map[string][]string{"phone": {"phone"}, "webchat": {"webchat"}}; !reflect.DeepEqual(bia.Groups, want) {
		t.Errorf("bia's groups: %v, want %v", bia.Groups, want)
	}
	if _, ok := topo.Agent("nobody"); ok {
		t.Error("an unknown agent was found")
	}
	if q, ok := topo.Queue("support"); !ok || q.ID != "support" {
		t.Errorf("Queue(support) = %+v, %v", q, ok)
	}
	if _, ok := topo.Queue("nope"); ok {
		t.Error("an unknown queue was found")
	}
	want := []EntryPoint{{WhatsApp, "200", "sales"}, {WhatsApp, "100", "sales"}, {WebChat, "shop", "support"}}
	if !reflect.DeepEqual(topo.EntryPoints, want) {
		t.Errorf("entry points: %v, want %v (configuration order)", topo.EntryPoints, want)
	}
}
