package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/openapitest"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

var (
	longForm  = flag.Bool("e2e.long", false, "run the long form of every scenario (figures for RELIABILITY.md)")
	onCluster = flag.Bool("e2e.cluster", false, "run every scenario that does not restart Redis on a three-master Redis Cluster")
)

// binary is the chatgate executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "chatgate-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chatgate")
	build := exec.Command("go", "build", "-o", binary, "github.com/chatgate/chatgate/cmd/chatgate")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build chatgate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Secrets and ids of the end-to-end configuration.
const (
	tenant        = "e2e"
	jwtSecret     = "e2e-jwt-secret-0123456789"
	appSecret     = "e2e-app-secret"
	verifyToken   = "e2e-verify-token"
	siteSecret    = "e2e-site-secret"
	phoneNumberID = "100200300"
	accessToken   = "e2e-access-token"
)

// prefix is the tenant's Redis key prefix (every key carries the hash tag).
const prefix = "cg:{" + tenant + "}:"

// options shape one environment.
type options struct {
	replicas     int           // chatgate serve processes (default 2)
	worker       bool          // a separate chatgate worker
	serveWorkers bool          // serve replicas also run workers (default: HTTP only when a worker runs)
	cluster      bool          // a three-master Redis Cluster instead of one redis-server
	aof          bool          // appendonly with fsync on every write (the no-loss setting)
	agents       int           // agents a01…aNN in queue sales on whatsapp and webchat
	capacity     int           // per channel (default 1000)
	offerTimeout time.Duration // default 30 s
	fake         bool          // the fake WhatsApp Cloud API
	integrations string        // an integrations: block, appended to the configuration
}

