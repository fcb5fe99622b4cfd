package whatsapp

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestEncodeMatchesMetaExamples builds each message Meta's sendMessage
// examples show and compares our body with the example structurally. The
// only edits to an example are listed in its case: the recipient placeholder
// becomes a real number, placeholder links become real URLs, and components
// we do not build (media headers, currency/date parameters, catalog buttons)
// are dropped.
func TestEncodeMatchesMetaExamples(t *testing.T) {
	examples := sendMessageExamples(t)
	const to, toDigits = "+16505551234", "16505551234"

	tests := []struct {
		example string
		msg     Message
		edit    func(ex map[string]any) // besides setting "to"
	}{
		{example: "Send Text Message",
			msg: TextMessage{To: to, Body: "text-message-content"}},
		{example: "Send Text Message with Preview URL",
			msg: TextMessage{To: to, Body: "Please visit https://youtu.be/hpltvTEiRrY.", PreviewURL: true},
			edit: func(ex map[string]any) {
				// This one example leaves out two fields the schema
				// (BaseMessageProperties) requires and every other example sends.
				ex["recipient_type"] = "individual"
				ex["type"] = "text"
			}},
		{example: "Send Reply to Text Message",
			msg: TextMessage{To: to, Body: "<TEXT_MSG_CONTENT>", ReplyTo: "<MSGID_OF_PREV_MSG>"}},
		{example: "Send Image Message by ID",
			msg: MediaMessage{To: to, Kind: MediaImage, ID: "<IMAGE_OBJECT_ID>"}},
		{example: "Send Image Message by URL",
			msg:  MediaMessage{To: to, Kind: MediaImage, Link: "https://example.com/image.jpg"},
			edit: setLink("image", "https://example.com/image.jpg")},
		{example: "Send Reply to Image Message by ID",
			msg: MediaMessage{To: to, Kind: MediaImage, ID: "<IMAGE_OBJECT_ID>", ReplyTo: "<MSGID_OF_PREV_MSG>"}},
		{example: "Send Reply to Image Message by URL",
			msg:  MediaMessage{To: to, Kind: MediaImage, Link: "https://example.com/image.jpg", ReplyTo: "<MSGID_OF_PREV_MSG>"},
			edit: setLink("image", "https://example.com/image.jpg")},
		{example: "Send Document Message by ID",
			msg: MediaMessage{To: to, Kind: MediaDocument, ID: "<DOCUMENT_OBJECT_ID>",
				Caption: "<DOCUMENT_CAPTION_TO_SEND>", Filename: "<DOCUMENT_FILENAME>"}},
		{example: "Send Document Message by URL",
			msg:  MediaMessage{To: to, Kind: MediaDocument, Link: "https://example.com/a.pdf", Caption: "<DOCUMENT-CAPTION-TEXT>"},
			edit: setLink("document", "https://example.com/a.pdf")},
		{example: "Send Audio Message by ID",
			msg: MediaMessage{To: to, Kind: MediaAudio, ID: "<AUDIO_OBJECT_ID>"}},
		{example: "Send Audio Message by URL",
			msg:  MediaMessage{To: to, Kind: MediaAudio, Link: "https://example.com/a.ogg"},
			edit: setLink("audio", "https://example.com/a.ogg")},
		{example: "Send Video Message by ID",
			msg: MediaMessage{To: to, Kind: MediaVideo, ID: "<VIDEO_OBJECT_ID>", Caption: "<VIDEO_CAPTION_TEXT>"}},
		{example: "Send Reply to Video Message by URL",
			msg: MediaMessage{To: to, Kind: MediaVideo, Link: "https://example.com/v.mp4", Caption: "<VIDEO_CAPTION_TEXT>",
				ReplyTo: "<MSGID_OF_MSG_YOU_ARE_REPLYING_TO>"},
			edit: setLink("video", "https://example.com/v.mp4")},
		{example: "Send Catalog Template Message",
			msg: TemplateMessage{To: to, Name: "intro_catalog_offer", Language: "en_US", BodyParams: []string{"100", "400", "3"}},
			edit: func(ex map[string]any) {
				dropComponents(ex, func(c map[string]any) bool { return c["sub_type"] == "CATALOG" })
			}},
		{example: "Send Message Template Interactive",
			msg: TemplateMessage{To: to, Name: "template-name", Language: "en_US", ButtonParams: []ButtonParam{
				{Kind: QuickReplyButton, Index: 0, Value: "aGlzIHRoaXMgaXMgY29v"},
				{Kind: QuickReplyButton, Index: 1, Value: "9rwnB8RbYmPF5t2Mn09x4h"},
			}},
			edit: func(ex map[string]any) {
				// The placeholder language is not a code; the header is an
				// image and the body mixes currency and date parameters.
				ex["template"].(map[string]any)["language"] = map[string]any{"code": "en_US"}
				dropComponents(ex, func(c map[string]any) bool { return c["type"] == "header" || c["type"] == "body" })
			}},
	}
	for _, tc := range tests {
		t.Run(tc.example, func(t *testing.T) {
			raw, ok := examples[tc.example]
			if !ok {
				t.Fatalf("Meta's file has no example %q", tc.example)
			}
			want := roundTrip(t, raw).(map[string]any)
			want["to"] = toDigits
			if tc.edit != nil {
				tc.edit(want)
			}
			body, err := Encode(tc.msg)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body differs from Meta's example\n got: %s\nwant: %s", body, mustJSON(t, want))
			}
		})
	}
}

