package webchat

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/webhooks"
)

var now = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func provider() *Provider {
	return New([]configs.Site{
		{ID: "shop", Secret: "shop-secret-new", PreviousSecret: "shop-secret-old"},
		{ID: "blog", Secret: "blog-secret"},
	}, Options{Tolerance: 5 * time.Minute, MaxMessageLength: 20, MaxAttachments: 2, Clock: clock.NewFake(now)})
}

func headers(ts, sig string) func(string) string {
	return func(k string) string {
		switch k {
		case HeaderTimestamp:
			return ts
		case HeaderSignature:
			return sig
		}
		return ""
	}
}

func TestVerify(t *testing.T) {
	p := provider()
	body := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", ID: "m-1", Text: "Oi"})
	sign := func(secret string, at time.Time) func(string) string {
		return headers(simulate.SignWebChat(body, secret, at))
	}
	tsNow := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		name   string
		header func(string) string
		body   []byte
		want   error
	}{
		{"current secret", sign("shop-secret-new", now), body, nil},
		{"previous secret during rotation", sign("shop-secret-old", now), body, nil},
		{"within the window", sign("shop-secret-new", now.Add(-4*time.Minute)), body, nil},
		{"another site's secret", sign("blog-secret", now), body, webhooks.ErrBadSignature},
		{"replay: older than the window", sign("shop-secret-new", now.Add(-6*time.Minute)), body, webhooks.ErrBadSignature},
		{"from the future", sign("shop-secret-new", now.Add(6*time.Minute)), body, webhooks.ErrBadSignature},
		{"body changed after signing", sign("shop-secret-new", now), []byte(strings.Replace(string(body), "Oi", "Oi!", 1)), webhooks.ErrBadSignature},
		{"no headers", headers("", ""), body, webhooks.ErrUnsigned},
		{"no timestamp", headers("", Sign([]byte("shop-secret-new"), tsNow, body)), body, webhooks.ErrUnsigned},
		{"timestamp not a number", headers("soon", Sign([]byte("shop-secret-new"), "soon", body)), body, webhooks.ErrUnsigned},
		{"signature without prefix", headers(tsNow, strings.TrimPrefix(Sign([]byte("shop-secret-new"), tsNow, body), "sha256=")), body, webhooks.ErrUnsigned},
		{"signature not hex", headers(tsNow, "sha256="+strings.Repeat("z", 64)), body, webhooks.ErrUnsigned},
		{"unknown site", sign("x", now), []byte(`{"site":"nowhere","visitor":{"id":"v"},"message":{"id":"m","text":"t"}}`), webhooks.ErrBadSignature},
		{"unknown site, unsigned", headers("", ""), []byte(`{"site":"nowhere"}`), webhooks.ErrUnsigned},
		{"known site, stale", sign("shop-secret-new", now.Add(-time.Hour)), body, webhooks.ErrBadSignature},
		{"unknown site, stale", sign("x", now.Add(-time.Hour)), []byte(`{"site":"nowhere"}`), webhooks.ErrBadSignature},
		{"body without a site", sign("shop-secret-new", now), []byte(`{"visitor":{"id":"v"}}`), webhooks.ErrUnsigned},
		{"body not JSON", sign("shop-secret-new", now), []byte(`site=shop`), webhooks.ErrUnsigned},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.Verify(c.header, c.body)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Verify: got %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseNormalizes(t *testing.T) {
	body := []byte(`{"site":"shop","visitor":{"id":"v-1","name":"Maria","email":"maria@example.com"},
		"message":{"id":"m-1","text":"see this","page_url":"https://shop.example/cart",
		"attachments":[{"url":"https://cdn.example/a.png","mime_type":"image/png"},{"url":"https://cdn.example/b.pdf","filename":"b.pdf"}]}}`)
	n, err := provider().Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Messages) != 1 {
		t.Fatalf("messages: got %d, want 1", len(n.Messages))
	}
	m := n.Messages[0]
	if m.Channel != "webchat" || m.EntryPoint != "shop" || m.ID != "shop:m-1" || m.Kind != "image" || m.Text != "see this" ||
		m.PageURL != "https://shop.example/cart" || !m.At.Equal(now) {
		t.Fatalf("message: got %+v", m)
	}
	if m.Contact != (webhooks.Contact{ID: "v-1", Name: "Maria", Email: "maria@example.com"}) {
		t.Fatalf("contact: got %+v", m.Contact)
	}
	if len(m.Attachments) != 2 || m.Media == nil || m.Media.URL != "https://cdn.example/a.png" || m.Media.Caption != "see this" ||
		m.Attachments[1].Filename != "b.pdf" {
		t.Fatalf("attachments: got %+v, media %+v", m.Attachments, m.Media)
	}
}

