package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// The embedded store (no redis URL) must serve asynq as a real Redis does: an agent's template is
// enqueued, throttled once by the (fake) Cloud API with a Retry-After, held as a retry the ops
// inspector lists, retried after the delay and sent; the inspector's queue list counts both attempts.
func TestEmbeddedStoreServesOutboundRetriesAndTheInspector(t *testing.T) {
	cfg := exampleConfig(t, nil)
	if !cfg.Redis.Embedded() {
		t.Fatal("the example must run on the embedded store")
	}
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{"100200300": cfg.WhatsApp.Numbers[0].AccessToken}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	if _, err := fake.AddRule(fakeapi.Throttle(whatsapp.CodeThroughput, time.Second, 1)); err != nil {
		t.Fatal(err)
	}
	cfg.WhatsApp.APIBaseURL = fake.URL()
	tg := startTestGateway(t, cfg, nil)
	if !tg.g.store.Embedded {
		t.Fatal("the gateway is not on the embedded store")
	}
	ana, _ := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, time.Hour, time.Now())
	admin := adminToken(t, cfg)
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	events := openStream(t, tg.base, ana)

	code, raw := do(t, "POST", tg.base+"/v1/conversations", ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990002",
	  "template":{"name":"welcome","language":"en_US","body_params":["Ana"]}}`))
	if code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	var started struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(raw, &started); err != nil || started.MessageID == "" {
		t.Fatalf("start answer: %s", raw)
	}

	// While the Retry-After runs, the task waits in the retry set, listed by the inspector.
	var retry struct {
		Tasks []struct {
			Type      string `json:"type"`
			State     string `json:"state"`
			Retried   int    `json:"retried"`
			LastError string `json:"last_error"`
		} `json:"tasks"`
	}
	listed := testutil.Within(5*time.Second, func() bool {
		code, raw = do(t, "GET", tg.base+"/v1/ops/queues/"+tasks.QueueTemplates+"/tasks?state=retry", admin, nil)
		if code != 200 {
			t.Fatalf("ops retry list: %d %s", code, raw)
		}
		if err := json.Unmarshal(raw, &retry); err != nil {
			t.Fatal(err)
		}
		return len(retry.Tasks) == 1
	})
	if !listed {
		t.Fatalf("the throttled send never showed as a retry; last list %s; fake failures %+v", raw, fake.Failures())
	}
	if tk := retry.Tasks[0]; tk.State != "retry" || tk.Retried != 1 || tk.LastError == "" {
		t.Errorf("retry task: got %+v, want state retry, retried 1, with its error", tk)
	}

	waitEvent(t, events, "the template's sent status after the retry", func(e streamEvent) bool {
		return e.Type == "message.status" && e.Message.ID == started.MessageID && e.Message.Status == "sent"
	})
	if calls, failures := fake.Calls(), fake.Failures(); len(calls) != 1 || calls[0].Template != "welcome" || len(failures) != 1 {
		t.Fatalf("provider: %d accepted %+v, %d failed, want one throttled then one accepted", len(calls), calls, len(failures))
	}

	var list struct {
		Queues []struct {
			Queue          string `json:"queue"`
			ProcessedToday int    `json:"processed_today"`
			FailedToday    int    `json:"failed_today"`
			Retry          int    `json:"retry"`
		} `json:"queues"`
	}
	// The worker records "sent" before asynq counts the task processed: read until it has.
	testutil.Within(5*time.Second, func() bool { // the checks below say what was missing
		code, raw = do(t, "GET", tg.base+"/v1/ops/queues", admin, nil)
		if code != 200 {
			t.Fatalf("ops queues: %d %s", code, raw)
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		for _, q := range list.Queues {
			if q.Queue == tasks.QueueTemplates && q.ProcessedToday >= 2 {
				return true
			}
		}
		return false
	})
	names := map[string]bool{}
	for _, q := range list.Queues {
		names[q.Queue] = true
		if q.Queue == tasks.QueueTemplates && (q.ProcessedToday != 2 || q.FailedToday != 1 || q.Retry != 0) {
			t.Errorf("templates queue: got %+v, want 2 processed today, 1 failed, none left to retry", q)
		}
	}
	for q := range tasks.Weights {
		if !names[q] {
			t.Errorf("ops queue list lacks %s: %s", q, raw)
		}
	}
	if code, _ := do(t, "GET", tg.base+"/v1/ops/queues", ana, nil); code != 403 {
		t.Errorf("ops queues with an agent token: got %d, want 403", code)
	}
}
