package integrations

import (
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Sign is what the official library signs, one "v1,…" per secret in order.
func TestSignIsTheLibrarys(t *testing.T) {
	s, err := NewSigner(secretA, "", secretB)
	if err != nil {
		t.Fatal(err)
	}
	id, at, body := "evt_1796308287965-0", time.Unix(1796308288, 0), []byte(`{"id":"evt_1796308287965-0","data":{"text":"é <b>"}}`)
	got, err := s.Sign(id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, sec := range []string{secretA, secretB} {
		h, _ := standardwebhooks.NewWebhook(sec)
		sig, err := h.Sign(id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sig)
	}
	if got != strings.Join(want, " ") {
		t.Fatalf("signature %q, the library's %q", got, strings.Join(want, " "))
	}
	if _, err := NewSigner("whsec_not base64"); err == nil {
		t.Fatal("a malformed secret was accepted")
	}
}
