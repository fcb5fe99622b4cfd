package outbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/oggtest"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
	"github.com/chatgate/chatgate/routing"
	whook "github.com/chatgate/chatgate/webhooks/whatsapp"
)

// upload posts a multipart file reply as ana.
func (e *env) upload(conversationID, filename, contentType string, data []byte, fields ...string) (int, map[string]any) {
	e.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	part, _ := w.CreatePart(h)
	part.Write(data)
	for i := 0; i+1 < len(fields); i += 2 {
		w.WriteField(fields[i], fields[i+1])
	}
	w.Close()
	tok, _ := auth.Mint(secret, "", "ana", auth.RoleAgent, time.Hour, time.Now())
	req := httptest.NewRequest("POST", "/v1/conversations/"+conversationID+"/messages", &body)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := e.app.Test(req, 60_000)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if json.Unmarshal(raw, &out) != nil {
		e.t.Fatalf("upload: not JSON: %s", raw)
	}
	return resp.StatusCode, out
}

func png(n int) []byte {
	return append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, n)...)
}

// webp is a WebP file of n bytes; animated sets the extended header's animation flag.
func webp(n int, animated bool) []byte {
	b := make([]byte, max(n, 30))
	copy(b, "RIFF")
	copy(b[8:], "WEBPVP8X")
	if animated {
		b[20] = 0x02
	}
	return b
}

func sentBody(t *testing.T, fake *fakeapi.Server, typ string) map[string]any {
	t.Helper()
	for _, c := range fake.Calls() {
		if c.Type == typ {
			var b map[string]any
			json.Unmarshal(c.Body, &b)
			return b
		}
	}
	t.Fatalf("no %s call in %+v", typ, fake.Calls())
	return nil
}

// Every kind an agent can send from their computer is uploaded to Meta during the request and
// then sent by its media id, through the ordered reply path.
func TestFileRepliesOfEveryKindAreUploadedThenSentByID(t *testing.T) {
	for _, c := range []struct {
		name, filename, typ, kind, wantType string
		data                                []byte
		fields                              []string
	}{
		{"photo", "peca.png", "image/png", "image", "image/png", png(2000), []string{"caption", "a peça"}},
		{"jpeg by extension", "foto.jpg", "application/octet-stream", "image", "image/jpeg", []byte("\xff\xd8\xff\xe0jpeg"), nil},
		{"voice note", "nota.ogg", "audio/ogg; codecs=opus", "audio", "audio/ogg", oggtest.Silence(50), nil},
		{"mp3", "musica.mp3", "audio/mpeg", "audio", "audio/mpeg", []byte("ID3mp3"), nil},
		{"video", "video.mp4", "video/mp4", "video", "video/mp4", []byte("\x00\x00\x00\x18ftypmp42"), []string{"caption", "veja"}},
		{"document", "Contrato final.pdf", "application/pdf", "document", "application/pdf", []byte("%PDF-1.7 contrato"), []string{"caption", "segue"}},
		{"sticker", "sticker.webp", "image/webp", "sticker", "image/webp", webp(90_000, false), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.login("ana", "whatsapp")
			card := e.customerWrites("5511944440001")
			status, body := e.upload(card.ConversationID, c.filename, c.typ, c.data, c.fields...)
			if status != 202 {
				t.Fatalf("upload: %d %v", status, body)
			}
			ups := e.fake.Uploads()
			if len(ups) != 1 || ups[0].MimeType != c.wantType || !bytes.Equal(ups[0].Data(), c.data) {
				t.Fatalf("Meta holds %+v", ups)
			}
			msg := e.waitStatus(body["message_id"].(string), routing.MessageSent)
			if msg.Kind != c.kind {
				t.Fatalf("recorded as %q", msg.Kind)
			}
			sent := sentBody(t, e.fake, c.kind)
			obj, _ := sent[c.kind].(map[string]any)
			if obj["id"] != ups[0].ID || obj["link"] != nil {
				t.Fatalf("sent %v, want the uploaded id %s", sent, ups[0].ID)
			}
			if c.kind == "document" && obj["filename"] != c.filename {
				t.Fatalf("document sent as %v", obj["filename"])
			}
			var stored map[string]any
			json.Unmarshal(msg.Payload, &stored)
			if stored["mime_type"] != c.wantType || stored["size"] != float64(len(c.data)) {
				t.Fatalf("stored payload %s", msg.Payload)
			}
		})
	}
}

