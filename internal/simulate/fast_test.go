package simulate

import (
	"regexp"
	"testing"
	"time"
)

func TestTextNotificationsAreWhatsAppNotification(t *testing.T) {
	tn := NewTextNotifications("100200300", "Bench")
	at := time.Unix(1796305490, 0)
	for _, tc := range []struct{ from, id, text string }{
		{"+5512345600000042", "wamid.ABC", "bench 123456 42"},
		{"5511999990001", NewMessageID(), "Olá, \"meu\" pedido <chegou> & \\ \n?"},
		{"+1", "x", ""},
	} {
		want := WhatsAppNotification(WhatsAppMessage{PhoneNumberID: "100200300", Name: "Bench", From: tc.from, ID: tc.id, Text: tc.text, At: at})
		if got := tn.Append(nil, tc.from, tc.id, at, tc.text); string(got) != string(want) {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
	}
}

func TestMessageIDsAndSigner(t *testing.T) {
	g, seen := NewMessageIDs(1, 2), map[string]bool{}
	form := regexp.MustCompile(`^wamid\.[0-9A-F]{36}$`)
	for i := 0; i < 1000; i++ {
		id := g.Next()
		if !form.MatchString(id) || seen[id] || len(id) != len(NewMessageID()) {
			t.Fatalf("id %q: not in NewMessageID's form, or repeated", id)
		}
		seen[id] = true
	}
	s := NewWhatsAppSigner("k")
	for _, body := range []string{"a", "", `{"object":"x"}`} {
		if got, want := string(s.Sign(nil, []byte(body))), SignWhatsApp([]byte(body), "k"); got != want {
			t.Errorf("%q: got %s, want %s", body, got, want)
		}
	}
}
