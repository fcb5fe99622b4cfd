package routing

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
)

// compactSamples are inbound messages with their payloads as Marshal writes them, and variations on them.
func compactSamples() []Inbound {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	wa := Inbound{Channel: "whatsapp", EntryPoint: "100", ContactID: "BR.1", ContactName: "Maria", ContactPhone: "+5511999990001",
		Identifiers: []Identifier{{IdentPhone, "5511999990001"}, {IdentUserID, "BR.1"}}, ProviderMessageID: "wamid.c1", At: at, Kind: "text", Text: "oi"}
	web := Inbound{Channel: "webchat", EntryPoint: "shop", ContactID: "v1", ContactName: "Ana", Sender: "shop:v1", ProviderMessageID: "w1",
		At: at, Kind: "text", Text: "olá <b>&</b>"}
	var out []Inbound
	for _, tc := range []struct {
		base    Inbound
		payload string
	}{
		{wa, `{"channel":"whatsapp","entry_point":"100","entry_point_display":"+55 11 4000-0000","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria","phone":"+5511999990001"},"id":"wamid.c1","at":"2026-03-04T05:06:07.008Z","kind":"text","text":"oi"}`},
		{wa, `{"channel":"whatsapp","entry_point":"100","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria","phone":"+5511999990001"},"id":"wamid.c1","at":"2026-03-04T05:06:07.008Z","kind":"text","text":"oi"}`},
		{wa, `{"channel":"whatsapp","entry_point":"100","entry_point_display":"","id":"wamid.c1","kind":"text","text":"oi"}`},
		{wa, `{"channel":"whatsapp","entry_point":"100","entry_point_display":"Loja","contact":{"id":"BR.1","name":"Maria"},"id":"wamid.c1","at":"2026-03-04T05:06:07.008Z","kind":"text","text":"oi"}`},
		{wa, `{"channel":"whatsapp","entry_point":"100","id":"wamid.c1","at":"2026-03-04T05:06:07Z","kind":"text","text":"oi"}`},
		{wa, `{"channel":"whatsapp","channel":"whatsapp","id":"wamid.c1"}`},
		{wa, `{"channel":"whatsapp","id":"wamid.c1","media":{"id":"M9"}}`},
		{wa, `{"channel":"whatsapp", "id":"wamid.c1"}`},
		{wa, `{"channel":"whatsapp","id":"wamid.c1"} `},
		{wa, `{"channel":"whatsapp","id":"wamid.c1","text":null}`},
		{wa, `{"channel":"whatsapp","id":"wamid.c1","text":"o\u0069"}`},
		{wa, `{"Channel":"whatsapp","id":"wamid.c1"}`},
		{wa, `{"channel":"whatsapp","id":"wamid.c2"}`},
		{wa, `{"channel":"whatsapp","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria","phone":"+5511999990001"}}`},
		{wa, `{"channel":"whatsapp","contact":{"id":"BR.1","wa_id":"5511999990001","user_id":"BR.1","name":"Maria","phone":"+5511999990001","email":"m@x"}}`},
		{wa, `{}`},
		{wa, `{`},
		{wa, `[]`},
		{wa, `{"channel":"whatsapp",}`},
		{wa, `{"channel":"whatsapp"}{}`},
		{web, `{"channel":"webchat","entry_point":"shop","contact":{"id":"v1","name":"Ana"},"id":"w1","at":"2026-03-04T05:06:07.008Z","kind":"text","text":"olá \u003cb\u003e\u0026\u003c/b\u003e"}`},
		{web, `{"channel":"webchat","entry_point":"shop","contact":{"id":"v1","name":"Ana","email":"ana@example.com"},"id":"w1","kind":"text"}`},
		{web, `{"channel":"webchat","entry_point":"shop","contact":{"id":"v1","name":"Ana"},"id":"w1","kind":"text"}`},
	} {
		in := tc.base
		in.Payload = json.RawMessage(tc.payload)
		out = append(out, in)
		notice := in
		notice.Notice = true
		out = append(out, notice)
		zero := in
		zero.At = time.Time{}
		out = append(out, zero)
	}
	return out
}

// TestCompactPlainFast: the hand-read fast path answers only where compactPlain gives that answer,
// and answers for the payloads of plain messages.
func TestCompactPlainFast(t *testing.T) {
	fast := 0
	for _, m := range compactSamples() {
		if checkCompactPlainFast(t, m) {
			fast++
		}
	}
	t.Logf("the fast path read %d payloads", fast)
	if fast < 6 {
		t.Errorf("the fast path read %d payloads, want the plain ones", fast)
	}
}

func checkCompactPlainFast(t *testing.T, m Inbound) bool {
	t.Helper()
	at := m.At
	if at.IsZero() {
		at = time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	}
	display, ok := compactPlainFast(m, at)
	if !ok {
		return false
	}
	want, wantOK := compactPlain(m, at)
	if !wantOK || display != want {
		t.Fatalf("%s: fast path %q %v, compactPlain %q %v", m.Payload, display, ok, want, wantOK)
	}
	return true
}

// TestAppendContactPayloadIsMarshal: the contact a payload is compared with is written as Marshal writes it.
func TestAppendContactPayloadIsMarshal(t *testing.T) {
	for _, c := range []payloadContact{{}, {ID: "v1", Name: "Ana"}, {ID: "BR.1", WaID: "55", UserID: "BR.1", ParentUserID: "BR.P", Name: "Zé <&>",
		Username: "@ze", Phone: "+55"}, {ID: "x\u2028", Name: "\xff"}} {
		want, _ := gojson.Marshal(c)
		if got := appendContactPayload(nil, c); !bytes.Equal(got, want) {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func FuzzCompactPlainFast(f *testing.F) {
	for _, m := range compactSamples() {
		f.Add([]byte(m.Payload), m.Text, m.ContactName, m.Channel == "whatsapp", m.Notice)
	}
	samples := compactSamples()
	f.Fuzz(func(t *testing.T, payload []byte, text, name string, wa, notice bool) {
		m := samples[0]
		for _, s := range samples {
			if s.Channel == "webchat" && !wa {
				m = s
				break
			}
		}
		m.Payload, m.Text, m.ContactName, m.Notice = payload, text, name, notice
		checkCompactPlainFast(t, m)
		c := contactPayload(inboundContact(m))
		want, _ := gojson.Marshal(c)
		if got := appendContactPayload(nil, c); !bytes.Equal(got, want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}

// BenchmarkCompactPayload: the payload of a WhatsApp text message, as every intake compacts it.
func BenchmarkCompactPayload(b *testing.B) {
	m := compactSamples()[3] // whatsapp text without a display name
	b.ReportAllocs()
	for b.Loop() {
		if x, _ := compactPayload(m, m.At); x != "" {
			b.Fatal(x)
		}
	}
}