// TestEncodeShapesWithoutMetaExample covers shapes the file shows no example
// of: text header parameters, URL buttons (ButtonComponent: "payload for quick
// reply or text for URL buttons") and a business-scoped user id, which Meta's
// BSUID guide sends in "recipient" instead of "to".
func TestEncodeShapesWithoutMetaExample(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"template with header, body and url button",
			TemplateMessage{To: "+5511999990001", Name: "order_update", Language: "pt_BR",
				HeaderParams: []string{"Pedido"}, BodyParams: []string{"Ana", "#123"},
				ButtonParams: []ButtonParam{{Kind: URLButton, Index: 1, Value: "orders/123"}}},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990001","type":"template",
			  "template":{"name":"order_update","language":{"code":"pt_BR"},"components":[
			    {"type":"header","parameters":[{"type":"text","text":"Pedido"}]},
			    {"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"#123"}]},
			    {"type":"button","sub_type":"url","index":"1","parameters":[{"type":"text","text":"orders/123"}]}]}}`},
		{"template without parameters",
			TemplateMessage{To: "5511999990001", Name: "hello_world", Language: "en_US"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990001","type":"template",
			  "template":{"name":"hello_world","language":{"code":"en_US"}}}`},
		{"text to a business-scoped user id",
			TextMessage{To: "BR.1502576394655843", Body: "Oi"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"BR.1502576394655843","type":"text",
			  "text":{"body":"Oi","preview_url":false}}`},
		{"pointer message",
			&TextMessage{To: "+5511999990001", Body: "Oi"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"5511999990001","type":"text",
			  "text":{"body":"Oi","preview_url":false}}`},
	}
	for _, tc := range tests {
		body, err := Encode(tc.msg)
		if err != nil {
			t.Errorf("%s: Encode: %v", tc.name, err)
			continue
		}
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got: %s\nwant: %s", tc.name, body, tc.want)
		}
	}
}

