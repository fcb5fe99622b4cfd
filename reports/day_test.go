package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/redisx"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/reports"
	"github.com/chatgate/chatgate/routing"
)

const secret = "reports-test-secret"

var saoPaulo = mustZone("America/Sao_Paulo")

func mustZone(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// local is a wall-clock time of the scripted day in São Paulo (UTC−3).
func local(day, h, m, s int) time.Time { return time.Date(2026, 11, day, h, m, s, 0, saoPaulo) }

func dayConfig() *configs.Config {
	return &configs.Config{
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Almoço"}, {ID: "break", Label: "Pausa curta"}},
		Queues: []configs.Queue{{ID: "sales", Channels: []string{"whatsapp", "webchat"}, Strategy: "longest_idle",
			OfferTimeout: 30 * time.Second, ReofferAfter: 10 * time.Minute, MaxWait: 10 * time.Minute, MaxWaitAction: "close",
			ServiceLevel: 60 * time.Second}},
		Agents: []configs.Agent{
			{ID: "ana", Name: "Ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}, "webchat": {Capacity: 2}}},
			{ID: "bob", Name: "Bob", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 2}}},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: "100", Queue: "sales"}}},
		WebChat:  configs.WebChat{Sites: []configs.Site{{ID: "shop", Queue: "sales"}}},
		Presence: configs.Presence{HistoryRetention: 90 * 24 * time.Hour},
		Events:   configs.Events{MaxLen: 100},
	}
}

type day struct {
	t        *testing.T
	ctx      context.Context
	client   *redis.Client
	ks       keyspace.Space
	clk      *clock.Fake
	presence *presence.Store
	router   *routing.Router
	app      *fiber.App
	seq      int
}

func newDay(t *testing.T) *day {
	t.Helper()
	cfg := dayConfig()
	client := redistest.Client(t)
	ks := keyspace.New("t")
	clk := clock.NewFake(local(25, 7, 0, 0))
	topo := topology.New(cfg)
	ps := presence.NewStore(client, ks, topo, presence.Options{Clock: clk, HistoryRetention: cfg.Presence.HistoryRetention})
	r := routing.NewRouter(client, ks, topo, routing.Options{Clock: clk, Pauser: ps, ReportRetention: 35 * 24 * time.Hour,
		ReportLocation: saoPaulo})
	ps.AddListener(r)
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
		Unavailable: redisx.IsUnavailable, BodyLimit: 1 << 16})
	v1 := app.Group("/v1", auth.NewVerifier(secret, "", "chatgate").Middleware())
	reports.NewHandler(reports.New(client, ks, topo, reports.Options{Clock: clk, Location: saoPaulo})).Register(v1)
	return &day{t: t, ctx: context.Background(), client: client, ks: ks, clk: clk, presence: ps, router: r, app: app}
}

func (d *day) at(t time.Time) { d.t.Helper(); d.clk.Set(t) }

func (d *day) set(agent, ch string, want presence.State, reason string) {
	d.t.Helper()
	if _, err := d.presence.Set(d.ctx, agent, ch, want, reason, agent, presence.CauseToggle); err != nil {
		d.t.Fatalf("%s %s %s: %v", agent, ch, want, err)
	}
}

// customer writes on WhatsApp and returns the conversation's card.
func (d *day) customer(contact string) routing.Card {
	d.t.Helper()
	d.seq++
	if _, err := d.router.Deliver(d.ctx, []routing.Inbound{{Channel: "whatsapp", EntryPoint: "100", ContactID: contact,
		ContactName: contact, ContactPhone: "5511987650" + fmt.Sprintf("%03d", d.seq), ProviderMessageID: fmt.Sprintf("p%d", d.seq),
		At: d.clk.Now(), Kind: "text", Text: "oi"}}); err != nil {
		d.t.Fatal(err)
	}
	keys, err := d.client.Keys(d.ctx, d.ks.Key("card", "*")).Result()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, k := range keys {
		c, err := d.router.Card(d.ctx, strings.TrimPrefix(k, d.ks.Key("card", "")))
		if err == nil && c.CreatedAt.Equal(d.clk.Now().UTC().Truncate(time.Millisecond)) {
			return c
		}
	}
	d.t.Fatalf("no card for %s", contact)
	return routing.Card{}
}