// Every limit Meta sets is refused before anything is uploaded or recorded, naming the limit:
// 413 for a size, 415 for a type.
func TestFileRepliesOverMetasLimitsAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944440002")
	vorbis := oggtest.Silence(2)
	copy(vorbis[28:], "\x01vorbis\x00")
	for _, c := range []struct {
		name, filename, typ string
		data                []byte
		fields              []string
		status              int
		code, limit         string
	}{
		{"image over 5 MB", "big.jpg", "image/jpeg", make([]byte, 5<<20+1), nil, 413, "media_too_large", "image may be at most 5 MB"},
		{"audio over 16 MB", "long.mp3", "audio/mpeg", make([]byte, 16<<20+1), nil, 413, "media_too_large", "audio may be at most 16 MB"},
		{"video over 16 MB", "long.mp4", "video/mp4", make([]byte, 16<<20+1), nil, 413, "media_too_large", "video may be at most 16 MB"},
		{"static sticker over 100 KB", "s.webp", "image/webp", webp(100<<10+1, false), nil, 413, "media_too_large", "a static sticker may be at most 100 KB"},
		{"animated sticker over 500 KB", "a.webp", "image/webp", webp(500<<10+1, true), nil, 413, "media_too_large", "an animated sticker may be at most 500 KB"},
		{"gif image", "x.gif", "image/gif", []byte("GIF89a"), []string{"kind", "image"}, 415, "media_type_not_accepted", "image accepts image/jpeg, image/png, not image/gif"},
		{"png as a document", "planta.png", "image/png", png(100), []string{"kind", "document"}, 415, "media_type_not_accepted", "document accepts text/plain, application/pdf"},
		{"unknown type", "x.zip", "application/zip", []byte("PK"), nil, 415, "media_type_not_accepted", "WhatsApp does not accept application/zip"},
		{"ogg that is not opus", "v.ogg", "audio/ogg", vorbis, nil, 415, "media_type_not_accepted", "only with the Opus codec"},
		{"caption on audio", "v.ogg", "audio/ogg", oggtest.Silence(2), []string{"caption", "oi"}, 422, "validation_failed", "audio takes no caption"},
		{"unknown kind", "x.png", "image/png", png(10), []string{"kind", "gif"}, 422, "validation_failed", "must be image, audio, video, document or sticker"},
	} {
		status, body := e.upload(card.ConversationID, c.filename, c.typ, c.data, c.fields...)
		errObj, _ := body["error"].(map[string]any)
		raw, _ := json.Marshal(body)
		if status != c.status || errObj["code"] != c.code || !strings.Contains(string(raw), c.limit) {
			t.Errorf("%s: %d %s, want %d %s saying %q", c.name, status, raw, c.status, c.code, c.limit)
		}
	}
	// Documents: 100 MB (checked on the limits themselves: a body that large is not worth a test run).
	if p := whatsapp.CheckMedia(whatsapp.MediaDocument, "application/pdf", make([]byte, 100<<20+1)); p == nil || !p.TooLarge || p.Limit != "document may be at most 100 MB; this file is 100.0 MB" {
		t.Errorf("a 100 MB + 1 document: %+v", p)
	}
	if ups := e.fake.Uploads(); len(ups) != 0 {
		t.Fatalf("refused files reached Meta: %d", len(ups))
	}
	if msgs, _ := e.router.Messages(context.Background(), card.ConversationID, 10); len(msgs) != 1 {
		t.Fatalf("%d messages recorded, want the customer's only", len(msgs))
	}
	if n := e.tasksIn("replies"); n != 0 {
		t.Fatalf("%d sends queued", n)
	}
}

const buttons = `{"interactive":{"type":"button","header":"Pedido #123","body":"Podemos confirmar a entrega amanhã?",
  "footer":"Loja","buttons":[{"id":"yes","title":"Sim"},{"id":"no","title":"Não"},{"id":"later","title":"Outro dia"}]}}`

