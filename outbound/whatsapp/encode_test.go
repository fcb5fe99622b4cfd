package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// tricky strings: everything encoding/json escapes (quotes, backslash, HTML, control characters,
// invalid UTF-8, U+2028/U+2029) beside plain text and multibyte letters.
var tricky = []string{
	"Olá", `a"b\c`, "<b>&amp;</b>", "tab\there\nnew\rline\b\f", "\x00\x01\x1f\x7f", "bad \xff\xfe utf8",
	"sep\u2028par\u2029end", "emoji 🎉 e ção", "\xe2\x80", "plain",
}

// messagesFor builds one message of each kind the hand-written encoder writes, with s in every
// free-text field.
func messagesFor(s string) []Message {
	return []Message{
		TextMessage{To: "+5511999990001", Body: "x" + s, PreviewURL: len(s)%2 == 0, ReplyTo: "wamid." + s},
		TemplateMessage{To: "BR.1502576394655843", Name: "n" + s, Language: "pt_BR", HeaderParams: []string{"h" + s},
			BodyParams: []string{"a" + s, "b"}, ButtonParams: []ButtonParam{{Kind: URLButton, Index: 0, Value: "u" + s}, {Kind: URLButton, Index: 3, Value: "v"}}},
		TemplateMessage{To: "+5511999990001", Name: "order_update", Language: "en",
			ButtonParams: []ButtonParam{{Kind: QuickReplyButton, Index: 1, Value: "p" + s}}},
		TemplateMessage{To: "+5511999990001", Name: "hello_world", Language: "en_US"},
		MediaMessage{To: "+5511999990001", Kind: MediaDocument, Link: "https://example.com/f.pdf", Caption: "c" + s, Filename: "f" + s, ReplyTo: "wamid.1"},
		MediaMessage{To: "+5511999990001", Kind: MediaImage, ID: "123"},
		MediaMessage{To: "+5511999990001", Kind: MediaAudio, ID: "m" + s},
		MediaMessage{To: "+5511999990001", Kind: MediaVideo, Link: "https://example.com/v.mp4", Caption: s},
		MediaMessage{To: "+5511999990001", Kind: MediaSticker, ID: "9"},
	}
}

// The bodies Send posts are byte for byte what encoding/json makes of the same request.
func TestSendBodyIsEncodingJSONsBytes(t *testing.T) {
	var got [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, b)
		w.Write([]byte(`{"messaging_product":"whatsapp","messages":[{"id":"wamid.X"}]}`))
	}))
	defer srv.Close()
	c := mustNew(t, Config{BaseURL: srv.URL, APIVersion: "v21.0"})
	for _, s := range tricky {
		for _, msg := range messagesFor(s) {
			req, err := msg.build()
			if err != nil {
				continue // refused before any request: not this test's subject
			}
			want, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			if _, err := c.Send(context.Background(), "100200300", "tok", msg); err != nil {
				t.Fatalf("%T %q: %v", msg, s, err)
			}
			if len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Errorf("%T %q:\n got %s\nwant %s", msg, s, got, want)
			}
		}
	}
}

// FuzzEncodeMatchesEncodingJSON: for any text, Encode's body equals encoding/json's.
func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, msg := range messagesFor(s) {
			req, err := msg.build()
			if err != nil {
				continue
			}
			want, _ := json.Marshal(req)
			got, err := Encode(msg)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%T %q: err %v\n got %s\nwant %s", msg, s, err, got, want)
			}
		}
	})
}

// The written-out checks accept exactly what the regular expressions they replace accept.
var (
	bsuidRE      = regexp.MustCompile(`^[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]{1,128}$`)
	phoneRE      = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)
	languageRE   = regexp.MustCompile(`^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$`)
	numberIDRE   = regexp.MustCompile(`^[0-9]{1,32}$`)
	checkSamples = []string{"", "BR.1502576394655843", "HK.ENT.abc123", "BR.ENT", "BR.ENT.", "BR.", "br.1", "BR.1.2",
		"BR." + strings.Repeat("a", 128), "BR." + strings.Repeat("a", 129), "BR.ENT." + strings.Repeat("a", 128),
		"5511999990001", "0511999990001", "123456", "1234567", "123456789012345", "1234567890123456", "12a4567",
		"en", "pt_BR", "es_419", "e", "engl", "en_", "en_U", "en_Latn", "en_Latnx", "EN", "en-US", "en_US_x",
		"100200300", strings.Repeat("1", 32), strings.Repeat("1", 33), "٣٣٣٣٣٣٣"}
)

func checkAgree(t *testing.T, s string) {
	if got, want := isBSUID(s), bsuidRE.MatchString(s); got != want {
		t.Errorf("isBSUID(%q) = %v, regexp %v", s, got, want)
	}
	if got, want := isPhoneDigits(s), phoneRE.MatchString(s); got != want {
		t.Errorf("isPhoneDigits(%q) = %v, regexp %v", s, got, want)
	}
	if got, want := isLanguageCode(s), languageRE.MatchString(s); got != want {
		t.Errorf("isLanguageCode(%q) = %v, regexp %v", s, got, want)
	}
	if got, want := digitRun(s, 1, 32), numberIDRE.MatchString(s); got != want {
		t.Errorf("digitRun(%q, 1, 32) = %v, regexp %v", s, got, want)
	}
}

func TestChecksAgreeWithTheirRegexps(t *testing.T) {
	for _, s := range checkSamples {
		checkAgree(t, s)
	}
}

func FuzzChecksAgreeWithTheirRegexps(f *testing.F) {
	for _, s := range checkSamples {
		f.Add(s)
	}
	f.Fuzz(checkAgree)
}