func TestParseRejects(t *testing.T) {
	msg := func(inner string) []byte {
		return []byte(`{"site":"shop","visitor":{"id":"v-1"},"message":{` + inner + `}}`)
	}
	att := `{"url":"https://cdn.example/a.png"}`
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"no visitor id", []byte(`{"site":"shop","visitor":{},"message":{"id":"m","text":"t"}}`), 422, "validation_failed"},
		{"visitor id with spaces", []byte(`{"site":"shop","visitor":{"id":"a b"},"message":{"id":"m","text":"t"}}`), 422, "validation_failed"},
		{"no message id", msg(`"text":"t"`), 422, "validation_failed"},
		{"no text nor attachment", msg(`"id":"m","text":"  "`), 422, "validation_failed"},
		{"text over the limit", msg(`"id":"m","text":"` + strings.Repeat("é", 21) + `"`), http.StatusRequestEntityTooLarge, "message_too_long"},
		{"too many attachments", msg(`"id":"m","attachments":[` + att + `,` + att + `,` + att + `]`), http.StatusRequestEntityTooLarge, "too_many_attachments"},
		{"attachment not http", msg(`"id":"m","attachments":[{"url":"javascript:alert(1)"}]`), 422, "validation_failed"},
		{"page url not http", msg(`"id":"m","text":"t","page_url":"file:///etc/passwd"`), 422, "validation_failed"},
		{"bad e-mail", []byte(`{"site":"shop","visitor":{"id":"v","email":"nope"},"message":{"id":"m","text":"t"}}`), 422, "validation_failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := provider().Parse(c.body)
			var r *webhooks.Rejection
			if !errors.As(err, &r) {
				t.Fatalf("Parse: got %v, want a rejection", err)
			}
			if e := webhooks.RejectionError(r); e.Status != c.status || e.Code != c.code {
				t.Fatalf("Parse: got %v, want %d %s", err, c.status, c.code)
			}
		})
	}
	if _, err := provider().Parse([]byte(`{"site":`)); !errors.Is(err, webhooks.ErrInvalidJSON) {
		t.Fatalf("truncated JSON: got %v, want ErrInvalidJSON", err)
	}
	// Exactly at the limit is accepted.
	if _, err := provider().Parse(msg(`"id":"m","text":"` + strings.Repeat("é", 20) + `"`)); err != nil {
		t.Fatalf("text at the limit: %v", err)
	}
}

func FuzzVerifyAndParse(f *testing.F) {
	body := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: "v-1", ID: "m-1", Text: "Oi"})
	ts, sig := simulate.SignWebChat(body, "shop-secret-new", now)
	f.Add(body, ts, sig)
	f.Add([]byte(`{"site":"blog","visitor":{"id":"x"},"message":{"id":"y","attachments":[{"url":"http://a"}]}}`), ts, "sha256=00")
	p := provider()
	f.Fuzz(func(t *testing.T, body []byte, ts, sig string) {
		if err := p.Verify(headers(ts, sig), body); err == nil {
			// Only a body signed with a configured secret may pass; the fuzzer cannot forge one, so
			// a pass means it replayed the seed.
			if _, want := simulate.SignWebChat(body, "shop-secret-new", now); want != sig {
				if _, old := simulate.SignWebChat(body, "shop-secret-old", now); old != sig {
					t.Fatalf("unsigned body verified: ts %q sig %q", ts, sig)
				}
			}
		}
		n, err := p.Parse(body)
		if err == nil && (len(n.Messages) != 1 || n.Messages[0].Contact.ID == "" || !strings.Contains(n.Messages[0].ID, ":")) {
			t.Fatalf("parse accepted an incomplete message: %+v", n)
		}
	})
}

// A wrongly signed request for a site that does not exist is refused like one for a site that does,
// with one secret or two: the same error, after the same two MACs (Verify has no early return), so
// neither the answer nor its timing says which sites are configured. BenchmarkVerifyWrongSignature
// measures the timing per site.
func TestUnknownSiteIsRefusedLikeAKnownOne(t *testing.T) {
	p := provider()
	ts := strconv.FormatInt(now.Unix(), 10)
	bad := headers(ts, "sha256="+strings.Repeat("ab", 32))
	for _, site := range []string{"shop", "blog", "nowhere"} {
		err := p.Verify(bad, []byte(`{"site":"`+site+`"}`))
		if !errors.Is(err, webhooks.ErrBadSignature) {
			t.Errorf("%s: %v, want a bad signature", site, err)
		}
	}
}

// BenchmarkVerifyWrongSignature: a wrongly signed request per site; the unknown site's ns/op should
// match the known ones' (compare the sub-benchmarks side by side in one run).
func BenchmarkVerifyWrongSignature(b *testing.B) {
	p := provider()
	pad := strings.Repeat("x", 32<<10) // the MACs, not the JSON read, dominate
	ts := strconv.FormatInt(now.Unix(), 10)
	bad := headers(ts, "sha256="+strings.Repeat("ab", 32))
	for _, site := range []string{"shop", "blog", "nowhere"} {
		body := []byte(`{"site":"` + site + `","pad":"` + pad + `"}`)
		b.Run(site, func(b *testing.B) {
			for b.Loop() {
				_ = p.Verify(bad, body)
			}
		})
	}
}
