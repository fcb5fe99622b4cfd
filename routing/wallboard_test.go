package routing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/sse"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
)

type boardEnv struct {
	*env
	board *Wallboard
	url   string
}

func newBoardEnv(t *testing.T) *boardEnv {
	t.Helper()
	return newBoardEnvWith(t, testConfig("longest_idle"))
}

func newBoardEnvWith(t *testing.T, cfg *configs.Config) *boardEnv {
	t.Helper()
	client := redistest.Client(t)
	clk := clock.NewFake(t0)
	ks := keyspace.New("t")
	topo := topology.New(cfg)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ps := presence.NewStore(client, ks, topo, presence.Options{Clock: clk, HistoryRetention: time.Hour})
	log := NewStreamLog(client, ks, 100)
	board := NewWallboard(client, log, ps, 100, time.Hour, logger)
	r := NewRouter(client, ks, topo, Options{Clock: clk, Publisher: board, Pauser: ps, Logger: logger})
	board.SetRouter(r)
	ps.AddListener(r)
	ps.AddListener(PresenceEvents{Publisher: board})
	t.Cleanup(r.Shutdown)
	if err := r.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	streams := NewStreams(log, StreamsOptions{Logger: logger, KeepAlive: time.Hour})
	if err := streams.Start(); err != nil {
		t.Fatal(err)
	}
	app := httpx.NewApp(httpx.Options{Logger: logger, Registerer: prometheus.NewRegistry()})
	v1 := app.Group("/v1", auth.NewVerifier(streamSecret, "", "chatgate").Middleware())
	presence.NewHandler(ps, topo).Register(v1)
	board.Register(v1, streams, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { streams.Shutdown(); _ = app.ShutdownWithTimeout(time.Second) })
	return &boardEnv{env: &env{router: r, presence: ps, clock: clk, client: client}, board: board, url: "http://" + ln.Addr().String()}
}

func (b *boardEnv) do(t *testing.T, method, path, who string, role auth.Role, body string, lastID string) *http.Response {
	t.Helper()
	tok, _ := auth.Mint(streamSecret, "chatgate", who, role, time.Hour, time.Now())
	req, _ := http.NewRequest(method, b.url+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// openBoard opens the supervisors' stream and decodes its events.
func (b *boardEnv) openBoard(t *testing.T, lastID string) <-chan BoardEvent {
	t.Helper()
	resp := b.do(t, http.MethodGet, "/v1/supervisor/events", "sup", auth.RoleSupervisor, "", lastID)
	if resp.StatusCode != 200 {
		t.Fatalf("supervisor stream: %d", resp.StatusCode)
	}
	out := make(chan BoardEvent, 200)
	go func() {
		defer close(out)
		r := bufio.NewReader(resp.Body)
		id := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				var ev BoardEvent
				if json.Unmarshal([]byte(line[6:]), &ev) == nil {
					ev.ID = id
					out <- ev
				}
			}
		}
	}()
	return out
}

func take(t *testing.T, ch <-chan BoardEvent, n int) []BoardEvent {
	t.Helper()
	var got []BoardEvent
	for len(got) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended after %d events", len(got))
			}
			got = append(got, ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d events, want %d: %+v", len(got), n, got)
		}
	}
	return got
}

