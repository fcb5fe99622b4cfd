package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/oggtest"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// picture is a PNG of w×h pixels in two colours, a stand-in for a customer's photo.
func picture(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{R: 30, G: 120, B: 200, A: 255}
			if (x/20+y/20)%2 == 0 {
				c = color.RGBA{R: 250, G: 190, B: 40, A: 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// encodeVoiceNote has the browser's own Opus encoder (WebCodecs) encode a second of a 440 Hz tone
// and wraps its packets in Ogg: a real WhatsApp-style voice note, made in the test.
func encodeVoiceNote(t *testing.T, b *browser, base string) []byte {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx) // a tab of its own, so the desk is not disturbed
	defer cancel()
	// A page of the gateway's: WebCodecs needs a secure context, which 127.0.0.1 is.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/healthz")); err != nil {
		t.Fatal(err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		if (typeof AudioEncoder === 'undefined') return 'no-webcodecs';
		const packets = [];
		const enc = new AudioEncoder({output: (c) => { const b = new Uint8Array(c.byteLength); c.copyTo(b); packets.push(btoa(String.fromCharCode(...b))); },
			error: (e) => { throw e; }});
		enc.configure({codec: 'opus', sampleRate: 48000, numberOfChannels: 1, bitrate: 32000});
		const n = 48000, data = new Float32Array(n);
		for (let i = 0; i < n; i++) data[i] = 0.3 * Math.sin(2 * Math.PI * 440 * i / 48000);
		enc.encode(new AudioData({format: 'f32', sampleRate: 48000, numberOfFrames: n, numberOfChannels: 1, timestamp: 0, data}));
		await enc.flush();
		return JSON.stringify(packets);
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("encode the voice note: %v", err)
	}
	if out == "no-webcodecs" {
		// A browser without WebCodecs: silent Opus frames, still a valid voice note.
		t.Log("the browser has no WebCodecs; the voice note is a second of silence")
		return oggtest.Silence(50)
	}
	var packets []string
	if err := json.Unmarshal([]byte(out), &packets); err != nil || len(packets) < 40 {
		t.Fatalf("encoder gave %q (%v)", out, err)
	}
	raw := make([][]byte, len(packets))
	for i, p := range packets {
		raw[i], _ = base64.StdEncoding.DecodeString(p)
	}
	return oggtest.Write(raw, 960, 1)
}

// TestConsoleMediaInTheBrowser: a customer's photo shows inline and enlarges on a click; their voice
// note (real Ogg/Opus) plays in the thread; the holder opening the conversation marks it read at
// WhatsApp; the agent attaches a file, which WhatsApp receives as an upload sent by id; and sends
// reply buttons from the buttons-and-list composer, which shows Meta's limits when broken.
func TestConsoleMediaInTheBrowser(t *testing.T) {
	fake := startFakeWhatsApp(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL(),
		"CHATGATE_MEDIA_CACHE_DIR": t.TempDir()})
	tg := startTestGateway(t, cfg, nil)
	b := newBrowserIn(t, "pt-BR")
	number := cfg.WhatsApp.Numbers[0].PhoneNumberID

	photo := picture(t, 480, 320)
	photoID, photoSHA := fake.AddMedia(number, "image/png", photo)
	voice := encodeVoiceNote(t, b, tg.base)
	voiceID, voiceSHA := fake.AddMedia(number, "audio/ogg", voice)
	if err := os.WriteFile(filepath.Join(b.shots, "voice-note.ogg"), voice, 0o644); err != nil {
		t.Fatal(err)
	}

	b.signIn(tg.base, "/console/", "ana")
	b.until("the stream is open", `document.querySelector('#stream-state').textContent.startsWith('●')`)
	b.click("log in on WhatsApp", `button[data-toggle="whatsapp"]`)
	b.until("online", `!!document.querySelector('#stream-state').dataset.lastEventId`)
	b.click("close the channel panel", `#indicator`)

	customer := simulate.WhatsAppMessage{PhoneNumberID: number, From: "+5511988887777", Name: "Rita"}
	first := customer
	first.Media = &simulate.WhatsAppMedia{Kind: "image", ID: photoID, MimeType: "image/png", SHA256: photoSHA, Caption: "A peça quebrada"}
	postWhatsApp(t, tg.base, cfg, first)
	b.until("Rita's offer", offerOf("Rita")+` !== undefined`)
	b.run("accept Rita", chromedp.Click(chromedp.CSS(`#offers li.item[data-state="offered"] [data-action="accept"]`)))

	// The photo, fetched with the agent's token, shows as a thumbnail with its caption.
	b.until("the photo inline", `(() => { const img = document.querySelector('#messages li.in [data-media=image] img.thumb');
		return img && img.complete && img.naturalWidth === 480 && img.alt === 'A peça quebrada'
			&& document.querySelector('#messages li.in [data-text]').textContent === 'A peça quebrada'; })()`)
	// Opening the conversation marked the customer's message read at WhatsApp, once.
	testutil.Eventually(t, 5*time.Second, "the read receipt", func() bool { return countCalls(fake, "read") == 1 })
	b.axe("photo")
	b.shotBoth("photo-inline")
	b.click("enlarge the photo", `#messages [data-media=image] button`)
	b.until("the viewer shows it large", `(() => { const d = document.querySelector('#media-viewer');
		return d.open && d.querySelector('img').naturalWidth === 480 && d.querySelector('img').getBoundingClientRect().width > 300; })()`)
	b.shot("photo-enlarged-1280")
	b.keys("Escape closes it", kb.Escape)
	b.until("closed", `!document.querySelector('#media-viewer').open`)

	// The voice note plays in the thread's player.
	second := customer
	second.Media = &simulate.WhatsAppMedia{Kind: "audio", ID: voiceID, MimeType: "audio/ogg; codecs=opus", SHA256: voiceSHA, Voice: true}
	postWhatsApp(t, tg.base, cfg, second)
	b.until("the voice note's player", `(() => { const a = document.querySelector('#messages [data-media=audio] audio');
		return a && a.getAttribute('aria-label') === 'Mensagem de voz' && a.readyState >= 1 && a.duration > 0.9 && a.duration < 1.2; })()`)
	testutil.Eventually(t, 5*time.Second, "the new message marked read", func() bool { return countCalls(fake, "read") == 2 })
	b.run("press play", chromedp.Click(chromedp.CSS(`#messages [data-media=audio] audio`)))
	b.eval("play", `document.querySelector('#messages [data-media=audio] audio').play().then(() => 'ok', (e) => String(e)) && 'started'`)
	b.until("it plays through", `(() => { const a = document.querySelector('#messages [data-media=audio] audio');
		return !a.error && (a.ended || a.currentTime > 0.5); })()`)
	b.axe("voice note")
	b.shotBoth("voice-note")

	// A shared place is a link to the map; shared contacts are cards.
	postWhatsAppKind(t, tg.base, cfg, customer, "location", map[string]any{"latitude": -23.5614, "longitude": -46.6559,
		"name": "Loja Paulista", "address": "Av. Paulista, 1000"})
	postWhatsAppKind(t, tg.base, cfg, customer, "contacts", []any{map[string]any{
		"name": map[string]any{"formatted_name": "João Técnico", "first_name": "João"}, "phones": []any{map[string]any{"phone": "+55 11 97777-0000", "type": "CELL"}}}})
	b.until("the place links to the map; the contact is a card", `(() => {
		const a = document.querySelector('#messages [data-media=location] a'), c = document.querySelector('#messages [data-contact-card]');
		return a && a.href.includes('mlat=-23.5614') && a.href.includes('mlon=-46.6559') && a.textContent.includes('Loja Paulista — Av. Paulista, 1000')
			&& a.target === '_blank' && c && c.textContent.includes('João Técnico') && c.textContent.includes('+55 11 97777-0000'); })()`)
	b.axe("place and contact")
	b.shotBoth("place-and-contact")

	// The agent attaches a file: it shows as a chip, goes with the text as its caption, reaches
	// WhatsApp as an upload and is sent by its id.
	doc := filepath.Join(t.TempDir(), "orcamento.pdf")
	if err := os.WriteFile(doc, []byte("%PDF-1.4 orçamento da peça"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("choose a file", chromedp.SetUploadFiles(chromedp.CSS(`#attach-input`), []string{doc}))
	b.until("the file's chip", `!document.querySelector('#attach-chip').hidden && document.querySelector('#attach-name').textContent.startsWith('orcamento.pdf')`)
	b.shotBoth("file-chosen")
	b.type_("a caption", `#reply`, "Segue o orçamento")
	// Typing in the reply box showed WhatsApp's typing indicator (once: it lasts 25 seconds).
	testutil.Eventually(t, 5*time.Second, "the typing indicator", func() bool { return countCalls(fake, "typing") == 1 })
	if body := lastCall(fake, "typing"); !strings.Contains(body, `"typing_indicator":{"type":"text"}`) {
		t.Fatalf("typing sent %s", body)
	}
	b.keys("send", kb.Enter)
	b.until("the document in the thread, sent", `(() => { const m = [...document.querySelectorAll('#messages li.out')].pop();
		return m && m.dataset.status === 'sent' && m.querySelector('[data-doc-name]')?.textContent === 'orcamento.pdf'
			&& m.querySelector('[data-text]').textContent === 'Segue o orçamento' && document.querySelector('#attach-chip').hidden; })()`)
	ups := fake.Uploads()
	if len(ups) != 1 || ups[0].MimeType != "application/pdf" || ups[0].Filename != "orcamento.pdf" {
		t.Fatalf("WhatsApp holds %+v", ups)
	}
	if body := lastCall(fake, "document"); !strings.Contains(body, `"id":"`+ups[0].ID+`"`) || !strings.Contains(body, `"caption":"Segue o orçamento"`) {
		t.Fatalf("sent %s", body)
	}
	b.axe("document sent")
	b.shotBoth("document-sent")

	// A file WhatsApp does not take is refused with the rule, in the agent's language.
	gif := filepath.Join(t.TempDir(), "anim.gif")
	os.WriteFile(gif, []byte("GIF89a....."), 0o644)
	b.run("choose a GIF", chromedp.SetUploadFiles(chromedp.CSS(`#attach-input`), []string{gif}))
	b.keys("send it", kb.Enter)
	b.until("refused in words", `document.querySelector('#reply-error').textContent.startsWith('O WhatsApp não aceita este tipo de arquivo')`)
	b.click("remove the file", `#attach-clear`)

	// Reply buttons from the composer: a title over Meta's limit is refused next to its field, then sent.
	b.click("open the buttons composer", `#interactive-open`)
	b.until("the composer", `document.querySelector('#interactive-dialog').open`)
	b.type_("the message", `#ic-body`, "Podemos trocar a peça amanhã?")
	b.type_("first button", `#ic-b0`, "Sim")
	b.type_("second button", `#ic-b1`, "Sim")
	b.click("send", `#ic-form button[type=submit]`)
	b.until("the repeated title is refused next to it", `document.querySelector('.field-error[data-field=b1]').textContent.includes('sem repetir')
		&& document.querySelector('#interactive-dialog').open`)
	b.axe("buttons composer")
	b.shotBoth("buttons-composer-error")
	b.eval("fix the second button", `(() => { const i = document.querySelector('#ic-b1'); i.value = ''; return ''; })()`)
	b.type_("second button", `#ic-b1`, "Outro dia")
	b.click("send again", `#ic-form button[type=submit]`)
	b.until("the buttons in the thread, sent", `(() => { const m = [...document.querySelectorAll('#messages li.out')].pop();
		return !document.querySelector('#interactive-dialog').open && m && m.dataset.status === 'sent'
			&& [...m.querySelectorAll('.i-buttons li')].map((l) => l.textContent).join('|') === 'Sim|Outro dia'; })()`)
	if body := lastCall(fake, "interactive"); !strings.Contains(body, `"buttons":[{"type":"reply","reply":{"id":"b1","title":"Sim"}},{"type":"reply","reply":{"id":"b2","title":"Outro dia"}}]`) {
		t.Fatalf("sent %s", body)
	}
	b.axe("buttons sent")
	b.shotBoth("buttons-sent")
}

func countCalls(fake *fakeapi.Server, typ string) int {
	n := 0
	for _, c := range fake.Calls() {
		if c.Type == typ {
			n++
		}
	}
	return n
}

func lastCall(fake *fakeapi.Server, typ string) string {
	body := ""
	for _, c := range fake.Calls() {
		if c.Type == typ {
			body = string(c.Body)
		}
	}
	return body
}

// postWhatsAppKind posts a customer's message of another kind (location, contacts, …): the object
// given is the message's field of that kind, as Meta sends it.
func postWhatsAppKind(t *testing.T, base string, cfg configs.Config, m simulate.WhatsAppMessage, kind string, obj any) {
	t.Helper()
	m.Text = "x"
	var n map[string]any
	if err := json.Unmarshal(simulate.WhatsAppNotification(m), &n); err != nil {
		t.Fatal(err)
	}
	value := n["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)
	msg := value["messages"].([]any)[0].(map[string]any)
	delete(msg, "text")
	msg["type"], msg[kind] = kind, obj
	body, _ := json.Marshal(n)
	req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("webhook: %v %v", err, resp)
	}
	resp.Body.Close()
}