// TestEncodeRejectsBadInput: each bad message is an error wrapping
// ErrInvalidMessage that names the field and never repeats the number.
func TestEncodeRejectsBadInput(t *testing.T) {
	const phone = "+5511999990001"
	var nilText *TextMessage
	tests := []struct {
		name  string
		msg   Message
		field string
	}{
		{"nil message", nil, "nil"},
		{"nil pointer", nilText, "nil"},
		{"empty to", TextMessage{Body: "x"}, "to"},
		{"to with spaces", TextMessage{To: "+55 11 99999 0001", Body: "x"}, "to"},
		{"to too short", TextMessage{To: "+12345", Body: "x"}, "to"},
		{"to too long", TextMessage{To: "+1234567890123456", Body: "x"}, "to"},
		{"to leading zero", TextMessage{To: "+0511999990001", Body: "x"}, "to"},
		{"to lowercase bsuid", TextMessage{To: "br.150257", Body: "x"}, "to"},
		{"empty body", TextMessage{To: phone, Body: "  "}, "body"},
		{"body too long", TextMessage{To: phone, Body: strings.Repeat("a", MaxTextBody+1)}, "body"},
		{"body invalid utf-8", TextMessage{To: phone, Body: "\xff"}, "body"},
		{"reply id with spaces", TextMessage{To: phone, Body: "x", ReplyTo: " wamid.1"}, "reply_to"},
		{"template without name", TemplateMessage{To: phone, Language: "en"}, "template name"},
		{"template name padded", TemplateMessage{To: phone, Name: " a", Language: "en"}, "template name"},
		{"template without language", TemplateMessage{To: phone, Name: "a"}, "language"},
		{"template bad language", TemplateMessage{To: phone, Name: "a", Language: "english"}, "language"},
		{"empty body param", TemplateMessage{To: phone, Name: "a", Language: "en", BodyParams: []string{"x", ""}}, "body_params[1]"},
		{"empty header param", TemplateMessage{To: phone, Name: "a", Language: "en", HeaderParams: []string{" "}}, "header_params[0]"},
		{"button index out of range", TemplateMessage{To: phone, Name: "a", Language: "en",
			ButtonParams: []ButtonParam{{Kind: URLButton, Index: 10, Value: "x"}}}, "button_params[0]"},
		{"negative button index", TemplateMessage{To: phone, Name: "a", Language: "en",
			ButtonParams: []ButtonParam{{Kind: URLButton, Index: -1, Value: "x"}}}, "button_params[0]"},
		{"button index twice", TemplateMessage{To: phone, Name: "a", Language: "en",
			ButtonParams: []ButtonParam{{Kind: URLButton, Index: 0, Value: "x"}, {Kind: QuickReplyButton, Index: 0, Value: "y"}}}, "button_params[1]"},
		{"button unknown kind", TemplateMessage{To: phone, Name: "a", Language: "en",
			ButtonParams: []ButtonParam{{Kind: "copy_code", Index: 0, Value: "x"}}}, "button_params[0]"},
		{"button empty value", TemplateMessage{To: phone, Name: "a", Language: "en",
			ButtonParams: []ButtonParam{{Kind: QuickReplyButton, Index: 0}}}, "button_params[0]"},
		{"media unknown kind", MediaMessage{To: phone, Kind: "gif", ID: "1"}, "media kind"},
		{"media without id or link", MediaMessage{To: phone, Kind: MediaImage}, "exactly one"},
		{"media with id and link", MediaMessage{To: phone, Kind: MediaImage, ID: "1", Link: "https://x.test/a"}, "exactly one"},
		{"media relative link", MediaMessage{To: phone, Kind: MediaImage, Link: "/a.jpg"}, "media link"},
		{"media ftp link", MediaMessage{To: phone, Kind: MediaImage, Link: "ftp://x.test/a.jpg"}, "media link"},
		{"audio caption", MediaMessage{To: phone, Kind: MediaAudio, ID: "1", Caption: "c"}, "caption"},
		{"caption too long", MediaMessage{To: phone, Kind: MediaImage, ID: "1", Caption: strings.Repeat("c", MaxCaption+1)}, "caption"},
		{"image filename", MediaMessage{To: phone, Kind: MediaImage, ID: "1", Filename: "a.jpg"}, "filename"},
	}
	for _, tc := range tests {
		body, err := Encode(tc.msg)
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: got %v (body %s), want ErrInvalidMessage", tc.name, err, body)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name %q", tc.name, err, tc.field)
		}
		if strings.Contains(err.Error(), "5511999990001") || strings.Contains(err.Error(), "99999 0001") {
			t.Errorf("%s: error %q repeats the phone number", tc.name, err)
		}
		if !IsPermanent(err) {
			t.Errorf("%s: IsPermanent = false, want true", tc.name)
		}
	}
}

func TestRecipient(t *testing.T) {
	tests := []struct {
		in, field, value string
	}{
		{"+5511999990001", "to", "5511999990001"},
		{"5511999990001", "to", "5511999990001"},
		{"+1234567", "to", "1234567"},
		{"BR.1502576394655843", "recipient", "BR.1502576394655843"},
		{"HK.ENT.abc123XYZ", "recipient", "HK.ENT.abc123XYZ"},
		{"US." + strings.Repeat("7", 128), "recipient", "US." + strings.Repeat("7", 128)}, // the longest user id
	}
	for _, tc := range tests {
		field, value, err := Recipient(tc.in)
		if err != nil || field != tc.field || value != tc.value {
			t.Errorf("Recipient(%q) = %q, %q, %v; want %q, %q", tc.in, field, value, err, tc.field, tc.value)
		}
	}
	for _, bad := range []string{"", "+", "++5511999990001", "55-11-9999", "BR.", "BR.abc-def", "B.123", "US.123 ", strings.Repeat("A", 200), "US." + strings.Repeat("7", 129)} {
		if _, _, err := Recipient(bad); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Recipient(%q): got %v, want ErrInvalidMessage", bad, err)
		}
	}
}

func setLink(kind, link string) func(map[string]any) {
	return func(ex map[string]any) { ex[kind].(map[string]any)["link"] = link }
}

func dropComponents(ex map[string]any, drop func(map[string]any) bool) {
	tpl := ex["template"].(map[string]any)
	var kept []any
	for _, c := range tpl["components"].([]any) {
		if !drop(c.(map[string]any)) {
			kept = append(kept, c)
		}
	}
	tpl["components"] = kept
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
