package media_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/medialink"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/media"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
	"github.com/chatgate/chatgate/webhooks"
)

const (
	secret = "test-secret-of-enough-length"
	number = "100200300"
	token  = "EAAtest-token"
)

type env struct {
	t      *testing.T
	router *routing.Router
	fake   *fakeapi.Server
	app    *fiber.App
	cache  *media.Cache
	clock  *clock.Fake
	links  *medialink.Signer
	n      int
	seen   map[string]bool // conversations already handed out
}

func newEnv(t *testing.T, handlerToken string) *env {
	t.Helper()
	cfg := &configs.Config{
		Tenant:       "t",
		PauseReasons: []configs.PauseReason{{ID: "lunch", Label: "Lunch"}},
		Queues:       []configs.Queue{{ID: "sales", Channels: []string{"whatsapp"}, OfferTimeout: 30 * time.Second}},
		Agents: []configs.Agent{
			{ID: "ana", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 5}}},
			{ID: "bob", Queues: []string{"sales"}, Channels: map[string]configs.AgentChannel{"whatsapp": {Capacity: 5}}},
		},
		WhatsApp: configs.WhatsApp{Numbers: []configs.Number{{PhoneNumberID: number, Queue: "sales", AccessToken: token}}},
		Presence: configs.Presence{HistoryRetention: time.Hour},
		Events:   configs.Events{MaxLen: 100},
	}
	client := redistest.Client(t)
	ks := keyspace.New("t")
	clk := clock.NewFake(time.Now())
	ps := presence.NewStore(client, ks, topology.New(cfg), presence.Options{HistoryRetention: time.Hour, Clock: clk})
	router := routing.NewRouter(client, ks, topology.New(cfg), routing.Options{Clock: clk, Pauser: ps})
	ps.AddListener(router)
	t.Cleanup(router.Shutdown)
	if err := router.SyncCapacity(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Set(context.Background(), "ana", "whatsapp", presence.Online, "", "ana", presence.CauseToggle); err != nil {
		t.Fatal(err)
	}
	fake := fakeapi.New(fakeapi.Options{Numbers: map[string]string{number: token}})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	api, err := whatsapp.New(whatsapp.Config{BaseURL: fake.URL(), APIVersion: "v21.0"})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := media.OpenCache(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	links, _ := medialink.New([]byte("a-media-link-key-of-at-least-32-bytes"), clk.Now)
	app := httpx.NewApp(httpx.Options{Logger: slog.New(slog.DiscardHandler)})
	media.NewHandler(media.Options{Store: router, Provider: api, Tokens: map[string]string{number: handlerToken}, Cache: cache,
		Links: links, Verifier: auth.NewVerifier(secret, "", ""), Logger: slog.New(slog.DiscardHandler)}).Register(app)
	return &env{t: t, router: router, fake: fake, app: app, cache: cache, clock: clk, links: links, seen: map[string]bool{}}
}

// customerSends delivers a customer's media message the way the WhatsApp webhook records it, has
// ana accept it, and returns the stored message id.
func (e *env) customerSends(kind, mimeType, mediaID, sha, filename string) string {
	e.t.Helper()
	e.n++
	contact := "55119000000" + string(rune('0'+e.n))
	in := webhooks.Message{Channel: "whatsapp", EntryPoint: number, Contact: webhooks.Contact{ID: contact, WaID: contact, Phone: contact},
		ID: "wamid.media-" + contact, At: e.clock.Now(), Kind: kind,
		Media: &webhooks.Media{ID: mediaID, MimeType: mimeType, SHA256: sha, Filename: filename, Voice: kind == "audio"}}
	ctx := context.Background()
	if _, err := e.router.Deliver(ctx, []routing.Inbound{in.Inbound()}); err != nil {
		e.t.Fatal(err)
	}
	cards, err := e.router.Cards(ctx, "ana")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cards {
		if !e.seen[c.ConversationID] {
			e.seen[c.ConversationID] = true
			if c.State == routing.CardOffered {
				if _, err := e.router.Accept(ctx, c.ID, "ana"); err != nil {
					e.t.Fatal(err)
				}
			}
			msgs, err := e.router.Messages(ctx, c.ConversationID, 10)
			if err != nil || len(msgs) == 0 {
				e.t.Fatalf("messages: %v %v", msgs, err)
			}
			return msgs[len(msgs)-1].ID
		}
	}
	e.t.Fatalf("no card for %s: %+v", contact, cards)
	return ""
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &b)
	return b.Error.Code
}