func (b *boardEnv) refresh(t *testing.T) int {
	t.Helper()
	n, err := b.board.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func presenceOf(t *testing.T, ev BoardEvent) presence.Change {
	t.Helper()
	raw, _ := json.Marshal(ev.Presence)
	var c presence.Change
	_ = json.Unmarshal(raw, &c)
	return c
}

func channelOf(row *BoardAgent, ch string) (presence.ChannelPresence, BoardLoad) {
	var cp presence.ChannelPresence
	var l BoardLoad
	for _, c := range row.Channels {
		if c.Channel == ch {
			cp = c
		}
	}
	for _, x := range row.Loads {
		if x.Channel == ch {
			l = x
		}
	}
	return cp, l
}

func TestWallboardStreamCarriesTheFloor(t *testing.T) {
	b := newBoardEnv(t)
	if resp := b.do(t, http.MethodGet, "/v1/supervisor/events", "ana", auth.RoleAgent, "", ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an agent opened the supervisors' stream: %d", resp.StatusCode)
	}
	ch := b.openBoard(t, "")

	// First refresh: every row is new (4 agents, 2 queues); a second one publishes nothing.
	if n := b.refresh(t); n != 6 {
		t.Fatalf("first refresh published %d rows, want 6", n)
	}
	take(t, ch, 6)
	if n := b.refresh(t); n != 0 {
		t.Fatalf("an unchanged board published %d rows", n)
	}

	// ana logs in: the change at once, then her row and the queue's counters.
	b.set(t, "ana", "whatsapp", presence.Online, "")
	got := take(t, ch, 1)
	if c := presenceOf(t, got[0]); got[0].Type != EventPresenceChanged || got[0].Agent != "ana" || c.To != presence.Online || c.By != "ana" {
		t.Fatalf("login: %+v %+v", got[0], c)
	}
	loginID := got[0].ID
	if n := b.refresh(t); n != 2 {
		t.Fatalf("after login: %d rows, want ana's and sales'", n)
	}
	got = take(t, ch, 2)
	if got[0].Type != EventBoardAgent || got[0].Row.Agent != "ana" || got[0].Row.Status != presence.Online {
		t.Fatalf("ana's row: %+v", got[0])
	}
	if got[1].Type != EventBoardQueue || got[1].Queue.ID != "sales" || !got[1].Queue.Open {
		t.Fatalf("sales: %+v", got[1])
	}

	// A customer: offered to ana, her row shows the conversation and load 1/2.
	b.customer(t, "whatsapp", "100", "Maria", "oi")
	b.refresh(t)
	got = take(t, ch, 1) // ana's row (the queue's counters are back where they were: nobody waits, ana has room)
	cp, load := channelOf(got[0].Row, "whatsapp")
	if got[0].Row.Agent != "ana" || len(got[0].Row.Cards) != 1 || got[0].Row.Cards[0].Contact != "Maria" ||
		got[0].Row.Cards[0].State != CardOffered || load.Load != 1 || load.Capacity != 2 || cp.State != presence.Online {
		t.Fatalf("ana with an offer: %+v", got[0].Row)
	}

	// The supervisor pauses ana, with a reason: the change carries who did it.
	resp := b.do(t, http.MethodPut, "/v1/agents/ana/channels/whatsapp", "sup", auth.RoleSupervisor, `{"state":"paused","reason":"lunch"}`, "")
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("force pause: %d %s", resp.StatusCode, body)
	}
	got = take(t, ch, 1)
	if c := presenceOf(t, got[0]); c.To != presence.Paused || c.Reason != "lunch" || c.By != "sup" || got[0].Agent != "ana" {
		t.Fatalf("force pause: %+v", c)
	}
	hist, err := b.presence.History(context.Background(), "ana", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil || len(hist) == 0 || hist[len(hist)-1].By != "sup" {
		t.Fatalf("history: %+v %v", hist, err)
	}
	b.refresh(t)
	got = take(t, ch, 2)
	if cp, _ := channelOf(got[0].Row, "whatsapp"); cp.State != presence.Paused || cp.Reason != "lunch" || got[1].Queue.ID != "sales" {
		t.Fatalf("paused row: %+v / %+v", got[0].Row, got[1])
	}

	// The floor's notices (the first-response timer, transfers, wrap-ups) reach the supervisors once,
	// as the router gives them to its supervisor publisher (not once per agent told).
	if _, err := b.board.Publish(context.Background(), "ana", Event{Type: "conversation.unanswered", At: t0,
		Conversation: map[string]string{"id": "conv-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.board.PublishSupervisor(context.Background(), Event{Type: "conversation.unanswered", At: t0,
		Conversation: map[string]string{"id": "conv-1"}, Unanswered: map[string]string{"agent": "ana"}}); err != nil {
		t.Fatal(err)
	}
	got = take(t, ch, 1)
	if got[0].Type != "conversation.unanswered" || !strings.Contains(fmt.Sprint(got[0].Conversation), "conv-1") ||
		!strings.Contains(fmt.Sprint(got[0].Unanswered), "ana") {
		t.Fatalf("unanswered: %+v", got[0])
	}
	// Customers' messages are the agents' business: they never reach the supervisors' stream.
	if _, err := b.board.Publish(context.Background(), "ana", Event{Type: EventMessageReceived, At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := b.board.PublishSupervisor(context.Background(), Event{Type: "conversation.transferred", At: t0,
		Transfer: map[string]string{"by": "bob"}}); err != nil {
		t.Fatal(err)
	}
	if got = take(t, ch, 1); got[0].Type != "conversation.transferred" || !strings.Contains(fmt.Sprint(got[0].Transfer), "bob") {
		t.Fatalf("after a customer's message: %+v, want the transfer next", got[0])
	}

	// A supervisor who lost the connection resumes after the login: everything since, in order.
	again := b.openBoard(t, loginID)
	replay := take(t, again, 8)
	types := []string{}
	for _, ev := range replay {
		types = append(types, ev.Type)
	}
	want := "agent.updated queue.updated agent.updated presence.changed agent.updated queue.updated conversation.unanswered conversation.transferred"
	if strings.Join(types, " ") != want {
		t.Fatalf("resumed: %s, want %s", strings.Join(types, " "), want)
	}

	// The snapshot says the same.
	var board Board
	resp = b.do(t, http.MethodGet, "/v1/supervisor/wallboard", "sup", auth.RoleSupervisor, "", "")
	if err := json.NewDecoder(resp.Body).Decode(&board); err != nil || len(board.Agents) != 4 || len(board.Queues) != 2 {
		t.Fatalf("snapshot: %v %+v", err, board)
	}
	if resp := b.do(t, http.MethodGet, "/v1/supervisor/wallboard", "ana", auth.RoleAgent, "", ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an agent read the wallboard: %d", resp.StatusCode)
	}
}

// An agent holding more conversations than a row shows: the row names the oldest and counts them all.
func TestWallboardRowShowsTheOldestConversations(t *testing.T) {
	cfg := testConfig("longest_idle")
	cfg.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 100}
	b := newBoardEnvWith(t, cfg)
	b.set(t, "ana", "whatsapp", presence.Online, "")
	held := boardCardsPerAgent + 5
	for i := 0; i < held; i++ {
		b.clock.Advance(time.Second)
		b.customer(t, "whatsapp", "100", fmt.Sprintf("c%02d", i), "oi")
	}
	board, err := b.board.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	row := board.Agents[0]
	if row.Agent != "ana" || row.CardsTotal != held || len(row.Cards) != boardCardsPerAgent {
		t.Fatalf("ana's row: %d cards of %d, want %d of %d", len(row.Cards), row.CardsTotal, boardCardsPerAgent, held)
	}
	for i, c := range row.Cards {
		if want := fmt.Sprintf("c%02d", i); c.Contact != want {
			t.Fatalf("card %d is %s's, want the oldest first (%s)", i, c.Contact, want)
		}
	}
}

// Once started, the wallboard reads again the rows of the agents whose events passed through, not
// every row: a row whose agent had no event is left for the periodic read of every row.
func TestWallboardReadsTheRowsOfAgentsWithEvents(t *testing.T) {
	b := newBoardEnv(t)
	ch := b.openBoard(t, "")
	if err := b.board.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.board.Shutdown)
	take(t, ch, 6) // the first read: 4 agents, 2 queues

	// bob's row changes behind the wallboard's back (no event of his passes through it).
	if err := b.client.HSet(context.Background(), b.router.keys.load("bob"), "whatsapp", 1).Err(); err != nil {
		t.Fatal(err)
	}
	b.set(t, "ana", "whatsapp", presence.Online, "")
	got := take(t, ch, 3) // the change, ana's row, sales' counters
	var rows []string
	for _, ev := range got {
		if ev.Type == EventBoardAgent {
			rows = append(rows, ev.Row.Agent)
		}
	}
	if len(rows) != 1 || rows[0] != "ana" {
		t.Fatalf("rows read after ana's login: %v (events %+v)", rows, got)
	}
	select {
	case ev := <-ch:
		t.Fatalf("an event beyond ana's: %+v", ev)
	case <-time.After(2 * boardEventGap):
	}
	// The full read (as the periodic sweep does) finds bob's row.
	if n := b.refresh(t); n != 1 {
		t.Fatalf("the full read published %d rows, want bob's", n)
	}
	if got := take(t, ch, 1); got[0].Row == nil || got[0].Row.Agent != "bob" {
		t.Fatalf("full read: %+v", got[0])
	}
}

// An agent offered only conversations newer than those its row lists has its row read again
// without its cards (the oldest are the same): load and count are read, the cards kept. Any other
// event of the agent, an offer of an older card, another replica's row or the full read has the row
// read in full. A listed conversation's contact renamed behind the wallboard's back tells the two
// reads apart: a full read shows the new name.
func TestWallboardReadsLessAfterNewerOffers(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig("longest_idle")
	cfg.Agents[0].Channels["whatsapp"] = configs.AgentChannel{Capacity: 100}
	b := newBoardEnvWith(t, cfg)
	b.set(t, "ana", "whatsapp", presence.Online, "")
	next := 0
	offer := func(n int) {
		for ; n > 0; n-- {
			b.clock.Advance(time.Second)
			b.customer(t, "whatsapp", "100", fmt.Sprintf("c%02d", next), "oi")
			next++
		}
	}
	offer(boardCardsPerAgent + 5)
	b.refresh(t) // as at start
	b.board.takeDirty()
	last, _ := b.client.XRevRangeN(ctx, b.router.keys.boardEvents(), "+", "-", 1).Result()
	since := last[0].ID
	// read is the wallboard's read of the rows marked since the last; the row it published, if any.
	read := func() *BoardAgent {
		t.Helper()
		agents, _ := b.board.takeDirty()
		if _, err := b.board.refreshAgents(ctx, agents); err != nil {
			t.Fatal(err)
		}
		stored, err := b.board.log.After(ctx, b.router.keys.boardEvents(), since, 0)
		if err != nil {
			t.Fatal(err)
		}
		var row *BoardAgent
		for _, ev := range sse.Decode(stored, func(ev *BoardEvent, id string) { since = id }) {
			if ev.Type == EventBoardAgent && ev.Agent == "ana" {
				row = ev.Row
			}
		}
		return row
	}
	truth := func() BoardAgent {
		t.Helper()
		board, err := b.board.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range board.Agents {
			if row.Agent == "ana" {
				return row
			}
		}
		t.Fatal("no row for ana")
		return BoardAgent{}
	}
	ids := func(cards []BoardCard) []string {
		var out []string
		for _, c := range cards {
			out = append(out, c.ID)
		}
		return out
	}
	renamed := 0
	rename := func() string { // the contact of one listed conversation
		t.Helper()
		c := truth().Cards[renamed%boardCardsPerAgent]
		renamed++
		name := fmt.Sprintf("renamed%d", renamed)
		if err := b.client.HSet(ctx, b.router.keys.conv(c.ConversationID), "contact_name", name).Err(); err != nil {
			t.Fatal(err)
		}
		return name
	}
	readLess := func() {
		t.Helper()
		name := rename()
		before := b.load("ana", "whatsapp")
		offer(2)
		row, want := read(), truth()
		if row == nil {
			t.Fatal("no row published after the offers")
		}
		_, load := channelOf(row, "whatsapp")
		if row.CardsTotal != want.CardsTotal || load.Load != b.load("ana", "whatsapp") || load.Load == before {
			t.Fatalf("row after newer offers: %d cards, load %d; want %d cards, load %d (was %d)",
				row.CardsTotal, load.Load, want.CardsTotal, b.load("ana", "whatsapp"), before)
		}
		if got, w := fmt.Sprint(ids(row.Cards)), fmt.Sprint(ids(want.Cards)); got != w {
			t.Fatalf("cards listed after newer offers: %s, want the oldest %s", got, w)
		}
		for _, c := range row.Cards {
			if c.Contact == name {
				t.Fatalf("the row was read in full after newer offers alone: %+v", c)
			}
		}
	}
	readInFull := func(what string, do func() error) {
		t.Helper()
		name := rename()
		offer(1) // newer, with the event: still read in full
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		row, want := read(), truth()
		if row == nil {
			t.Fatalf("%s: no row published", what)
		}
		got, _ := json.Marshal(row)
		w, _ := json.Marshal(want)
		if string(got) != string(w) || !strings.Contains(string(got), `"contact":"`+name+`"`) {
			t.Fatalf("%s: row\n%s\nwant it read in full\n%s", what, got, w)
		}
	}

	readLess()
	readLess()
	listed := func(i int) string { return truth().Cards[i].ID }
	accepted := listed(1)
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"accept", func() error { _, err := b.router.Accept(ctx, accepted, "ana"); return err }},
		{"close", func() error { _, err := b.router.Close(ctx, accepted, "ana", false); return err }},
		{"decline", func() error { _, err := b.router.Decline(ctx, listed(0), "ana"); return err }},
		{"offer of an older card", func() error { b.board.appended("ana", EventCardOffered, listed(5)); return nil }},
		{"message", func() error {
			_, err := b.board.Publish(ctx, "ana", Event{Type: EventMessageReceived})
			return err
		}},
		{"offer of an unknown card", func() error { _, err := b.board.Publish(ctx, "ana", Event{Type: EventCardOffered}); return err }},
		{"another replica's row", func() error {
			return b.client.HSet(ctx, b.router.keys.boardDigest(), "agent:ana", "another").Err()
		}},
	} {
		readInFull(step.what, step.do)
		readLess()
	}
	readInFull("the periodic read", func() error { _, err := b.board.Refresh(ctx); return err })
}