// Reply buttons and lists are checked against Meta's limits with a field error each; a valid one
// goes out as Meta's interactive message, and the customer's choice comes back linked to it.
func TestInteractiveRepliesAreValidatedAndTheChoiceIsLinked(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944440003")
	path := "/v1/conversations/" + card.ConversationID + "/messages"
	long := strings.Repeat("x", 21)
	rows := func(n int) string {
		var r []string
		for i := range n {
			r = append(r, `{"id":"r`+string(rune('a'+i))+`","title":"Opção"}`)
		}
		return strings.Join(r, ",")
	}
	for _, c := range []struct{ name, body, field string }{
		{"four buttons", `{"interactive":{"type":"button","body":"b","buttons":[{"id":"1","title":"a"},{"id":"2","title":"b"},{"id":"3","title":"c"},{"id":"4","title":"d"}]}}`, "interactive.buttons"},
		{"long title", `{"interactive":{"type":"button","body":"b","buttons":[{"id":"1","title":"` + long + `"}]}}`, "interactive.buttons[0].title"},
		{"same ids", `{"interactive":{"type":"button","body":"b","buttons":[{"id":"1","title":"a"},{"id":"1","title":"b"}]}}`, "interactive.buttons[1].id"},
		{"no body", `{"interactive":{"type":"button","body":"","buttons":[{"id":"1","title":"a"}]}}`, "interactive.body"},
		{"eleven rows", `{"interactive":{"type":"list","body":"b","button":"Ver","sections":[{"title":"A","rows":[` + rows(11) + `]}]}}`, "interactive.sections"},
		{"untitled sections", `{"interactive":{"type":"list","body":"b","button":"Ver","sections":[{"rows":[` + rows(1) + `]},{"title":"B","rows":[{"id":"z","title":"t"}]}]}}`, "interactive.sections[0].title"},
		{"long row title", `{"interactive":{"type":"list","body":"b","button":"Ver","sections":[{"rows":[{"id":"a","title":"` + strings.Repeat("y", 25) + `"}]}]}}`, "interactive.sections[0].rows[0].title"},
		{"no list button", `{"interactive":{"type":"list","body":"b","sections":[{"rows":[{"id":"a","title":"t"}]}]}}`, "interactive.button"},
		{"unknown type", `{"interactive":{"type":"carousel","body":"b"}}`, "interactive.type"},
	} {
		status, body := e.do("ana", "POST", path, c.body)
		raw, _ := json.Marshal(body)
		if status != 422 || !strings.Contains(string(raw), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s, want a field error on %s", c.name, status, raw, c.field)
		}
	}
	if n := e.fake.Accepted(); n != 0 {
		t.Fatalf("%d invalid messages reached Meta", n)
	}

	status, body := e.do("ana", "POST", path, buttons)
	if status != 202 {
		t.Fatalf("buttons: %d %v", status, body)
	}
	sent := e.waitStatus(body["message_id"].(string), routing.MessageSent)
	jsonEqual(t, mustJSON(sentBody(t, e.fake, "interactive")["interactive"]), `{"type":"button","header":{"type":"text","text":"Pedido #123"},
	  "body":{"text":"Podemos confirmar a entrega amanhã?"},"footer":{"text":"Loja"},"action":{"buttons":[
	  {"type":"reply","reply":{"id":"yes","title":"Sim"}},{"type":"reply","reply":{"id":"no","title":"Não"}},{"type":"reply","reply":{"id":"later","title":"Outro dia"}}]}}`)

	list := `{"interactive":{"type":"list","body":"Escolha o horário","button":"Horários","sections":[
	  {"title":"Manhã","rows":[{"id":"m9","title":"09:00","description":"chega até 10h"}]},{"title":"Tarde","rows":[{"id":"t2","title":"14:00"}]}]}}`
	if status, body := e.do("ana", "POST", path, list); status != 202 {
		t.Fatalf("list: %d %v", status, body)
	} else {
		e.waitStatus(body["message_id"].(string), routing.MessageSent)
	}

	// The customer taps "Sim": Meta's webhook names the message it answers in context.id.
	hook := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
	  "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001","phone_number_id":"` + number + `"},
	  "contacts":[{"profile":{"name":"Cliente"},"wa_id":"5511944440003"}],
	  "messages":[{"from":"5511944440003","id":"wamid.tap","timestamp":"` + itoa(e.clock.Now().Unix()) + `","type":"interactive",
	    "context":{"from":"15550001","id":"` + sent.ProviderMessageID + `"},
	    "interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Sim"}}}]}}]}]}`
	n, err := whook.New("s", "", "v").Parse([]byte(hook))
	if err != nil || len(n.Messages) != 1 {
		t.Fatalf("parse: %v %+v", err, n)
	}
	if _, err := e.router.Deliver(context.Background(), []routing.Inbound{n.Messages[0].Inbound()}); err != nil {
		t.Fatal(err)
	}
	msgs, _ := e.router.Messages(context.Background(), card.ConversationID, 10)
	last := msgs[len(msgs)-1]
	var p struct {
		ReplyTo string `json:"reply_to"`
		Reply   struct{ ID, Title string }
	}
	json.Unmarshal(last.Payload, &p)
	if last.Kind != "interactive" || p.ReplyTo != sent.ProviderMessageID || p.Reply.ID != "yes" {
		t.Fatalf("the choice %s is not linked to %s", last.Payload, sent.ProviderMessageID)
	}
}

// Interactive messages are WhatsApp's: refused on WebChat before anything is recorded.
func TestInteractiveIsRefusedOnWebChat(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "webchat")
	conv := e.webchatConversation()
	status, body := e.do("ana", "POST", "/v1/conversations/"+conv+"/messages", buttons)
	if status != 422 || code(body) != "channel_not_supported" {
		t.Fatalf("buttons on WebChat: %d %v", status, body)
	}
}

// Opening a conversation marks its newest customer message read at Meta once; a new message is
// marked on the next opening; only the holder marks.
func TestReadReceiptsAreSentOncePerMessage(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944440004")
	path := "/v1/conversations/" + card.ConversationID + "/read"
	reads := func() []fakeapi.Call {
		var out []fakeapi.Call
		for _, c := range e.fake.Calls() {
			if c.Type == "read" {
				out = append(out, c)
			}
		}
		return out
	}
	if status, body := e.do("ana", "POST", path, ""); status != 200 || body["marked"] != true {
		t.Fatalf("first opening: %d %v", status, body)
	}
	if r := reads(); len(r) != 1 || r[0].Read != "wamid.in-5511944440004" {
		t.Fatalf("receipts %+v", r)
	}
	jsonEqual(t, reads()[0].Body, `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.in-5511944440004"}`)
	for range 3 {
		if status, body := e.do("ana", "POST", path, ""); status != 200 || body["marked"] != false {
			t.Fatalf("opening again: %d %v", status, body)
		}
	}
	if r := reads(); len(r) != 1 {
		t.Fatalf("%d receipts for one message", len(r))
	}
	if _, err := e.router.Deliver(context.Background(), []routing.Inbound{{Channel: "whatsapp", EntryPoint: number,
		ContactID: "5511944440004", ContactPhone: "5511944440004", ProviderMessageID: "wamid.second", At: e.clock.Now(), Kind: "text", Text: "e aí?"}}); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do("ana", "POST", path, ""); status != 200 || body["marked"] != true {
		t.Fatalf("after a new message: %d %v", status, body)
	}
	if r := reads(); len(r) != 2 || r[1].Read != "wamid.second" {
		t.Fatalf("receipts %+v", r)
	}
	if status, body := e.do("bob", "POST", path, ""); status != 403 {
		t.Fatalf("another agent: %d %v", status, body)
	}
}