// env is one running gateway: its Redis, processes and configuration.
type env struct {
	t        *testing.T
	opts     options
	dir      string
	config   string
	redis    *redistest.Server
	cluster  *redistest.Cluster
	client   redis.UniversalClient
	fakeURL  string
	fake     *process
	replicas []*process
	worker   *process
	http     *http.Client           // its answers from the replicas are validated by api
	api      *openapitest.Transport // against the OpenAPI document
	mu       sync.Mutex
	procs    []*process
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 2
	}
	if o.capacity == 0 {
		o.capacity = 1000
	}
	if o.offerTimeout == 0 {
		o.offerTimeout = 30 * time.Second
	}
	if *onCluster {
		if o.aof {
			t.Skip("restarts a single redis-server; -e2e.cluster runs the scenarios that do not")
		}
		o.cluster = true
	}
	validator, err := openapitest.Shared()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, opts: o, dir: t.TempDir(), api: &openapitest.Transport{Validator: validator}}
	e.http = &http.Client{Timeout: 10 * time.Second, Transport: e.api}
	var redisYAML string
	if o.cluster {
		e.cluster = redistest.StartCluster(t)
		e.client = e.cluster.Client(t)
		redisYAML = fmt.Sprintf("  addrs: [%s]\n", strings.Join(e.cluster.Addrs, ", "))
	} else {
		var extra []string
		if o.aof {
			extra = []string{"--appendonly", "yes", "--appendfsync", "always"}
		}
		e.redis = redistest.StartServer(t, extra...)
		c := redis.NewClient(&redis.Options{Addr: e.redis.Addr, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		e.client = c
		redisYAML = fmt.Sprintf("  url: %q\n", e.redis.URL())
	}
	if o.fake {
		e.fakeURL = "http://" + freeAddr(t)
	}
	e.config = filepath.Join(e.dir, "chatgate.yaml")
	if err := os.WriteFile(e.config, []byte(e.configYAML(redisYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stopAll)
	if o.fake {
		e.fake = e.start("fake", "fake-whatsapp", "--listen", strings.TrimPrefix(e.fakeURL, "http://"), "--config", e.config)
		e.waitHTTP(e.fakeURL+"/_fake/calls", 200)
	}
	for i := 0; i < o.replicas; i++ {
		e.replicas = append(e.replicas, e.startReplica(fmt.Sprintf("serve%d", i+1), freeAddr(t)))
	}
	if o.worker {
		e.worker = e.startWorker("worker")
	}
	return e
}

func (e *env) configYAML(redisYAML string) string {
	var agents strings.Builder
	for i := 1; i <= e.opts.agents; i++ {
		fmt.Fprintf(&agents, "  - { id: %s, queues: [sales], channels: { whatsapp: { capacity: %d }, webchat: { capacity: %d } } }\n",
			agentID(i), e.opts.capacity, e.opts.capacity)
	}
	if e.opts.agents == 0 {
		agents.WriteString("  []\n")
	}
	apiBase := e.fakeURL
	if apiBase == "" {
		apiBase = "http://127.0.0.1:9" // discard: no scenario without the fake sends anything
	}
	return fmt.Sprintf(`listen: "127.0.0.1:8080" # every process gets --listen
env: development
tenant: %s
shutdown_grace: 5s
log: { level: info, format: json }
redis:
%shttp: { body_limit: 65536, whatsapp_body_limit: 4194304, header_limit: 8192, read_timeout: 5s, write_timeout: 5s, idle_timeout: 30s }
auth: { jwt_secret: %q }
media: { link_key: "e2e-media-link-key-0123456789abcdef" }
presence: { disconnect_grace: 120s, reaper_interval: 1s }
events: { max_len: 100000, keep_alive: 1s }
outbound: { concurrency: 10, max_retry: 25, recipient_interval: 10ms, send_timeout: 5s, retry_base: 200ms, retry_max: 2s }
pause_reasons:
  - { id: lunch, label: Lunch }
  - { id: no_answer, label: Did not answer }
queues:
  - { id: sales, channels: [whatsapp, webchat], strategy: longest_idle, offer_timeout: %s }
agents:
%swhatsapp:
  app_secret: %q
  verify_token: %q
  api_base_url: %q
  api_version: v21.0
  numbers:
    - { phone_number_id: %q, queue: sales, access_token: %q, rate_per_second: 1000 }
  templates:
    - { name: order_update, language: pt_BR, body_params: 2 }
webchat:
  sites:
    - { id: shop, queue: sales, secret: %q, allowed_origins: ["http://127.0.0.1"] }
`, tenant, redisYAML, jwtSecret, e.opts.offerTimeout, agents.String(), appSecret, verifyToken, apiBase,
		phoneNumberID, accessToken, siteSecret) + e.opts.integrations
}

func agentID(i int) string { return fmt.Sprintf("a%02d", i) }

// ---- processes ----------------------------------------------------------------------------------

// process is one child started by the harness; it is ended by its PID only.
type process struct {
	name   string
	addr   string // host:port it listens on, when it does
	cmd    *exec.Cmd
	logs   *tail
	exited chan struct{}
}

func (e *env) start(name string, args ...string) *process {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), "CHATGATE_CONFIG="+e.config)
	p := &process{name: name, cmd: cmd, logs: &tail{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// cleanEnv drops CHATGATE_* settings of the outer environment so that only the test's file counts.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHATGATE_") {
			out = append(out, kv)
		}
	}
	return out
}

func (e *env) startReplica(name, addr string) *process {
	e.t.Helper()
	args := []string{"serve", "--listen", addr}
	if e.opts.worker && !e.opts.serveWorkers {
		args = append(args, "--workers=false")
	}
	p := e.start(name, args...)
	p.addr = addr
	e.t.Cleanup(e.api.Watch(addr, e.t).Stop)
	e.waitHTTP("http://"+addr+"/readyz", 200)
	return p
}

func (e *env) startWorker(name string) *process {
	e.t.Helper()
	addr := freeAddr(e.t)
	p := e.start(name, "worker", "--listen", addr)
	p.addr = addr
	e.waitHTTP("http://"+addr+"/healthz", 200)
	return p
}

func (p *process) url() string { return "http://" + p.addr }

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// terminate asks for a graceful stop and kills after the timeout.
func (p *process) terminate(timeout time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
	}
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (e *env) stopAll() {
	e.mu.Lock()
	procs := e.procs
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if p.alive() {
			p.terminate(10 * time.Second)
		}
		if e.t.Failed() {
			e.t.Logf("---- %s (last output) ----\n%s", p.name, p.logs.String())
		}
	}
}

