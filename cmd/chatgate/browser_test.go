package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// browser drives headless Chromium against a gateway started in the test process. Every wait is on
// a DOM condition with a deadline; a failed step leaves a screenshot next to the others.
type browser struct {
	t         *testing.T
	ctx       context.Context
	shots     string
	everyShot bool
	n         int
}

// chromiumPath is the browser scripts/chromium-for-tests.sh found, else chromium on the PATH.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("CHATGATE_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (scripts/test.sh installs it with apt-get where it can)")
	return ""
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	return newBrowserIn(t, "en-US")
}

// browsers are the test binary's Chromium processes, one per language (--lang is the process's):
// each test opens a browser context of its own in one (its own cookies, storage and cache) rather
// than starting a browser, which costs seconds of CPU each time. TestMain closes them.
var browsers = struct {
	sync.Mutex
	byLang map[string]sharedBrowser
}{byLang: map[string]sharedBrowser{}}

type sharedBrowser struct {
	ctx   context.Context
	close func()
}

// browserIn is the running browser whose preferred language is lang, started on first use.
func browserIn(t *testing.T, lang string) context.Context {
	t.Helper()
	path := chromiumPath(t)
	browsers.Lock()
	defer browsers.Unlock()
	if b, ok := browsers.byLang[lang]; ok {
		return b.ctx
	}
	profile, err := os.MkdirTemp("", "chatgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", lang),
		chromedp.Flag("accept-lang", lang),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	closeIt := func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
		_ = os.RemoveAll(profile)
	}
	// The first run starts the browser; it must not carry a timeout, which would stop the browser.
	if err := chromedp.Do(ctx); err != nil {
		closeIt()
		t.Fatalf("start %s: %v", path, err)
	}
	browsers.byLang[lang] = sharedBrowser{ctx: ctx, close: closeIt}
	return ctx
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range browsers.byLang {
		b.close()
	}
	os.Exit(code)
}

// newBrowserIn opens a page, in a browser context of its own, whose preferred language is lang (what
// navigator.languages says).
func newBrowserIn(t *testing.T, lang string) *browser {
	t.Helper()
	ctx, closeTab := chromedp.NewContext(browserIn(t, lang), chromedp.WithNewBrowserContext())
	t.Cleanup(closeTab)
	// Every state is photographed only when asked for (each picture costs the browser an encode);
	// a failing step always is.
	shots, every := os.Getenv("CHATGATE_SCREENSHOTS"), true
	if shots == "" {
		shots, every = filepath.Join(os.TempDir(), "chatgate-screenshots"), false
	}
	shots = filepath.Join(shots, t.Name())
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: ctx, shots: shots, everyShot: every}
	// The first run opens the page; as the browser's, it must not carry a timeout, which would close it.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("open a page: %v", err)
	}
	t.Logf("screenshots in %s", shots)
	return b
}

// stepTimeout bounds each step; waits inside a step have their own, shorter deadline.
const stepTimeout = 15 * time.Second

// run performs a step, failing the test (with a screenshot) when it does not complete.
func (b *browser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.failedShot(step)
		b.t.Fatalf("%s: %v", step, err)
	}
}

// until waits for a JavaScript condition to hold.
func (b *browser) until(step, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.failedShot(step)
		b.t.Fatalf("%s: %v\n(condition: %s)", step, err, expr)
	}
}

// eval runs JavaScript and returns its result as a string.
func (b *browser) eval(step, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.failedShot(step)
		b.t.Fatalf("%s: %v", step, err)
	}
	return v
}