func (e *env) get(path, agent string, role auth.Role) answer {
	e.t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if agent != "" {
		tok, err := auth.Mint(secret, "", agent, role, time.Hour, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.app.Test(req, 10_000)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, raw}
}

func b64sum(data []byte) string {
	s := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(s[:])
}

var jpeg = append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, []byte(strings.Repeat("photo-of-the-broken-part ", 40))...)

// The holder downloads a customer's photo: the gateway looks it up and downloads it with the
// number's token, checks it against its sha256, and answers it with its type and a file name; the
// second request is served from the cache, not Meta.
func TestHolderDownloadsACustomersPhotoOnceFromMeta(t *testing.T) {
	e := newEnv(t, token)
	id, sha := e.fake.AddMedia(number, "image/jpeg", jpeg)
	msgID := e.customerSends("image", "image/jpeg", id, sha, "")

	a := e.get(medialink.Path(msgID), "ana", auth.RoleAgent)
	if a.status != 200 || string(a.body) != string(jpeg) {
		t.Fatalf("download: %d %s", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := a.header.Get("Content-Disposition"); cd != `inline; filename=image-`+msgID+`.jpg` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if rec, _ := e.fake.Media(id); rec.Lookups != 1 || rec.Downloads != 1 {
		t.Fatalf("Meta saw %d lookups and %d downloads", rec.Lookups, rec.Downloads)
	}
	// A cache hit: the same bytes, and Meta is not asked again (a supervisor reads it too).
	a = e.get(medialink.Path(msgID), "sup", auth.RoleSupervisor)
	if a.status != 200 || string(a.body) != string(jpeg) {
		t.Fatalf("second download: %d %s", a.status, a.body)
	}
	if rec, _ := e.fake.Media(id); rec.Lookups != 1 || rec.Downloads != 1 {
		t.Fatalf("after a cache hit Meta saw %d lookups and %d downloads", rec.Lookups, rec.Downloads)
	}
	// Another agent may not, and nobody without a token.
	if a := e.get(medialink.Path(msgID), "bob", auth.RoleAgent); a.status != 403 || a.code() != "not_your_conversation" {
		t.Fatalf("another agent: %d %s", a.status, a.body)
	}
	if a := e.get(medialink.Path(msgID), "", ""); a.status != 401 {
		t.Fatalf("without a token: %d %s", a.status, a.body)
	}
	if a := e.get(medialink.Path("01NOSUCHMESSAGE"), "ana", auth.RoleAgent); a.status != 404 || a.code() != "message_not_found" {
		t.Fatalf("unknown message: %d %s", a.status, a.body)
	}
}

// A document keeps the customer's file name, and a file Meta serves with other bytes than its
// checksum (or than the webhook's) is refused and not cached.
func TestDocumentNameAndChecksumMismatch(t *testing.T) {
	e := newEnv(t, token)
	pdf := []byte("%PDF-1.4 invoice 2026-12")
	id, sha := e.fake.AddMedia(number, "application/pdf", pdf)
	msgID := e.customerSends("document", "application/pdf", id, sha, "Nota fiscal dezembro.pdf")
	a := e.get(medialink.Path(msgID), "ana", auth.RoleAgent)
	if a.status != 200 || a.header.Get("Content-Disposition") != `inline; filename="Nota fiscal dezembro.pdf"` {
		t.Fatalf("document: %d %q %s", a.status, a.header.Get("Content-Disposition"), a.body)
	}

	id2, sha2 := e.fake.AddMedia(number, "image/jpeg", jpeg)
	e.fake.CorruptMedia(id2)
	bad := e.customerSends("image", "image/jpeg", id2, sha2, "")
	for i := range 2 {
		if a := e.get(medialink.Path(bad), "ana", auth.RoleAgent); a.status != 502 || a.code() != "media_mismatch" {
			t.Fatalf("corrupted file, try %d: %d %s", i, a.status, a.body)
		}
	}
	if rec, _ := e.fake.Media(id2); rec.Downloads != 2 {
		t.Fatalf("a refused file was cached: %d downloads for two requests", rec.Downloads)
	}
	// Meta's file is intact but the webhook announced another checksum.
	id3, _ := e.fake.AddMedia(number, "image/jpeg", jpeg)
	other := e.customerSends("image", "image/jpeg", id3, b64sum([]byte("something else")), "")
	if a := e.get(medialink.Path(other), "ana", auth.RoleAgent); a.status != 502 || a.code() != "media_mismatch" {
		t.Fatalf("webhook checksum differs: %d %s", a.status, a.body)
	}
}

// Media Meta no longer holds is 410 media_expired.
func TestExpiredMediaIsGone(t *testing.T) {
	e := newEnv(t, token)
	id, sha := e.fake.AddMedia(number, "audio/ogg", []byte("OggS voice"))
	msgID := e.customerSends("audio", "audio/ogg", id, sha, "")
	e.fake.ExpireMedia(id)
	if a := e.get(medialink.Path(msgID), "ana", auth.RoleAgent); a.status != 410 || a.code() != "media_expired" {
		t.Fatalf("expired: %d %s", a.status, a.body)
	}
}

// The gateway's token is what Meta checks: with a wrong one nothing is downloaded.
func TestDownloadNeedsTheNumbersToken(t *testing.T) {
	e := newEnv(t, "EAAwrong-token")
	id, sha := e.fake.AddMedia(number, "image/jpeg", jpeg)
	msgID := e.customerSends("image", "image/jpeg", id, sha, "")
	if a := e.get(medialink.Path(msgID), "ana", auth.RoleAgent); a.status != 502 || a.code() != "media_unavailable" {
		t.Fatalf("wrong token: %d %s", a.status, a.body)
	}
	if rec, _ := e.fake.Media(id); rec.Lookups != 0 || rec.Downloads != 0 {
		t.Fatalf("Meta served a wrong token: %+v", rec)
	}
}

// A signed link reaches the file without a Bearer token until it expires; a changed one never.
func TestSignedLink(t *testing.T) {
	e := newEnv(t, token)
	id, sha := e.fake.AddMedia(number, "image/jpeg", jpeg)
	msgID := e.customerSends("image", "image/jpeg", id, sha, "")
	link := e.links.Link(msgID, time.Hour)
	if a := e.get(link, "", ""); a.status != 200 || string(a.body) != string(jpeg) {
		t.Fatalf("signed link: %d %s", a.status, a.body)
	}
	other := e.customerSends("image", "image/jpeg", id, sha, "")
	forged := strings.Replace(link, msgID, other, 1)
	if a := e.get(forged, "", ""); a.status != 403 || a.code() != "invalid_media_link" {
		t.Fatalf("link of another message: %d %s", a.status, a.body)
	}
	e.clock.Advance(time.Hour)
	if a := e.get(link, "", ""); a.status != 403 || a.code() != "invalid_media_link" {
		t.Fatalf("expired link: %d %s", a.status, a.body)
	}
}

// The cache holds at most its bound (plus the newest file), drops the least recently used first,
// and takes in what a restart left.
func TestCacheIsLRUBoundedAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := media.OpenCache(dir, 250)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string, n int) {
		f, err := c.Temp()
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(strings.Repeat("x", n)))
		f.Close()
		if err := c.Put(key, f.Name(), int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	has := func(key string) bool {
		f, _, ok := c.Open(key)
		if ok {
			f.Close()
		}
		return ok
	}
	put("a", 100)
	put("b", 100)
	if !has("a") { // a is now the most recently used
		t.Fatal("a missing")
	}
	put("c", 100) // over 250: b, the least recently used, goes
	if has("b") || !has("a") || !has("c") || c.Size() != 200 {
		t.Fatalf("after eviction: a %v b %v c %v size %d", has("a"), has("b"), has("c"), c.Size())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("%d files on disk, want 2", len(entries))
	}
	os.WriteFile(filepath.Join(dir, "dl-123.part"), []byte("cut short"), 0o600)
	c2, err := media.OpenCache(dir, 250)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Size() != 200 {
		t.Fatalf("reopened cache holds %d bytes", c2.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, "dl-123.part")); !os.IsNotExist(err) {
		t.Fatal("a partial download survived the restart")
	}
}