func (d *day) card(id string) routing.Card {
	d.t.Helper()
	c, err := d.router.Card(d.ctx, id)
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

func (d *day) accept(card, agent string) {
	d.t.Helper()
	if _, err := d.router.Accept(d.ctx, card, agent); err != nil {
		d.t.Fatalf("%s accepts %s: %v", agent, card, err)
	}
}

func (d *day) close(card, agent string, force bool) {
	d.t.Helper()
	if _, err := d.router.Close(d.ctx, card, agent, force); err != nil {
		d.t.Fatalf("%s closes %s: %v", agent, card, err)
	}
}

// get calls the API as agent with role and decodes JSON into out; it returns the status.
func (d *day) get(path, agent string, role auth.Role, out any) int {
	d.t.Helper()
	status, body := d.raw(path, agent, role)
	if out != nil && status == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			d.t.Fatalf("%s: %v: %s", path, err, body)
		}
	}
	return status
}

func (d *day) raw(path, agent string, role auth.Role) (int, []byte) {
	d.t.Helper()
	tok, err := auth.Mint(secret, "chatgate", agent, role, time.Hour, time.Now())
	if err != nil {
		d.t.Fatal(err)
	}
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := d.app.Test(req, -1)
	if err != nil {
		d.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestScriptedDay drives a day of a small center through presence and routing, with a fake clock,
// and compares every report with figures worked out by hand below.
func TestScriptedDay(t *testing.T) {
	d := newDay(t)
	// 08:00 ana logs in on both channels (one group: the queue serves both).
	d.at(local(25, 8, 0, 0))
	d.set("ana", "whatsapp", presence.Online, "")
	d.set("ana", "webchat", presence.Online, "")
	// 08:10 c1 is offered to ana, accepted at 08:10:20; her first answer 08:10:40, one transfer and
	// a disposition (recorded by other parts of the floor: seeded), closed 08:20.
	d.at(local(25, 8, 10, 0))
	c1 := d.customer("c1")
	if c1.State != routing.CardOffered || c1.Agent != "ana" {
		t.Fatalf("c1: %+v", c1)
	}
	d.at(local(25, 8, 10, 20))
	d.accept(c1.ID, "ana")
	d.client.HSet(d.ctx, d.ks.Key("conv", c1.ConversationID), "first_response_at", local(25, 8, 10, 40).UnixMilli(),
		"transfers", 1, "disposition", "sale")
	d.at(local(25, 8, 20, 0))
	d.close(c1.ID, "ana", false)
	// 09:00 ana pauses webchat for lunch: the shared queue pauses whatsapp too.
	d.at(local(25, 9, 0, 0))
	d.set("ana", "webchat", presence.Paused, "lunch")
	// 09:05 c2 waits; 09:06 bob logs in and gets it, declines at 09:06:10.
	d.at(local(25, 9, 5, 0))
	c2 := d.customer("c2")
	d.at(local(25, 9, 6, 0))
	d.set("bob", "whatsapp", presence.Online, "")
	if c := d.card(c2.ID); c.Agent != "bob" {
		t.Fatalf("c2 after bob's login: %+v", c)
	}
	d.at(local(25, 9, 6, 10))
	if _, err := d.router.Decline(d.ctx, c2.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	// 10:00 ana resumes (both channels): c2 goes to her; she lets it time out; it goes back to bob
	// (his refusal is older than reoffer_after), who accepts at 10:01 and closes at 10:11.
	d.at(local(25, 10, 0, 0))
	d.set("ana", "whatsapp", presence.Online, "")
	if c := d.card(c2.ID); c.Agent != "ana" {
		t.Fatalf("c2 after ana's resume: %+v", c)
	}
	d.at(local(25, 10, 0, 31))
	if _, err := d.router.SweepTimeouts(d.ctx); err != nil {
		t.Fatal(err)
	}
	if c := d.card(c2.ID); c.Agent != "bob" || c.State != routing.CardOffered {
		t.Fatalf("c2 after the timeout: %+v", c)
	}
	d.at(local(25, 10, 1, 0))
	d.accept(c2.ID, "bob")
	d.at(local(25, 10, 11, 0))
	d.close(c2.ID, "bob", false)
	// 10:20 bob pauses (break); 10:30 c3 goes to ana, accepted 10:30:30, closed 10:40.
	d.at(local(25, 10, 20, 0))
	d.set("bob", "whatsapp", presence.Paused, "break")
	d.at(local(25, 10, 30, 0))
	c3 := d.customer("c3")
	d.at(local(25, 10, 30, 30))
	d.accept(c3.ID, "ana")
	d.at(local(25, 10, 40, 0))
	d.close(c3.ID, "ana", false)
	// 11:00 ana pauses (break). 11:05 c4 waits; 11:07 a supervisor closes it: the customer left.
	d.at(local(25, 11, 0, 0))
	d.set("ana", "whatsapp", presence.Paused, "break")
	d.at(local(25, 11, 5, 0))
	c4 := d.customer("c4")
	d.at(local(25, 11, 7, 0))
	d.close(c4.ID, "sue", true)
	// 11:10 c5 waits past max_wait (10 min): closed by the sweep at 11:20:01.
	d.at(local(25, 11, 10, 0))
	d.customer("c5")
	d.at(local(25, 11, 20, 1))
	if n, err := d.router.SweepMaxWait(d.ctx); err != nil || n != 1 {
		t.Fatalf("max wait sweep: %d, %v", n, err)
	}
	// 11:30 ana resumes; 12:00 bob logs out.
	d.at(local(25, 11, 30, 0))
	d.set("ana", "whatsapp", presence.Online, "")
	d.at(local(25, 12, 0, 0))
	d.set("bob", "whatsapp", presence.Offline, "")
	// The day boundary: c6 arrives at 23:59:30 (02:59:30 UTC, the next UTC day), accepted 00:00:30
	// and closed 00:10:30: it belongs to the 25th. c7 arrives at 00:05 on the 26th.
	d.at(local(25, 23, 59, 30))
	c6 := d.customer("c6")
	d.at(local(26, 0, 0, 30))
	d.accept(c6.ID, "ana")
	d.at(local(26, 0, 5, 0))
	c7 := d.customer("c7")
	d.at(local(26, 0, 5, 10))
	d.accept(c7.ID, "ana")
	d.at(local(26, 0, 6, 0))
	d.close(c7.ID, "ana", false)
	d.at(local(26, 0, 10, 30))
	d.close(c6.ID, "ana", false)
	// 00:30 ana logs out of both.
	d.at(local(26, 0, 30, 0))
	d.set("ana", "whatsapp", presence.Offline, "")
	d.set("ana", "webchat", presence.Offline, "")
	d.at(local(26, 9, 0, 0))

	const period = "from=2026-11-25&to=2026-11-25"
	t.Run("conversations", func(t *testing.T) {
		var r reports.ConversationsReport
		if s := d.get("/v1/reports/conversations?"+period, "sue", auth.RoleSupervisor, &r); s != 200 {
			t.Fatalf("status %d", s)
		}
		if r.Header.Timezone != "America/Sao_Paulo" || r.Header.From != "2026-11-25T00:00:00-03:00" || r.Header.To != "2026-11-26T00:00:00-03:00" {
			t.Errorf("header: %+v", r.Header)
		}
		type want struct {
			id                                    string
			agents                                string
			outcome                               string
			wait                                  float64
			handle, frt                           float64 // -1: none
			offers, declines, timeouts, transfers int
			disposition                           string
		}
		wants := []want{
			{c1.ConversationID, "ana", "handled", 20, 580, 40, 1, 0, 0, 1, "sale"},
			{c2.ConversationID, "bob", "handled", 3360, 600, -1, 3, 1, 1, 0, ""},
			{c3.ConversationID, "ana", "handled", 30, 570, -1, 1, 0, 0, 0, ""},
			{c4.ConversationID, "", "abandoned", 120, -1, -1, 0, 0, 0, 0, ""},
			{"", "", "closed_max_wait", 601, -1, -1, 0, 0, 0, 0, ""},
			{c6.ConversationID, "ana", "handled", 60, 600, -1, 1, 0, 0, 0, ""},
		}
		if r.Total != len(wants) || len(r.Rows) != len(wants) {
			t.Fatalf("rows: total %d, %d rows, want %d: %+v", r.Total, len(r.Rows), len(wants), r.Rows)
		}
		opt := func(v *float64) float64 {
			if v == nil {
				return -1
			}
			return *v
		}
		for i, w := range wants {
			g := r.Rows[i]
			if (w.id != "" && g.ID != w.id) || strings.Join(g.Agents, ",") != w.agents || g.Outcome != w.outcome || g.WaitSeconds != w.wait ||
				opt(g.HandleSeconds) != w.handle || opt(g.FirstResponseSeconds) != w.frt || g.Offers != w.offers ||
				g.Declines != w.declines || g.Timeouts != w.timeouts || g.Transfers != w.transfers || g.Disposition != w.disposition {
				t.Errorf("row %d: got %+v, want %+v", i, g, w)
			}
			if g.Queue != "sales" || g.Channel != "whatsapp" || g.EntryPoint != "100" {
				t.Errorf("row %d: queue/channel/entry %s %s %s", i, g.Queue, g.Channel, g.EntryPoint)
			}
			if !strings.HasPrefix(g.Contact, "•••••••••") || !strings.HasSuffix(g.Contact, fmt.Sprintf("%04d", i+1)) || len([]rune(g.Contact)) != 13 {
				t.Errorf("row %d: a supervisor sees the contact masked, got %q", i, g.Contact)
			}
		}
		if got := r.Rows[1].FirstOffered; got == nil || !got.Equal(local(25, 9, 6, 0)) {
			t.Errorf("c2 first offered at %v, want 09:06", got)
		}
		// An administrator sees the number.
		var adm reports.ConversationsReport
		d.get("/v1/reports/conversations?"+period+"&limit=1&offset=0", "root", auth.RoleAdmin, &adm)
		if len(adm.Rows) != 1 || adm.Rows[0].Contact != "5511987650001" || adm.Total != 6 {
			t.Errorf("admin page: %+v", adm)
		}
		// Pages: 4 per page → 4 + 2.
		var p2 reports.ConversationsReport
		d.get("/v1/reports/conversations?"+period+"&limit=4&offset=4", "sue", auth.RoleSupervisor, &p2)
		if p2.Total != 6 || len(p2.Rows) != 2 || p2.Rows[1].ID != c6.ConversationID {
			t.Errorf("second page: %+v", p2)
		}
		// The next day holds only c7.
		var next reports.ConversationsReport
		d.get("/v1/reports/conversations?from=2026-11-26", "sue", auth.RoleSupervisor, &next)
		if next.Total != 1 || next.Rows[0].ID != c7.ConversationID {
			t.Errorf("the 26th: %+v", next.Rows)
		}
		// An agent reads its own; asking for another is refused.
		var own reports.ConversationsReport
		d.get("/v1/reports/conversations?"+period, "bob", auth.RoleAgent, &own)
		if own.Total != 1 || own.Rows[0].ID != c2.ConversationID {
			t.Errorf("bob's own: %+v", own.Rows)
		}
		if s := d.get("/v1/reports/conversations?"+period+"&agent=ana", "bob", auth.RoleAgent, nil); s != 403 {
			t.Errorf("bob asks for ana's: %d, want 403", s)
		}
	})

	t.Run("summary", func(t *testing.T) {
		var r reports.SummaryReport
		if s := d.get("/v1/reports/summary?"+period+"&group_by=queue", "sue", auth.RoleSupervisor, &r); s != 200 {
			t.Fatalf("status %d", s)
		}
		if len(r.Groups) != 1 || r.Groups[0].Key != "sales" {
			t.Fatalf("groups: %+v", r.Groups)
		}
		g := r.Groups[0]
		// By hand: waits 20, 3360, 30, 120, 601, 60 → sorted 20 30 60 120 601 3360: avg 4191/6,
		// p50 (3rd) 60, p90 (6th) 3360. Handles 580 600 570 600: avg 587.5, p50 (2nd of 570 580 600
		// 600) 580, p90 600. First response: c1's 40. In time (≤ 60 s): c1, c3, c6 → 3 of 6.
		if g.Total != 6 || g.Outcomes["handled"] != 4 || g.Outcomes["abandoned"] != 1 || g.Outcomes["closed_max_wait"] != 1 ||
			g.Percent["handled"] != 66.67 || g.Percent["abandoned"] != 16.67 {
			t.Errorf("counts: %+v", g)
		}
		if g.Wait != (reports.Stat{Count: 6, Avg: 698.5, P50: 60, P90: 3360}) ||
			g.Handle != (reports.Stat{Count: 4, Avg: 587.5, P50: 580, P90: 600}) ||
			g.FirstResponse != (reports.Stat{Count: 1, Avg: 40, P50: 40, P90: 40}) {
			t.Errorf("times: wait %+v handle %+v first response %+v", g.Wait, g.Handle, g.FirstResponse)
		}
		if g.AnsweredInTime != 3 || g.ServiceLevel != 50 {
			t.Errorf("service level: %d, %v%%", g.AnsweredInTime, g.ServiceLevel)
		}
		if !slices.Equal(r.WaitHistogram, []int{0, 1, 1, 1, 1, 0, 1, 1}) {
			t.Errorf("wait histogram %v", r.WaitHistogram)
		}
		keys := func(groupBy string) map[string]int {
			var r reports.SummaryReport
			d.get("/v1/reports/summary?"+period+"&group_by="+groupBy, "sue", auth.RoleSupervisor, &r)
			out := map[string]int{}
			for _, g := range r.Groups {
				out[g.Key] = g.Total
			}
			return out
		}
		for groupBy, want := range map[string]map[string]int{
			"agent":       {"ana": 3, "bob": 1, "": 2},
			"hour":        {"08": 1, "09": 1, "10": 1, "11": 2, "23": 1},
			"day":         {"2026-11-25": 6},
			"disposition": {"sale": 1, "": 5},
			"channel":     {"whatsapp": 6},
		} {
			if got := keys(groupBy); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("group_by=%s: %v, want %v", groupBy, got, want)
			}
		}
		if s := d.get("/v1/reports/summary?"+period+"&group_by=colour", "sue", auth.RoleSupervisor, nil); s != 400 {
			t.Errorf("unknown group_by: %d", s)
		}
	})

	t.Run("presence", func(t *testing.T) {
		// By hand (aggregate status, the 25th): ana online 08:00–09:00, 10:00–11:00, 11:30–24:00 =
		// 3600+3600+45000; lunch 3600, break 1800; two pauses; logged 16 h; no logout that day.
		// bob online 09:06–10:20 (4440), break 10:20–12:00 (6000), logout 12:00.
		groups := func(q string) map[string]reports.PresenceGroup {
			var r reports.PresenceReport
			if s := d.get("/v1/reports/presence?"+period+q, "sue", auth.RoleSupervisor, &r); s != 200 {
				t.Fatalf("%s: status %d", q, s)
			}
			out := map[string]reports.PresenceGroup{}
			for _, g := range r.Groups {
				out[g.Key] = g
			}
			return out
		}
		g := groups("&group_by=agent")
		ana, bob := g["ana"], g["bob"]
		if ana.OnlineSeconds != 52200 || ana.PausedSeconds != 5400 || ana.PausedBy["lunch"] != 3600 || ana.PausedBy["break"] != 1800 ||
			ana.LoggedSeconds != 57600 || ana.Pauses != 2 || ana.FirstLogin == nil || !ana.FirstLogin.Equal(local(25, 8, 0, 0)) || ana.LastLogout != nil {
			t.Errorf("ana: %+v", ana)
		}
		if bob.OnlineSeconds != 4440 || bob.PausedSeconds != 6000 || bob.Pauses != 1 || bob.LoggedSeconds != 10440 ||
			bob.FirstLogin == nil || !bob.FirstLogin.Equal(local(25, 9, 6, 0)) || bob.LastLogout == nil || !bob.LastLogout.Equal(local(25, 12, 0, 0)) {
			t.Errorf("bob: %+v", bob)
		}
		// Per channel: the shared-queue pause paused ana's whatsapp too.
		g = groups("&group_by=channel")
		if w := g["whatsapp"]; w.OnlineSeconds != 52200+4440 || w.PausedSeconds != 5400+6000 || w.Pauses != 3 {
			t.Errorf("whatsapp: %+v", w)
		}
		if w := g["webchat"]; w.OnlineSeconds != 52200 || w.PausedSeconds != 5400 || w.Pauses != 2 {
			t.Errorf("webchat: %+v", w)
		}
		g = groups("&group_by=reason")
		if g["lunch"].PausedSeconds != 3600 || g["lunch"].Pauses != 1 || g["break"].PausedSeconds != 7800 || g["break"].Pauses != 2 || len(g) != 2 {
			t.Errorf("by reason: %+v", g)
		}
		// The next day: ana's 00:00–00:30 online.
		var r reports.PresenceReport
		d.get("/v1/reports/presence?from=2026-11-26&group_by=day", "sue", auth.RoleSupervisor, &r)
		if len(r.Groups) != 1 || r.Groups[0].OnlineSeconds != 1800 || r.Groups[0].LastLogout == nil {
			t.Errorf("the 26th: %+v", r.Groups)
		}
		// Detailed: 10 changes of ana, 3 of bob, each with its duration.
		var ev reports.PresenceEventsReport
		d.get("/v1/reports/presence/events?"+period+"&limit=1000", "sue", auth.RoleSupervisor, &ev)
		if ev.Total != 13 {
			t.Fatalf("events: %d: %+v", ev.Total, ev.Rows)
		}
		kinds := map[string]int{}
		for _, e := range ev.Rows {
			kinds[e.Agent+":"+e.Kind]++
			if e.Agent == "ana" && e.Kind == "pause" && e.Reason == "lunch" && e.DurationSeconds != 3600 {
				t.Errorf("ana's lunch lasted %v", e.DurationSeconds)
			}
		}
		if fmt.Sprint(kinds) != fmt.Sprint(map[string]int{"ana:login": 2, "ana:pause": 4, "ana:resume": 4, "bob:login": 1, "bob:pause": 1, "bob:logout": 1}) {
			t.Errorf("kinds: %v", kinds)
		}
		var tl reports.TimelineReport
		d.get("/v1/reports/presence/timeline?"+period+"&agent=bob", "sue", auth.RoleSupervisor, &tl)
		var segs []string
		for _, s := range tl.Agents[0].Segments {
			segs = append(segs, fmt.Sprintf("%s/%s %s-%s", s.State, s.Reason, s.Start.In(saoPaulo).Format("15:04"), s.End.In(saoPaulo).Format("15:04")))
		}
		if strings.Join(segs, ", ") != "offline/ 00:00-09:06, online/ 09:06-10:20, paused/break 10:20-12:00, offline/ 12:00-00:00" {
			t.Errorf("bob's timeline: %v", segs)
		}
	})

	t.Run("csv", func(t *testing.T) {
		for _, path := range []string{"conversations", "summary?group_by=agent&", "presence?group_by=agent&", "presence/events?", "presence/timeline?"} {
			if !strings.Contains(path, "?") {
				path += "?"
			}
			status, body := d.raw("/v1/reports/"+path+period+"&format=csv", "sue", auth.RoleSupervisor)
			if status != 200 || !bytes.HasPrefix(body, []byte("\ufeff")) {
				t.Fatalf("%s: %d, BOM %v", path, status, bytes.HasPrefix(body, []byte("\ufeff")))
			}
			recs, err := csv.NewReader(bytes.NewReader(body[3:])).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			want := map[string]int{"conversations?": 7, "summary?group_by=agent&": 5, "presence?group_by=agent&": 3, "presence/events?": 14, "presence/timeline?": 0}[path]
			if want > 0 && len(recs) != want {
				t.Errorf("%s: %d records, want %d", path, len(recs), want)
			}
			if path == "conversations?" {
				if recs[0][0] != "id" || recs[1][19] != "handled" || recs[1][11] != "20" || recs[1][12] != "580" || recs[1][6] != "2026-11-25T08:10:00-03:00" {
					t.Errorf("conversations CSV: %v / %v", recs[0], recs[1])
				}
			}
			if path == "summary?group_by=agent&" && (recs[4][0] != "total" || recs[4][1] != "6") {
				t.Errorf("summary CSV total line: %v", recs[4])
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"from=2026-13-01", "from=2026-11-26&to=2026-11-25", "agent=zed", "queue=nope", "limit=0", "limit=x", "format=xml", "from=2025-01-01&to=2026-11-25"} {
			status, body := d.raw("/v1/reports/conversations?"+q, "sue", auth.RoleSupervisor)
			if status != 400 || !strings.Contains(string(body), "invalid_report_query") {
				t.Errorf("%s: %d %s", q, status, body)
			}
		}
	})
}

// TestWrapUpFromHistory: wrap-up periods (history entries to and from wrap_up, written by the
// floor's wrap-up) count as logged-in and wrap-up time, not online, and show in the timeline.
func TestWrapUpFromHistory(t *testing.T) {
	d := newDay(t)
	key := d.ks.Key("presence", "history", "bob")
	add := func(at time.Time, from, to string) {
		if err := d.client.XAdd(d.ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-*", at.UnixMilli()), Values: []any{
			"channel", "whatsapp", "from", from, "to", to, "reason", "", "by", "bob", "cause", "toggle", "at", fmt.Sprint(at.UnixMilli())}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add(local(25, 8, 0, 0), "offline", "online")
	add(local(25, 9, 0, 0), "online", "wrap_up")
	add(local(25, 9, 5, 0), "wrap_up", "online")
	add(local(25, 10, 0, 0), "online", "offline")
	d.at(local(25, 18, 0, 0))
	var r reports.PresenceReport
	d.get("/v1/reports/presence?from=2026-11-25&agent=bob", "sue", auth.RoleSupervisor, &r)
	if len(r.Groups) != 1 || r.Groups[0].LoggedSeconds != 7200 || r.Groups[0].OnlineSeconds != 6900 || r.Groups[0].WrapUpSeconds != 300 ||
		r.Groups[0].Pauses != 0 {
		t.Errorf("bob: %+v", r.Groups)
	}
	var ev reports.PresenceEventsReport
	d.get("/v1/reports/presence/events?from=2026-11-25&agent=bob", "sue", auth.RoleSupervisor, &ev)
	var kinds []string
	for _, e := range ev.Rows {
		kinds = append(kinds, fmt.Sprintf("%s:%v", e.Kind, e.DurationSeconds))
	}
	if strings.Join(kinds, " ") != "login:3600 wrap_up:300 resume:3300 logout:28800" {
		t.Errorf("events: %v", kinds)
	}
	var tl reports.TimelineReport
	d.get("/v1/reports/presence/timeline?from=2026-11-25&agent=bob", "sue", auth.RoleSupervisor, &tl)
	if s := tl.Agents[0].Segments; len(s) != 5 || s[2].State != "wrap_up" {
		t.Errorf("timeline: %+v", s)
	}
}
