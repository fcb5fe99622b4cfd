package webhooks

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/goccy/go-json"
)

func checkPayload(t *testing.T, m Message) {
	t.Helper()
	want, _ := json.Marshal(m)
	if got := m.Inbound().Payload; !bytes.Equal(got, want) {
		t.Fatalf("payload\n%s\nwant\n%s", got, want)
	}
}

// TestPayloadIsMarshal: the payload written by hand is byte for byte the encoder's, for plain
// messages with strings of every kind and for the others.
func TestPayloadIsMarshal(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)
	plain := Message{Channel: "whatsapp", EntryPoint: "100", EntryPointDisplay: "+55 11 4000-0000", ID: "wamid.1", At: at, Kind: "text", Text: "oi",
		Contact: Contact{ID: "BR.1", WaID: "5511999990001", UserID: "BR.1", ParentUserID: "BR.P", Name: "Maria", Username: "@maria", Phone: "+5511999990001"}}
	for _, s := range []string{"", "Olá 😊", "<script>&</script>", "a\"b\\c\n\t\x00\x7f", "\u2028\u2029", "\xff\xfe", "caf\xc3"} {
		m := plain
		m.Text, m.Contact.Name, m.EntryPointDisplay = s, s, s
		checkPayload(t, m)
		m.Contact = Contact{ID: s, Email: s}
		checkPayload(t, m)
	}
	for _, when := range []time.Time{{}, at.In(time.FixedZone("BRT", -3*3600)), at.In(time.FixedZone("odd", 3600+23)), at.Add(123456789),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), at.In(time.FixedZone("far", 25*3600))} {
		m := plain
		m.At = when
		checkPayload(t, m)
	}
	for _, change := range []func(m *Message){
		func(m *Message) { m.Media = &Media{ID: "M1"} },
		func(m *Message) { m.Location = &Location{Latitude: 1} },
		func(m *Message) { m.Contacts = []byte(`[{"name":"x"}]`) },
		func(m *Message) { m.Contacts = []byte{} },
		func(m *Message) { m.Reaction = &Reaction{Emoji: "👍"} },
		func(m *Message) { m.Reply = &Reply{Type: "button_reply"} },
		func(m *Message) { m.ReplyTo = "wamid.0" },
		func(m *Message) { m.Forwarded = true },
		func(m *Message) { m.Referral = &Referral{} },
		func(m *Message) { m.Order = &Order{} },
		func(m *Message) { m.ReferredProduct = &Product{} },
		func(m *Message) { m.Errors = []ProviderError{{Code: 1}} },
		func(m *Message) { m.Raw = []byte(`{"a":1}`) },
		func(m *Message) { m.RawOmitted = true },
		func(m *Message) { m.Attachments = []Media{{URL: "https://x"}} },
		func(m *Message) { m.PageURL = "https://x" },
		func(m *Message) { m.Notice = true },
		func(m *Message) { m.Previous = &Contact{ID: "old"} },
		func(m *Message) { m.Sender = "site:v"; m.Unrecognized = true },
	} {
		m := plain
		change(&m)
		checkPayload(t, m)
	}
}

// TestPayloadKnowsEveryMember: plain and payload name every member of Message's JSON; a new field
// must be added to them (and here).
func TestPayloadKnowsEveryMember(t *testing.T) {
	var names []string
	typ := reflect.TypeOf(Message{})
	for i := range typ.NumField() {
		names = append(names, typ.Field(i).Name)
	}
	want := []string{"Channel", "EntryPoint", "EntryPointDisplay", "Contact", "ID", "At", "Kind", "Text", "Media", "Location", "Contacts",
		"Reaction", "Reply", "ReplyTo", "Forwarded", "Referral", "Order", "ReferredProduct", "Errors", "Raw", "RawOmitted", "Attachments",
		"PageURL", "Sender", "Unrecognized", "Notice", "Previous"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Message has the fields %v; payload and plain know %v", names, want)
	}
	if n := reflect.TypeOf(Contact{}).NumField(); n != 8 {
		t.Errorf("Contact has %d fields; payload knows 8", n)
	}
}

func FuzzPayload(f *testing.F) {
	f.Add("whatsapp", "100", "", "5511999990001", "Maria", "wamid.1", "text", "oi", int64(1750096325), int64(0))
	f.Add("webchat", "shop", "Loja", "v1", "Ana <&>", "w1", "text", "olá\u2028", int64(-62135596800), int64(-3600))
	f.Fuzz(func(t *testing.T, channel, entry, display, id, name, msgID, kind, text string, sec, offset int64) {
		m := Message{Channel: channel, EntryPoint: entry, EntryPointDisplay: display, ID: msgID, Kind: kind, Text: text,
			At:      time.Unix(sec, 0).In(time.FixedZone("z", int(offset%(30*3600)))),
			Contact: Contact{ID: id, WaID: id, UserID: name, Name: name, Phone: display, Email: text}}
		checkPayload(t, m)
	})
}

// BenchmarkInbound: a text message in routing's intake form, its payload included.
func BenchmarkInbound(b *testing.B) {
	m := Message{Channel: "whatsapp", EntryPoint: "100200300", ID: "wamid.HBgNNTUxMTk5OTk5MDAwMRUCABIYFjNFQjBDMEE1NEE0RjQ0QjY2QjQ1AA==",
		At: time.Unix(1750096325, 0).UTC(), Kind: "text", Text: "Oi, meu pedido chegou?",
		Contact: Contact{ID: "5511999990001", WaID: "5511999990001", Name: "Maria", Phone: "+5511999990001"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Inbound()
	}
}
