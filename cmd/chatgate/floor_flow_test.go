package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
)

// TestOutOfHoursAndPlaceInLineReachTheVisitor drives the wired gateway: WebChat visitors who write
// while their queue is closed get its closed_message once, through the WebChat sender (status sent),
// wait for the opening (closed_action wait), and are told their place in line by the sweeper.
func TestOutOfHoursAndPlaceInLineReachTheVisitor(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	for i := range cfg.Queues {
		if cfg.Queues[i].ID == "support" {
			q := &cfg.Queues[i]
			q.Hours = &configs.Hours{TimeZone: "America/Sao_Paulo"} // no intervals: closed
			q.ClosedMessage = "Estamos fechados agora."
			q.PositionMessage = "Você é o {{position}}º da fila ({{estimated_wait}})."
			q.PositionEvery = time.Minute
		}
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	tg := startTestGateway(t, cfg, nil)
	supervisor := cliToken(t, "supervisor", "supervisor")
	write := func(visitor, text string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"simulate", "webchat", "--url", tg.base, "--site", "shop", "--visitor", visitor, "--text", text}, &out, &errOut); code != exitOK {
			t.Fatalf("simulate webchat: exit %d\n%s%s", code, out.String(), errOut.String())
		}
	}
	write("v-1", "Oi")
	write("v-2", "Olá")
	write("v-1", "Alguém?")

	code, raw := do(t, "GET", tg.base+"/v1/queues", supervisor, nil)
	if code != 200 || !strings.Contains(string(raw), `"id":"support","name":"Support","strategy":"least_busy"`) {
		t.Fatalf("queues: %d %s", code, raw)
	}
	var qs struct {
		Queues []struct {
			ID      string `json:"id"`
			Open    bool   `json:"open"`
			OpensAt string `json:"opens_at"`
		} `json:"queues"`
	}
	_ = json.Unmarshal(raw, &qs)
	for _, q := range qs.Queues {
		if q.ID == "support" && (q.Open || q.OpensAt != "") {
			t.Fatalf("support: %+v, want closed and never opening", q)
		}
	}

	// The waiting cards, in line order, and their conversations.
	ctx := context.Background()
	cards := tg.g.store.Client.ZRange(ctx, tg.g.keys.Key("waiting", "support", "webchat"), 0, -1).Val()
	if len(cards) != 2 {
		t.Fatalf("waiting: %v", cards)
	}
	texts := func(card string) []string {
		conv := tg.g.store.Client.HGet(ctx, tg.g.keys.Key("card", card), "conversation_id").Val()
		_, raw := do(t, "GET", tg.base+"/v1/conversations/"+conv+"/messages", supervisor, nil)
		var m struct {
			Messages []struct {
				Direction, Text, Status string
			} `json:"messages"`
		}
		_ = json.Unmarshal(raw, &m)
		var out []string
		for _, x := range m.Messages {
			if x.Direction == "out" {
				out = append(out, x.Text+"|"+x.Status)
			}
		}
		return out
	}
	for i, card := range cards {
		want := []string{"Estamos fechados agora.|sent", "Você é o " + string(rune('1'+i)) + "º da fila (alguns minutos).|sent"}
		testutil.Eventually(t, 20*time.Second, "the closed message once, then the place in line", func() bool {
			return strings.Join(texts(card), "\n") == strings.Join(want, "\n")
		})
	}
}