// The agent typing shows WhatsApp's typing indicator (Meta's read status with typing_indicator),
// at most every 20 seconds per conversation.
func TestTypingShowsWhatsAppsIndicator(t *testing.T) {
	e := newEnv(t, envOptions{noWorker: true})
	e.login("ana", "whatsapp")
	card := e.customerWrites("5511944440005")
	for range 3 {
		if status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/typing", ""); status != 204 {
			t.Fatalf("typing: %d %v", status, body)
		}
	}
	var typing []fakeapi.Call
	for _, c := range e.fake.Calls() {
		if c.Type == "typing" {
			typing = append(typing, c)
		}
	}
	if len(typing) != 1 {
		t.Fatalf("%d typing calls, want 1", len(typing))
	}
	jsonEqual(t, typing[0].Body, `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.in-5511944440005","typing_indicator":{"type":"text"}}`)
	// The indicator marked the message read: opening the conversation sends no second receipt.
	if status, body := e.do("ana", "POST", "/v1/conversations/"+card.ConversationID+"/read", ""); status != 200 || body["marked"] != false {
		t.Fatalf("read after typing: %d %v", status, body)
	}
	testutil.Eventually(t, time.Second, "nothing more", func() bool { return e.fake.Accepted() == 1 })
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func itoa(n int64) string {
	return strings.TrimSpace(strings.Replace(string(mustJSON(n)), `"`, "", -1))
}

// webchatConversation delivers a WebChat visitor's message and has ana accept it.
func (e *env) webchatConversation() string {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.router.Deliver(ctx, []routing.Inbound{{Channel: "webchat", EntryPoint: "shop", ContactID: "visitor-1",
		ProviderMessageID: "wc-1", Sender: "shop", At: e.clock.Now(), Kind: "text", Text: "olá"}}); err != nil {
		e.t.Fatal(err)
	}
	cards, _ := e.router.Cards(ctx, "ana")
	for _, c := range cards {
		if c.Channel == "webchat" {
			if c.State == routing.CardOffered {
				e.router.Accept(ctx, c.ID, "ana")
			}
			return c.ConversationID
		}
	}
	e.t.Fatalf("no webchat card: %+v", cards)
	return ""
}