// tail keeps the last max bytes a process wrote.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
}

// waitHTTP polls url until it answers want, for at most 20 s.
func (e *env) waitHTTP(url string, want int) {
	e.t.Helper()
	testutil.EventuallyNoError(e.t, 20*time.Second, fmt.Sprintf("%s to answer %d", url, want), func() error {
		resp, err := e.http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// ---- requests -----------------------------------------------------------------------------------

func token(t testing.TB, agent string, role auth.Role, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(jwtSecret, "chatgate", agent, role, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is what a request got: status, the error code of a JSON error, the body.
type response struct {
	status int
	code   string
	body   []byte
	header http.Header
}

func (e *env) do(method, url string, body []byte, headers map[string]string) (response, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != nil && headers["Content-Type"] == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return response{}, err
	}
	return readResponse(resp), nil
}

// postWhatsApp posts a notification signed with the app secret, as Meta does.
func (e *env) postWhatsApp(base string, body []byte) (response, error) {
	return e.do("POST", base+"/webhooks/whatsapp", body, map[string]string{
		"X-Hub-Signature-256": simulate.SignWhatsApp(body, appSecret)})
}

// setPresence toggles an agent's channel as the agent itself.
func (e *env) setPresence(base, agent, channel, state string) (response, error) {
	return e.do("PUT", base+"/v1/agents/"+agent+"/channels/"+channel, []byte(`{"state":"`+state+`"}`),
		map[string]string{"Authorization": "Bearer " + token(e.t, agent, auth.RoleAgent, time.Hour)})
}

// mustOnline logs agents in on a channel and fails the test on anything but 200.
func (e *env) mustOnline(base, channel string, agents ...string) {
	e.t.Helper()
	for _, a := range agents {
		r, err := e.setPresence(base, a, channel, "online")
		if err != nil || r.status != 200 {
			e.t.Fatalf("%s online on %s: %d %s %v", a, channel, r.status, r.body, err)
		}
	}
}

// whatsAppMessage builds one customer message with a fixed wamid.
func whatsAppMessage(from, wamid, text string) []byte {
	return simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: phoneNumberID, DisplayNumber: "15550001111",
		From: from, Name: "Customer " + from, ID: wamid, Text: text})
}

// customer returns the n-th customer's E.164 number.
func customer(n int) string { return fmt.Sprintf("+55119%08d", n) }

// ---- Redis state --------------------------------------------------------------------------------

// keys lists the tenant's keys matching pattern (after the prefix) on every master.
func (e *env) keys(pattern string) []string {
	e.t.Helper()
	return scanAll(e.t, e.client, prefix+pattern)
}

// scanAll lists the keys matching pattern on one server or on every master of a cluster.
func scanAll(t testing.TB, client redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	switch c := client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	}
	if err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	return out
}

// routed is what Redis holds of the inbound messages: every conversation with its messages and card.
type routed struct {
	byProviderID  map[string]int // provider message id → times it appears in conversations
	conversations int
	cardsByState  map[string]int
	missingCard   []string // conversations without a card hash
	lostWaiting   []string // waiting cards in no waiting queue
	staleOffers   []string // offered cards past their expiry (plus slack)
}

// routedState reads every conversation of the tenant from Redis.
func (e *env) routedState(offerSlack time.Duration) routed {
	e.t.Helper()
	ctx := context.Background()
	r := routed{byProviderID: map[string]int{}, cardsByState: map[string]int{}}
	now := time.Now()
	for _, convKey := range e.keys("conv:*") {
		id := strings.TrimPrefix(convKey, prefix+"conv:")
		r.conversations++
		msgIDs, err := e.client.LRange(ctx, prefix+"convmsgs:"+id, 0, -1).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range msgIDs {
			h, err := e.client.HMGet(ctx, prefix+"msg:"+m, "provider_message_id", "direction").Result()
			if err != nil {
				e.t.Fatal(err)
			}
			if dir, _ := h[1].(string); dir == "in" {
				pid, _ := h[0].(string)
				r.byProviderID[pid]++
			}
		}
		cardID, err := e.client.HGet(ctx, convKey, "card").Result()
		if err != nil || cardID == "" {
			r.missingCard = append(r.missingCard, id)
			continue
		}
		card, err := e.client.HGetAll(ctx, prefix+"card:"+cardID).Result()
		if err != nil || len(card) == 0 {
			r.missingCard = append(r.missingCard, id)
			continue
		}
		state := card["state"]
		r.cardsByState[state]++
		switch state {
		case "waiting":
			if _, err := e.client.ZScore(ctx, prefix+"waiting:"+card["queue"]+":"+card["channel"], cardID).Result(); err != nil {
				r.lostWaiting = append(r.lostWaiting, cardID)
			}
		case "offered":
			exp, _ := strconv.ParseInt(card["expires_at"], 10, 64)
			if time.UnixMilli(exp).Add(offerSlack).Before(now) {
				r.staleOffers = append(r.staleOffers, cardID)
			}
		}
	}
	return r
}

// checkRouted asserts that every acknowledged provider id was routed exactly once and nothing else
// was, and that each conversation's card is accounted for. It returns (routed, duplicated, lost).
func (e *env) checkRouted(acked map[string]bool, offerSlack time.Duration) (int, int, int) {
	e.t.Helper()
	r := e.routedState(offerSlack)
	duplicated, lost := 0, 0
	for id, n := range r.byProviderID {
		if n > 1 {
			duplicated += n - 1
			e.t.Errorf("message %s recorded %d times", id, n)
		}
		if !acked[id] {
			e.t.Errorf("message %s recorded but never acknowledged", id)
		}
	}
	for id := range acked {
		if r.byProviderID[id] == 0 {
			lost++
		}
	}
	if lost > 0 {
		e.t.Errorf("%d acknowledged messages were not routed", lost)
	}
	if len(r.missingCard) > 0 {
		e.t.Errorf("conversations without a card: %v", r.missingCard)
	}
	if len(r.lostWaiting) > 0 {
		e.t.Errorf("waiting cards in no waiting queue: %v", r.lostWaiting)
	}
	if len(r.staleOffers) > 0 {
		e.t.Errorf("cards still offered past their timeout: %v", r.staleOffers)
	}
	return len(r.byProviderID), duplicated, lost
}

// ---- event streams ------------------------------------------------------------------------------

// sseEvent is one event read from a stream.
type sseEvent struct {
	id, typ string
	data    map[string]any
}

// streamReader follows one agent's event stream across reconnects, remembering every event id.
type streamReader struct {
	e      *env
	agent  string
	token  string
	mu     sync.Mutex
	lastID string
	seen   map[string]int
	order  []sseEvent
	resets int
}

func (e *env) newStreamReader(agent string) *streamReader {
	return &streamReader{e: e, agent: agent, token: token(e.t, agent, auth.RoleAgent, time.Hour), seen: map[string]int{}}
}

// follow reads the stream at base until it ends or ctx is done; it returns why it stopped.
func (s *streamReader) follow(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/agents/"+s.agent+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	s.mu.Lock()
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	s.mu.Unlock()
	resp, err := (&http.Client{Transport: s.e.api}).Do(req) // no timeout: a stream lasts; its events are validated
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("stream: status %d", resp.StatusCode)
	}
	return readSSE(resp.Body, func(ev sseEvent) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if ev.typ == "stream.reset" {
			s.resets++
		}
		s.seen[ev.id]++
		s.order = append(s.order, ev)
		s.lastID = ev.id
	})
}