func (b *browser) click(step, sel string) {
	b.t.Helper()
	b.run(step, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func (b *browser) type_(step, sel, text string) {
	b.t.Helper()
	b.run(step, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// shot saves a numbered PNG of the page as it is now, when $CHATGATE_SCREENSHOTS asks for every state.
func (b *browser) shot(name string) {
	if b.everyShot {
		b.capture(name)
	}
}

// failedShot saves the page as a failing step left it.
func (b *browser) failedShot(step string) { b.capture("failed-" + step) }

func (b *browser) capture(name string) {
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, strings.ReplaceAll(name, "/", "-"))), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// signInWithToken pastes a token into the page's sign-in form, as an operator with a token from
// `chatgate token` or an identity provider does.
func (b *browser) signInWithToken(base, page, token string) {
	b.t.Helper()
	b.run("open "+page, chromedp.Navigate(base+page))
	b.type_("paste the token", "#signin-form textarea[name=token]", token)
	b.click("sign in with the token", "#signin-form button[type=submit]")
}

// cliToken mints a token the way an operator does, with `chatgate token` on the example configuration.
func cliToken(t *testing.T, agent, role string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"token", "--config", "../../configs/chatgate.yaml", "--agent", agent, "--role", role, "--ttl", "1h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("chatgate token --agent %s --role %s: exit %d: %s", agent, role, code, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// serverState asks the API, not the page, for a channel's state.
func serverState(t *testing.T, base, token, channel string) string {
	t.Helper()
	code, body := do(t, "GET", base+"/v1/agents/me/presence", token, nil)
	if code != 200 {
		t.Fatalf("presence: %d %s", code, body)
	}
	i := strings.Index(string(body), `"channel":"`+channel+`","state":"`)
	if i < 0 {
		t.Fatalf("presence has no %s: %s", channel, body)
	}
	rest := string(body)[i+len(`"channel":"`+channel+`","state":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

func postWhatsApp(t *testing.T, base string, cfg configs.Config, m simulate.WhatsAppMessage) {
	t.Helper()
	body := simulate.WhatsAppNotification(m)
	req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
}

func mintFor(t *testing.T, cfg configs.Config, agent string) string {
	t.Helper()
	tok, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, agent, auth.RoleAgent, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startFakeWhatsApp serves the fake Cloud API with the example's numbers and templates on 127.0.0.1.
func startFakeWhatsApp(t *testing.T) *fakeapi.Server {
	t.Helper()
	cfg := exampleConfig(t, nil)
	opts := fakeapi.Options{Numbers: map[string]string{}}
	for _, n := range cfg.WhatsApp.Numbers {
		opts.Numbers[n.PhoneNumberID] = n.AccessToken
	}
	for _, tpl := range cfg.WhatsApp.Templates {
		opts.Templates = append(opts.Templates, fakeapi.Template{Name: tpl.Name, Language: tpl.Language,
			HeaderParams: tpl.HeaderParams, BodyParams: tpl.BodyParams, ButtonParams: tpl.ButtonParams})
	}
	srv := fakeapi.New(opts)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestOpsPageInTheBrowser(t *testing.T) {
	// A real permanent failure: Meta answers 131026 (undeliverable) for this customer, so the
	// worker archives the template send at its first attempt.
	fake := startFakeWhatsApp(t)
	if _, err := fake.AddRule(fakeapi.RejectRecipient("+5511999990077", 131026)); err != nil {
		t.Fatal(err)
	}
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")
	if code, body := do(t, "PUT", tg.base+"/v1/agents/me/channels/whatsapp", ana, strings.NewReader(`{"state":"online"}`)); code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	code, raw := do(t, "POST", tg.base+"/v1/conversations", ana, strings.NewReader(`{"channel":"whatsapp","to":"+5511999990077",
	  "template":{"name":"order_update","language":"pt_BR","body_params":["Ana","#1"]}}`))
	if code != 202 {
		t.Fatalf("new conversation: %d %s", code, raw)
	}
	var started struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(raw, &started); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(tg.g.store.Client)
	var info *asynq.TaskInfo
	testutil.Eventually(t, 15*time.Second, "the rejected send archived", func() bool {
		archived, _ := inspector.ListArchivedTasks(tasks.QueueTemplates)
		if len(archived) == 1 {
			info = archived[0]
		}
		return info != nil
	})
	b := newBrowser(t)
	// The development sign-in mints agent tokens only: the operator pastes an admin token.
	b.signInWithToken(tg.base, "/ops/", cliToken(t, "ops", "admin"))
	row := `document.querySelector('#task-queues tr[data-queue="templates"]')`
	cell := func(col string) string { return row + `?.querySelector('[data-col="` + col + `"]')?.textContent` }
	b.until("the outbound queues are listed", `['default', 'replies', 'templates'].every((q) => document.querySelector('#task-queues tr[data-queue="' + q + '"]'))`)
	b.until("the archived send is shown with Meta's reason", fmt.Sprintf(`%s === '1' && %s === '1'
		&& document.querySelector('#tasks tr[data-task-id=%q]')?.dataset.state === 'archived'
		&& document.querySelector('#tasks tr[data-task-id=%q]').textContent.includes('outbound:template')
		&& document.querySelector('#tasks tr[data-task-id=%q]').textContent.includes('131026')`,
		cell("archived"), cell("failed_today"), info.ID, info.ID, info.ID))
	// One server row per asynq server of the process (a worker pool each), as asynq lists them.
	servers, err := inspector.Servers()
	if err != nil || len(servers) == 0 {
		t.Fatalf("asynq servers: %d %v", len(servers), err)
	}
	b.until("routing's queues and agents are shown", fmt.Sprintf(`document.querySelector('#routing-queues tr[data-queue="sales"][data-channel="whatsapp"]')
		&& document.querySelector('#agents-online tr[data-channel="webchat"] [data-col="offline"]').textContent === '3'
		&& document.querySelectorAll('#servers tbody tr').length === %d`, len(servers)))
	// Retention holds a closed conversation the integration outlet has not acknowledged (the
	// sweeper's held ZSET, seeded here as it would write it): the panel says how many and since when.
	heldKey := g2key(tg, "retention", "held")
	tg.g.store.Client.ZAdd(context.Background(), heldKey, redis.Z{Score: float64(time.Now().Add(-2 * time.Hour).UnixMilli()), Member: "C-held"})
	b.until("the held conversation is shown", `document.querySelector('#retention').dataset.held === '1'
		&& document.querySelector('#retention').textContent.includes(': 1;') && document.querySelector('#retention').textContent.includes('120 min')`)
	b.axe("ops")
	b.shotBoth("archived")
	// The same page in Portuguese, chosen from the switch.
	b.eval("switch to Portuguese", `(() => { const s = document.querySelector('#lang'); s.value = 'pt-BR'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	b.until("the page in Portuguese", fmt.Sprintf(`document.querySelector('#task-queues th').textContent === 'fila'
		&& document.querySelector('#tasks tr[data-task-id=%q] [data-col="state"]').textContent === 'arquivada'
		&& document.querySelector('button[data-run=%q]').textContent === 'Tentar agora'
		&& document.querySelector('#retention').textContent.startsWith('Conversas encerradas retidas além do prazo') && document.querySelector('#retention').textContent.includes(': 1;')`, info.ID, info.ID))
	b.axe("ops in Portuguese")
	b.shotBoth("archived-pt-BR")

	// Retry now: the task runs again on the gateway's workers (and, unhandled, fails again).
	b.click("retry the task", fmt.Sprintf(`button[data-run=%q]`, info.ID))
	b.until("it ran again", fmt.Sprintf(`%s === '2' && %s === '1'`, cell("failed_today"), cell("archived"))+
		` && document.querySelector('#history tr[data-queue="templates"] td').textContent === '2 / 2'`)
	b.shot("retried")

	b.click("delete the task", fmt.Sprintf(`button[data-delete=%q]`, info.ID))
	b.until("it is gone", fmt.Sprintf(`%s === '0' && !document.querySelector('#no-tasks').hidden`, cell("archived")))
	if _, err := asynq.NewInspectorFromRedisClient(tg.g.store.Client).GetTaskInfo(tasks.QueueTemplates, info.ID); err == nil {
		t.Error("the deleted task is still in Redis")
	}
	b.shot("deleted")
}

// streamCutter sits between the browser and the gateway to cut the agents' event streams at will:
// cut ends every open stream and holds new ones until release, and each stream request's
// Last-Event-ID is recorded.
type streamCutter struct {
	proxy   *httputil.ReverseProxy
	mu      sync.Mutex
	cancels []context.CancelFunc
	held    chan struct{} // closed when streams may pass; nil while they do
	lastIDs []string
}

func newStreamCutter(t *testing.T, target string) (*streamCutter, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	sc := &streamCutter{proxy: httputil.NewSingleHostReverseProxy(u)}
	sc.proxy.FlushInterval = -1
	sc.proxy.ErrorLog = log.New(io.Discard, "", 0)
	srv := httptest.NewServer(sc)
	t.Cleanup(func() {
		sc.release()
		srv.CloseClientConnections()
		srv.Close()
	})
	return sc, srv.URL
}

func (sc *streamCutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/agents/me/events" {
		sc.mu.Lock()
		held := sc.held
		sc.mu.Unlock()
		if held != nil {
			select {
			case <-held:
			case <-r.Context().Done():
				return
			}
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		sc.mu.Lock()
		sc.cancels = append(sc.cancels, cancel)
		sc.lastIDs = append(sc.lastIDs, r.Header.Get("Last-Event-ID"))
		sc.mu.Unlock()
		r = r.WithContext(ctx)
	}
	sc.proxy.ServeHTTP(w, r)
}

func (sc *streamCutter) cut() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.held = make(chan struct{})
	for _, cancel := range sc.cancels {
		cancel()
	}
	sc.cancels = nil
}

func (sc *streamCutter) release() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.held != nil {
		close(sc.held)
		sc.held = nil
	}
}

func (sc *streamCutter) requests() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]string(nil), sc.lastIDs...)
}

// TestConsoleResumesItsStreamInTheBrowser cuts the console's event stream, lets a card be offered
// while it is gone, and checks that the page comes back with Last-Event-ID and shows the card from
// the replayed backlog.
func TestConsoleResumesItsStreamInTheBrowser(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	cutter, base := newStreamCutter(t, tg.base)
	b := newBrowser(t)

	// Through the proxy the development sign-in is refused (it answers only direct loopback clients):
	// the agent pastes a token.
	b.signInWithToken(base, "/console/", cliToken(t, "ana", "agent"))
	// The stream must be registered before the login: a new stream starts at the server's now, so a
	// presence.changed published earlier would never carry an id to this page.
	b.until("the stream is live", `document.querySelector('#stream-state').textContent === '● live'`)
	b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
	b.until("Online 1/2 and live", indicatorIs("Online 1/2", green)+` && document.querySelector('#stream-state').textContent === '● live'`)
	// The login's presence.changed event gives the page an event id to resume from.
	b.until("an event seen", `!!document.querySelector('#stream-state').dataset.lastEventId`)
	seen := b.eval("the last event id", `document.querySelector('#stream-state').dataset.lastEventId`)

	cutter.cut()
	b.until("the page sees the stream gone", `document.querySelector('#stream-state').textContent === '○ reconnecting…'`)
	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990003", Name: "Joana", Text: "Alguém aí?"})
	b.shot("disconnected")
	cutter.release()

	b.until("the card offered while away arrives", `(() => { const c = document.querySelector('#offers li.item[data-state="offered"]');
		return c && c.querySelector('.who').textContent.startsWith('Joana'); })() && document.querySelector('#stream-state').textContent === '● live'`)
	reqs := cutter.requests()
	if len(reqs) != 2 || reqs[0] != "" || reqs[1] != seen {
		t.Fatalf("stream requests' Last-Event-ID: %q; want none, then %q (the last id seen)", reqs, seen)
	}
	b.shot("resumed")
}

// TestConsoleSignsInAgainWithoutLosingItsPlace: the console's token expires while a conversation is
// open with an unsent draft. The stream ends with session.expired; the page asks for a sign-in
// again and keeps everything where it was. A customer writes meanwhile; once signed in again (here
// from the development picker) the page shows that message from where its stream stopped, and the
// card and the draft are still there.
func TestConsoleSignsInAgainWithoutLosingItsPlace(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t)})
	tg := startTestGateway(t, cfg, nil)
	b := newBrowser(t)

	// long enough for the steps before it must expire on a busy machine, short enough for b.until to see it expire
	lifetime := 13 * time.Second
	expires := time.Now().Add(lifetime)
	short, err := auth.Mint(cfg.Auth.JWTSecret, cfg.Auth.Issuer, "ana", auth.RoleAgent, lifetime, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.run("open the console", chromedp.Navigate(tg.base+"/console/"))
	b.type_("paste a short-lived token", `#token`, short)
	b.click("sign in", `#signin-form button[type=submit]`)
	b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
	b.until("Online 1/2 and live", indicatorIs("Online 1/2", green)+` && document.querySelector('#stream-state').textContent === '● live'`)
	b.click("close the channel panel", `#indicator`)
	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990004", Name: "Rita", Text: "Primeira mensagem"})
	b.click("accept", `#offers li.item[data-state="offered"] button[data-action="accept"]`)
	b.until("the conversation is open", `document.querySelector('#messages li.msg.in [data-text]')?.textContent === 'Primeira mensagem'`)
	b.type_("start a draft", `#reply`, "Um momento, por favor")

	time.Sleep(time.Until(expires) - time.Second) // b.until's own wait is shorter than the token's life
	b.until("the stream ends with the token and the page asks for a sign-in", `document.querySelector('#stream-state').textContent === '○ signed out'
		&& !document.querySelector('#signin').hidden && document.querySelector('#notice').textContent.includes('expired')`)
	b.shot("session-expired")
	postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990004", Name: "Rita", Text: "Escrevi enquanto você saía"})
	time.Sleep(500 * time.Millisecond) // proving that nothing happens: room for the message to reach a page still listening
	if n := b.eval("messages while signed out", `String(document.querySelectorAll('#messages li.msg.in').length)`); n != "1" {
		t.Errorf("the page got %s customer messages after its token expired, want 1", n)
	}

	b.click("sign in again from the picker", `#dev-picker button[data-agent="ana"]`)
	b.until("back where it was, with what came meanwhile", `document.querySelector('#signin').hidden
		&& document.querySelector('#stream-state').textContent === '● live'
		&& [...document.querySelectorAll('#messages li.msg.in [data-text]')].map((e) => e.textContent).join('|') === 'Primeira mensagem|Escrevi enquanto você saía'
		&& document.querySelector('#reply').value === 'Um momento, por favor'`)
	b.shot("signed-in-again")
}

// g2key is a key of the test gateway's tenant.
func g2key(tg *testGateway, parts ...string) string { return tg.g.keys.Key(parts...) }
