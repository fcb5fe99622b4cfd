package fakeapi

import (
	"testing"
)

// FuzzValidateSend: any body is accepted with a recipient and a known type,
// or refused with a Meta error; nothing panics.
func FuzzValidateSend(f *testing.F) {
	f.Add(`{"messaging_product":"whatsapp","to":"5511999990001","type":"text","text":{"body":"x"}}`)
	f.Add(`{"messaging_product":"whatsapp","recipient":"BR.123","type":"image","image":{"link":"https://a.test/x"}}`)
	f.Add(`{"messaging_product":"whatsapp","to":"+1 650-555-1234","type":"template","template":{"name":"a","language":{"code":"en"},"components":[{"type":"button","sub_type":"url","index":0,"parameters":[{"type":"text","text":"x"}]}]}}`)
	f.Add(`{"messaging_product":"whatsapp","to":"5511999990001","interactive":{"type":"list"}}`)
	f.Add(`{"type":null,"text":[]}`)
	catalogue := []Template{{Name: "a", Language: "en", ButtonParams: 1}}
	f.Fuzz(func(t *testing.T, body string) {
		got, e := validateSend([]byte(body), catalogue)
		if e != nil {
			if got != nil || e.status < 400 || e.code == 0 {
				t.Fatalf("refusal %+v with body %+v", e, got)
			}
			return
		}
		if got.recipient == "" || !messageObjects[got.typ] {
			t.Fatalf("accepted %+v", got)
		}
		if got.typ == "template" && (got.template == "" || got.language == "") {
			t.Fatalf("accepted template without name or language: %+v", got)
		}
	})
}
