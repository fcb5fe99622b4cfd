package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks"
	"github.com/chatgate/chatgate/webhooks/whatsapp"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/whatsapp/*.want.json from what the gateway does now (review the diff!)")

// corpusFile is the part of a notification the test needs to know what to look for in Redis.
type corpusFile struct {
	Entry []struct {
		Changes []struct {
			Value struct {
				Metadata struct {
					PhoneNumberID string `json:"phone_number_id"`
				} `json:"metadata"`
				Messages []struct {
					ID string `json:"id"`
				} `json:"messages"`
				Statuses []struct {
					ID              string `json:"id"`
					RecipientID     string `json:"recipient_id"`
					RecipientUserID string `json:"recipient_user_id"`
				} `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// TestCorpus posts every notification of testdata/whatsapp (Meta's examples and public SDKs'
// fixtures, listed in its README), signed, through the real HTTP handler to real Redis, with ana
// online. For a status, the send it is about is recorded first (a message ana sent, its wamid
// known). It then compares field by field, with the file's .want.json: the answer, every stored
// message and its conversation, every status's message, and the events ana's stream received.
func TestCorpus(t *testing.T) {
	files := testutil.Fixtures(t, "testdata", "whatsapp", "*.json")
	var inputs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".want.json") {
			inputs = append(inputs, f)
		}
	}
	if len(inputs) < 30 {
		t.Fatalf("the corpus has %d notifications, want at least 30", len(inputs))
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := stableIDs(runCorpusFile(t, body)).(map[string]any)
			wantPath := strings.TrimSuffix(in, ".json") + ".want.json"
			if *updateCorpus {
				out, _ := json.MarshalIndent(got, "", "  ")
				if err := os.WriteFile(wantPath, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			raw, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("%v (run go test ./webhooks -run TestCorpus -update-corpus once, then review the file)", err)
			}
			var want any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s: %v", wantPath, err)
			}
			var gotGeneric any
			b, _ := json.Marshal(got)
			_ = json.Unmarshal(b, &gotGeneric)
			for _, d := range diffJSON("", want, gotGeneric) {
				t.Error(d)
			}
		})
	}
}

// generatedID is the shape of the ids the gateway makes (ULIDs): contacts' among them, so they differ
// from run to run and are compared as "<generated>".
var generatedID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// stableIDs replaces every generated id in a report (maps and slices, through a JSON round trip).
func stableIDs(v any) any {
	b, _ := json.Marshal(v)
	var g any
	_ = json.Unmarshal(b, &g)
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		case string:
			if generatedID.MatchString(x) {
				return "<generated>"
			}
		}
		return v
	}
	return walk(g)
}

// runCorpusFile serves one notification on a fresh database and reports what became of it.
func runCorpusFile(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var f corpusFile
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatal(err)
	}
	numbers := map[string]bool{}
	var msgIDs []string
	var statuses [][2]string
	for _, e := range f.Entry {
		for _, ch := range e.Changes {
			if id := ch.Value.Metadata.PhoneNumberID; id != "" {
				numbers[id] = true
			}
			for _, m := range ch.Value.Messages {
				msgIDs = append(msgIDs, m.ID)
			}
			for _, s := range ch.Value.Statuses {
				// A send to a user who hides their number has only the business-scoped user id.
				recipient := s.RecipientID
				if recipient == "" {
					recipient = s.RecipientUserID
				}
				statuses = append(statuses, [2]string{s.ID, recipient})
			}
		}
	}
	cfg := &configs.Config{
		Queues: []configs.Queue{{ID: "sales", Channels: []string{"whatsapp"}, Strategy: "longest_idle", OfferTimeout: time.Hour}},
		Agents: []configs.Agent{{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 50}}}},
	}
	for id := range numbers {
		cfg.WhatsApp.Numbers = append(cfg.WhatsApp.Numbers, configs.Number{PhoneNumberID: id, Queue: "sales"})
	}
	client := redistest.Client(t)
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ks := keyspace.New("t")
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: cfg.Presence.HistoryRetention, Clock: clock.Real{}})
	router := routing.NewRouter(client, ks, topology.New(cfg), routing.Options{Clock: clock.Real{}, Logger: logger, Pauser: ps})
	ps.AddListener(router)
	t.Cleanup(router.Shutdown)
	if err := router.SyncCapacity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(ctx, "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: prometheus.NewRegistry(), Unavailable: redisx.IsUnavailable,
		BodyLimit: 64 << 10, RouteBodyLimits: map[string]int{"/webhooks/whatsapp": 4 << 20}})
	webhooks.NewHandler("whatsapp", whatsapp.New(appSecret, "", "verify-token"), router, logger, webhooks.NewMetrics(prometheus.NewRegistry())).Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	url := "http://" + ln.Addr().String()

	// The sends the statuses are about: a conversation with the recipient, ana's message in it, and
	// the provider's answer recording its wamid.
	sent := map[string]string{}
	for i, s := range statuses {
		if _, ok := sent[s[0]]; ok {
			continue
		}
		entry := ""
		for id := range numbers {
			entry = id
		}
		if _, err := router.Deliver(ctx, []routing.Inbound{{Channel: "whatsapp", EntryPoint: entry, ContactID: s[1], ProviderMessageID: fmt.Sprintf("setup-%d", i),
			At: time.Now(), Kind: "text", Text: "setup"}}); err != nil {
			t.Fatal(err)
		}
		convID := client.Get(ctx, "cg:{t}:convopen:whatsapp:"+entry+":"+s[1]).Val()
		m, err := router.RecordOutbound(ctx, convID, "ana", "text", "resposta da ana", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := router.UpdateStatus(ctx, m.ID, routing.StatusUpdate{State: "sent", ProviderMessageID: s[0], At: time.Unix(1600000000, 0)}); err != nil {
			t.Fatal(err)
		}
		sent[s[0]] = m.ID
	}
	events := routing.NewStreamLog(client, ks, 0)
	before, err := events.Since(ctx, "ana", "0", 10000)
	if err != nil {
		t.Fatal(err)
	}

	status, resp := post(t, url, body, signed(body))
	out := map[string]any{"http_status": status}
	var receipt any
	if err := json.Unmarshal([]byte(resp), &receipt); err != nil {
		t.Fatalf("answer %q: %v", resp, err)
	}
	out["answer"] = receipt

	var stored []any
	for _, pid := range msgIDs {
		// Read back through routing, which completes the compact payload from the conversation.
		m, err := router.Message(ctx, routing.InboundMessageID("whatsapp", "", pid))
		if errors.Is(err, routing.ErrNotFound) {
			stored = append(stored, map[string]any{"provider_message_id": pid, "stored": false})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{"direction": m.Direction, "channel": m.Channel, "kind": m.Kind, "text": m.Text,
			"at": strconv.FormatInt(m.At.UnixMilli(), 10), "payload": string(m.Payload)}
		conv := client.HGetAll(ctx, "cg:{t}:conv:"+m.ConversationID).Val()
		stored = append(stored, map[string]any{
			"provider_message_id": pid,
			"stored":              true,
			"message":             pick(h, "direction", "channel", "kind", "text", "at", "payload"),
			"conversation":        pick(conv, "channel", "entry_point", "queue", "state", "contact_id", "contact_name", "contact_phone", "last_customer_message_at"),
		})
	}
	out["messages"] = stored
	var outbound []any
	for _, s := range statuses {
		id, ok := sent[s[0]]
		if !ok {
			continue
		}
		h := client.HGetAll(ctx, "cg:{t}:msg:"+id).Val()
		outbound = append(outbound, map[string]any{"provider_message_id": s[0],
			"message": pick(h, "direction", "provider_message_id", "status", "status_at", "error_code", "error_title", "error_message",
				"error_details", "deleted_at", "warning_code", "warning_title", "warning_message", "warning_details")})
		delete(sent, s[0])
	}
	out["statuses"] = outbound
	after, err := events.Since(ctx, "ana", "0", 10000)
	if err != nil {
		t.Fatal(err)
	}
	var evs []any
	for _, ev := range after[len(before):] {
		evs = append(evs, eventFacts(ev))
	}
	out["events"] = evs
	return out
}

// pick keeps the named fields that are set, JSON fields decoded so the comparison goes inside them.
func pick(h map[string]string, fields ...string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		v, ok := h[f]
		if !ok || v == "" {
			continue
		}
		if f == "payload" {
			var p any
			if json.Unmarshal([]byte(v), &p) == nil {
				out[f] = p
				continue
			}
		}
		out[f] = v
	}
	return out
}

// eventFacts is an event without what differs from run to run (ids, times of this run).
func eventFacts(ev routing.Event) map[string]any {
	out := map[string]any{"type": ev.Type}
	strip := func(v any, keep ...string) map[string]any {
		b, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		res := map[string]any{}
		for _, k := range keep {
			if x, ok := m[k]; ok {
				res[k] = x
			}
		}
		return res
	}
	if ev.Message != nil {
		msg := strip(ev.Message, "direction", "kind", "text", "payload", "status", "provider_message_id", "error", "warning", "deleted_at")
		if msg["direction"] == "out" {
			delete(msg, "at")
		}
		out["message"] = msg
	}
	if ev.Card != nil {
		out["card"] = strip(ev.Card, "state", "queue", "channel", "preview", "contact")
	}
	return out
}

// diffJSON lists every path where got differs from want.
func diffJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %v, want an object", orRoot(path), short(got))}
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !wok:
				out = append(out, fmt.Sprintf("%s.%s: got %v, want no such field", path, k, short(gv)))
			case !gok:
				out = append(out, fmt.Sprintf("%s.%s: missing, want %v", path, k, short(wv)))
			default:
				out = append(out, diffJSON(path+"."+k, wv, gv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %v, want %v", orRoot(path), short(got), short(want))}
		}
		var out []string
		for i := range w {
			out = append(out, diffJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: got %v, want %v", orRoot(path), short(got), short(want))}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// TestCorpusCoversWhatMetaSends fails when the corpus loses a case: every message kind, every
// status, both contact shapes, a change's own errors.
func TestCorpusCoversWhatMetaSends(t *testing.T) {
	files := testutil.Fixtures(t, "testdata", "whatsapp", "*.json")
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, ".want.json") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var n struct {
			Entry []struct {
				Changes []struct {
					Value struct {
						Contacts []map[string]any `json:"contacts"`
						Messages []map[string]any `json:"messages"`
						Statuses []map[string]any `json:"statuses"`
						Errors   []any            `json:"errors"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range n.Entry {
			for _, ch := range e.Changes {
				v := ch.Value
				for _, c := range v.Contacts {
					_, phone := c["wa_id"]
					_, bsuid := c["user_id"]
					seen[fmt.Sprintf("contact phone=%v bsuid=%v", phone, bsuid)] = true
				}
				for _, m := range v.Messages {
					kind, _ := m["type"].(string)
					seen["kind "+kind] = true
					if it, ok := m["interactive"].(map[string]any); ok {
						seen["interactive "+fmt.Sprint(it["type"])] = true
					}
					if a, ok := m["audio"].(map[string]any); ok && a["voice"] == true {
						seen["voice"] = true
					}
					if _, ok := m["referral"]; ok {
						seen["referral"] = true
					}
					if _, ok := m["errors"]; ok {
						seen["message errors"] = true
					}
					if _, ok := m["timestamp"].(float64); ok {
						seen["numeric timestamp"] = true
					}
				}
				for _, s := range v.Statuses {
					seen["status "+fmt.Sprint(s["status"])] = true
					if _, ok := s["recipient_id"]; !ok {
						seen["status without recipient_id"] = true
					}
				}
				if len(v.Errors) > 0 {
					seen["change errors"] = true
				}
			}
			if len(e.Changes) > 1 {
				seen["several changes"] = true
			}
		}
	}
	for _, want := range []string{"kind text", "kind image", "kind audio", "voice", "kind video", "kind document", "kind sticker",
		"kind location", "kind contacts", "interactive button_reply", "interactive list_reply", "interactive nfm_reply", "kind button",
		"kind reaction", "kind order", "kind system", "referral", "kind unsupported", "message errors", "change errors", "numeric timestamp",
		"status sent", "status delivered", "status read", "status failed", "status played", "status deleted", "status warning",
		"status seen_on_glasses", "status without recipient_id", "kind unknown", "several changes", "contact phone=true bsuid=true", "contact phone=false bsuid=true", "contact phone=true bsuid=false"} {
		if !seen[want] {
			t.Errorf("the corpus has no %s", want)
		}
	}
}
