package routing

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

// TestStatusScriptWritesTheAgentsEvent: a send's outcome given the message as read in its turn
// (StatusUpdate.Before) has its message.status event written by the status script; the agent's
// stream then holds exactly the event UpdateStatus would have published (the message as stored),
// once. When the status did more than the caller could predict (statuses kept before the send's
// answer applied with it), the event carries what the message became.
func TestStatusScriptWritesTheAgentsEvent(t *testing.T) {
	client := redistest.Client(t)
	ctx := context.Background()
	cfg := testConfig("least_busy")
	cfg.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 5} // ana: three conversations
	ks := keyspace.New("t")
	clk := clock.NewFake(t0)
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clk})
	log := NewStreamLog(client, ks, 100)
	r := NewRouter(client, ks, topology.New(cfg), Options{Clock: clk, Publisher: log, Pauser: ps})
	defer r.Shutdown()
	ps.AddListener(r)
	if err := r.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	start := func(phone string) Message {
		t.Helper()
		_, m, _, err := r.StartConversation(ctx, StartRequest{Agent: "ana", Channel: "whatsapp", EntryPoint: "100",
			ContactPhone: phone, Message: Outbound{Kind: "template", Text: "Olá", Payload: json.RawMessage(`{"name":"t"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		read, err := r.Message(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		return read
	}
	last := "0"
	statusEvents := func() []Event {
		t.Helper()
		evs, err := log.Since(ctx, "ana", last, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []Event
		for _, ev := range evs {
			last = ev.ID
			if ev.Type == EventMessageStatus {
				out = append(out, ev)
			}
		}
		return out
	}
	same := func(what string, ev Event, m Message) {
		t.Helper()
		b, _ := json.Marshal(m)
		var want any
		_ = json.Unmarshal(b, &want)
		if !reflect.DeepEqual(ev.Message, want) {
			t.Errorf("%s: the event's message\n%v\nwant the stored\n%v", what, ev.Message, want)
		}
	}
	statusEvents()

	sent := start("5511900000001")
	m, changed, err := r.UpdateStatus(ctx, sent.ID, StatusUpdate{State: MessageSent, ProviderMessageID: "wamid.S1", Channel: "whatsapp", Before: &sent})
	if err != nil || !changed || m.Status != MessageSent {
		t.Fatalf("sent: %+v %v %v", m, changed, err)
	}
	if evs := statusEvents(); len(evs) != 1 {
		t.Fatalf("sent: %d message.status events, want 1", len(evs))
	} else {
		same("sent", evs[0], m)
	}

	failed := start("5511900000002")
	m, _, err = r.UpdateStatus(ctx, failed.ID, StatusUpdate{State: MessageFailed, Before: &failed,
		Error: &MessageError{Code: 131047, Title: "Re-engagement message", Details: "more than 24 hours have passed"}})
	if err != nil || m.Status != MessageFailed || m.Error == nil || m.Error.Summary == "" {
		t.Fatalf("failed: %+v %v", m, err)
	}
	if evs := statusEvents(); len(evs) != 1 {
		t.Fatalf("failed: %d message.status events, want 1", len(evs))
	} else {
		same("failed", evs[0], m)
	}

	// delivered came before the send's answer: the status script applies it too, so the message is
	// not what the worker predicted; the agent hears what it is.
	early := start("5511900000003")
	if _, outcome, err := r.ApplyProviderStatus(ctx, "whatsapp", "wamid.E1", StatusUpdate{State: MessageDelivered}); err != nil || outcome != StatusPending {
		t.Fatalf("early delivered: %s %v", outcome, err)
	}
	m, _, err = r.UpdateStatus(ctx, early.ID, StatusUpdate{State: MessageSent, ProviderMessageID: "wamid.E1", Channel: "whatsapp", Before: &early})
	if err != nil || m.Status != MessageDelivered {
		t.Fatalf("sent after an early delivered: %+v %v", m, err)
	}
	if evs := statusEvents(); len(evs) != 1 {
		t.Fatalf("sent after an early delivered: %d message.status events, want 1", len(evs))
	} else {
		same("sent after an early delivered", evs[0], m)
	}

	// A repeat changes nothing and tells no one.
	if _, changed, err := r.UpdateStatus(ctx, sent.ID, StatusUpdate{State: MessageSent, ProviderMessageID: "wamid.S1", Channel: "whatsapp", Before: &sent}); err != nil || changed {
		t.Fatalf("repeat: %v %v", changed, err)
	}
	if evs := statusEvents(); len(evs) != 0 {
		t.Errorf("a repeated status: %d events, want none", len(evs))
	}
}
