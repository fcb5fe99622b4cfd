package whatsapp

import (
	"encoding/json"
	"unicode/utf8"
)

// marshal writes req exactly as encoding/json would (same field order, omitempty and escaping),
// without reflection: every send builds one, on a worker goroutine whose stack encoding/json's deep
// recursion made the runtime grow and copy on most sends. Interactive messages, rarer and nested,
// still go through encoding/json.
func (r *request) marshal() ([]byte, error) {
	if r.Interactive != nil {
		return json.Marshal(r)
	}
	b := make([]byte, 0, 320)
	b = append(b, `{"messaging_product":`...)
	b = appendJSONString(b, r.MessagingProduct)
	b = append(b, `,"recipient_type":`...)
	b = appendJSONString(b, r.RecipientType)
	if r.To != "" {
		b = append(b, `,"to":`...)
		b = appendJSONString(b, r.To)
	}
	if r.Recipient != "" {
		b = append(b, `,"recipient":`...)
		b = appendJSONString(b, r.Recipient)
	}
	b = append(b, `,"type":`...)
	b = appendJSONString(b, r.Type)
	if r.Context != nil {
		b = append(b, `,"context":{"message_id":`...)
		b = appendJSONString(b, r.Context.MessageID)
		b = append(b, '}')
	}
	if r.Text != nil {
		b = append(b, `,"text":{"body":`...)
		b = appendJSONString(b, r.Text.Body)
		if r.Text.PreviewURL {
			b = append(b, `,"preview_url":true}`...)
		} else {
			b = append(b, `,"preview_url":false}`...)
		}
	}
	b = appendMedia(b, "image", r.Image)
	b = appendMedia(b, "document", r.Document)
	b = appendMedia(b, "audio", r.Audio)
	b = appendMedia(b, "video", r.Video)
	b = appendMedia(b, "sticker", r.Sticker)
	if t := r.Template; t != nil {
		b = append(b, `,"template":{"name":`...)
		b = appendJSONString(b, t.Name)
		b = append(b, `,"language":{"code":`...)
		b = appendJSONString(b, t.Language.Code)
		b = append(b, '}')
		if len(t.Components) > 0 {
			b = append(b, `,"components":[`...)
			for i, c := range t.Components {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendComponent(b, c)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendMedia(b []byte, name string, m *mediaObject) []byte {
	if m == nil {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":{`...)
	n := len(b)
	b = appendOptional(b, n, "id", m.ID)
	b = appendOptional(b, n, "link", m.Link)
	b = appendOptional(b, n, "caption", m.Caption)
	b = appendOptional(b, n, "filename", m.Filename)
	return append(b, '}')
}

// appendOptional writes "name":value unless value is empty (omitempty), after a comma unless it is
// the object's first field (the object's fields start at b[first:]).
func appendOptional(b []byte, first int, name, value string) []byte {
	if value == "" {
		return b
	}
	if len(b) > first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

func appendComponent(b []byte, c component) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, c.Type)
	b = appendOptional(b, 0, "sub_type", c.SubType)
	b = appendOptional(b, 0, "index", c.Index)
	if c.Parameters == nil {
		return append(b, `,"parameters":null}`...)
	}
	b = append(b, `,"parameters":[`...)
	for i, p := range c.Parameters {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":`...)
		b = appendJSONString(b, p.Type)
		b = appendOptional(b, 0, "text", p.Text)
		b = appendOptional(b, 0, "payload", p.Payload)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping on: <, > and & as \u003c…,
// control characters as \b \f \n \r \t or \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