func readSSE(r io.Reader, on func(sseEvent)) error {
	buf := make([]byte, 0, 64<<10)
	dec := newLineReader(r, buf)
	var ev sseEvent
	var data strings.Builder
	for {
		line, err := dec.line()
		if err != nil {
			return err
		}
		switch {
		case line == "":
			if ev.id != "" || data.Len() > 0 {
				_ = json.Unmarshal([]byte(data.String()), &ev.data)
				if ev.typ == "" {
					ev.typ, _ = ev.data["type"].(string)
				}
				on(ev)
			}
			ev, data = sseEvent{}, strings.Builder{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data.WriteString(line[6:])
		}
	}
}

// lineReader splits a stream into lines without bufio.Scanner's token limit surprises.
type lineReader struct {
	r   io.Reader
	buf []byte
	n   int
}

func newLineReader(r io.Reader, buf []byte) *lineReader {
	return &lineReader{r: r, buf: buf[:cap(buf)]}
}

func (l *lineReader) line() (string, error) {
	for {
		if i := bytes.IndexByte(l.buf[:l.n], '\n'); i >= 0 {
			s := string(bytes.TrimSuffix(l.buf[:i], []byte("\r")))
			copy(l.buf, l.buf[i+1:l.n])
			l.n -= i + 1
			return s, nil
		}
		if l.n == len(l.buf) {
			return "", fmt.Errorf("sse line longer than %d bytes", len(l.buf))
		}
		m, err := l.r.Read(l.buf[l.n:])
		l.n += m
		if err != nil && m == 0 {
			return "", err
		}
	}
}

// storedEventIDs lists the ids Redis holds in the agent's event stream, after (exclusive) from.
func (e *env) storedEventIDs(agent, from string) []string {
	e.t.Helper()
	start := "-"
	if from != "" {
		start = "(" + from
	}
	msgs, err := e.client.XRange(context.Background(), prefix+"events:"+agent, start, "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

// onlyCard waits for the one card of an agent (read through the API) and returns it and its conversation.
func (e *env) onlyCard(base, agent string, within time.Duration) (cardID, convID string) {
	e.t.Helper()
	if !testutil.Within(within, func() bool {
		r, _ := e.do("GET", base+"/v1/agents/"+agent+"/cards", nil, bearer(e.t, agent, auth.RoleAgent))
		var out struct {
			Cards []struct {
				ID             string `json:"id"`
				ConversationID string `json:"conversation_id"`
			} `json:"cards"`
		}
		if json.Unmarshal(r.body, &out) == nil && len(out.Cards) == 1 {
			cardID, convID = out.Cards[0].ID, out.Cards[0].ConversationID
			return true
		}
		return false
	}) {
		e.t.Fatalf("no card offered to %s", agent)
	}
	return cardID, convID
}

// acceptOnlyCard waits for the one card of an agent and accepts it as that agent.
func (e *env) acceptOnlyCard(base, agent string, within time.Duration) (cardID, convID string) {
	e.t.Helper()
	cardID, convID = e.onlyCard(base, agent, within)
	if r, err := e.do("POST", base+"/v1/cards/"+cardID+"/accept", nil, bearer(e.t, agent, auth.RoleAgent)); err != nil || r.status != 200 {
		e.t.Fatalf("%s accepting %s: %d %s %v", agent, cardID, r.status, r.body, err)
	}
	return cardID, convID
}

// readResponse reads (at most 1 MB of) a response's body and its error code, and closes it.
func readResponse(resp *http.Response) response {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := response{status: resp.StatusCode, body: b, header: resp.Header}
	var er struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &er) == nil {
		r.code = er.Error.Code
	}
	return r
}

// leaseRunsOut is how long after a worker's death asynq's lease on its tasks has run out for sure
// (asynq leases for 30 s and renews while the worker lives); a worker started then takes them back
// at once, where the workers still running only look once a minute.
const leaseRunsOut = 31 * time.Second
