package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"

	"github.com/chatgate/chatgate/internal/jsonenc"
)

// Compact storage of inbound messages. A customer's message is the most numerous thing Redis holds,
// so its HASH keeps only what no other record has and stays small enough for Redis's listpack
// encoding (every value ≤ 64 bytes, the default hash-max-listpack-value):
//
//   - its id is not a field: the key says it;
//   - there is no dedup key: an inbound message's id is derived from its provider id
//     (InboundMessageID), so the message's own key recognises a redelivery for as long as the
//     message is kept;
//   - the payload (the normalized message) is stored as x, with every member that repeats a stored
//     field left out: channel, id, at, kind and text (the message's fields), entry_point,
//     entry_point_display and the contact (the conversation's). x is absent when nothing is left
//     (a plain text message). Reading a message puts the payload back together (expandPayload);
//   - a text or x over 64 bytes is cut in 64-byte pieces (text, text~1, …), which keeps the listpack
//     encoding (one value over 64 bytes would turn the whole HASH into a hashtable, twice the size).
//
// The contact is left out only when it is exactly what the conversation's contact fields rebuild, so
// nothing the provider sent is lost; when read back it is the conversation's contact as it is then.

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// InboundMessageID is the id of the customer's message the provider calls providerID (scoped by
// sender, see Inbound.Sender) on channel: 26 characters like a ULID, the same on every redelivery.
func InboundMessageID(channel, sender, providerID string) string {
	var buf [256]byte // the usual key fits: hashed without an allocation
	key := append(append(append(append(append(buf[:0], channel...), 0), sender...), 0), providerID...)
	h := sha256.Sum256(key)
	var id [26]byte
	idEncoding.Encode(id[:], h[:16]) // 16 bytes are 26 characters
	return string(id[:])
}

// compactPayload splits an inbound payload into what the message keeps (x, "" when nothing) and the
// entry point's display name, which the conversation keeps. It runs for every inbound message, so
// it decodes once and compares strings without encoding them where it can.
func compactPayload(m Inbound, at time.Time) (x, display string) {
	if len(m.Payload) == 0 {
		return "", ""
	}
	if display, ok := compactPlainFast(m, at); ok {
		return "", display
	}
	if display, ok := compactPlain(m, at); ok {
		return "", display
	}
	var p map[string]json.RawMessage
	if gojson.Unmarshal(m.Payload, &p) != nil || p == nil {
		return string(m.Payload), ""
	}
	dropString := func(k, v string) {
		if raw, ok := p[k]; ok && jsonStringIs(raw, v) {
			delete(p, k)
		}
	}
	dropString("channel", m.Channel)
	dropString("id", m.ProviderMessageID)
	dropString("kind", m.Kind)
	dropString("text", m.Text)
	dropString("at", at.UTC().Format(time.RFC3339Nano))
	if !m.Notice { // a notice may have no conversation to take these from
		dropString("entry_point", m.EntryPoint)
		if raw, ok := p["entry_point_display"]; ok && gojson.Unmarshal(raw, &display) == nil && display != "" {
			delete(p, "entry_point_display")
		}
		if raw, ok := p["contact"]; ok {
			if bytes.Equal(raw, appendContactPayload(nil, contactPayload(inboundContact(m)))) {
				delete(p, "contact")
			}
		}
	}
	if len(p) == 0 {
		return "", display
	}
	b, err := gojson.Marshal(p)
	if err != nil {
		return string(m.Payload), ""
	}
	return string(b), display
}

// plainPayload is the payload of a plain message: every member one compactPayload drops.
type plainPayload struct {
	Channel           *string         `json:"channel"`
	EntryPoint        *string         `json:"entry_point"`
	EntryPointDisplay *string         `json:"entry_point_display"`
	Contact           json.RawMessage `json:"contact"`
	ID                *string         `json:"id"`
	At                *string         `json:"at"`
	Kind              *string         `json:"kind"`
	Text              *string         `json:"text"`
}

// compactPlain is compactPayload's fast path: a payload with no member but those other fields hold
// (a text message) decodes into a struct, which is several times cheaper than a map; ok is false
// for any other payload.
func compactPlain(m Inbound, at time.Time) (display string, ok bool) {
	if m.Notice {
		return "", false
	}
	var p plainPayload
	dec := gojson.NewDecoder(bytes.NewReader(m.Payload))
	dec.DisallowUnknownFields()
	if dec.Decode(&p) != nil {
		return "", false
	}
	same := func(got *string, want string) bool { return got == nil || *got == want }
	if !same(p.Channel, m.Channel) || !same(p.EntryPoint, m.EntryPoint) || !same(p.ID, m.ProviderMessageID) ||
		!same(p.Kind, m.Kind) || !same(p.Text, m.Text) || !same(p.At, at.UTC().Format(time.RFC3339Nano)) {
		return "", false
	}
	if len(p.Contact) > 0 {
		if !bytes.Equal(p.Contact, appendContactPayload(nil, contactPayload(inboundContact(m)))) {
			return "", false
		}
	}
	if p.EntryPointDisplay != nil {
		if display = *p.EntryPointDisplay; display == "" {
			return "", false // kept as it came: an empty name is not put back
		}
	}
	return display, true
}

// compactPlainFast is compactPlain for a payload as Marshal writes that of a plain message: an
// object of those members only, each once, without white space, whose strings have nothing
// escaped (read by hand, as they are). ok is false for any other payload, and where compactPlain
// would refuse it: the caller then asks compactPlain, so every payload gets compactPlain's answer.
func compactPlainFast(m Inbound, at time.Time) (display string, ok bool) {
	b := m.Payload
	if m.Notice || len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return "", false
	}
	if len(b) == 2 {
		return "", true
	}
	var seen uint8
	var contact []byte
	var buf [256]byte
	for i := 1; ; {
		key, next, ok := plainJSONString(b, i)
		if !ok || next >= len(b) || b[next] != ':' {
			return "", false
		}
		i = next + 1
		var bit uint8
		if string(key) == "contact" {
			bit = 1 << 7
			if contact == nil {
				contact = appendContactPayload(buf[:0], contactPayload(inboundContact(m)))
			}
			if !bytes.HasPrefix(b[i:], contact) {
				return "", false
			}
			i += len(contact)
		} else {
			v, next, ok := plainJSONString(b, i)
			if !ok {
				return "", false
			}
			i = next
			var want string
			checked := false
			switch string(key) {
			case "channel":
				bit, want = 1<<0, m.Channel
			case "entry_point":
				bit, want = 1<<1, m.EntryPoint
			case "id":
				bit, want = 1<<2, m.ProviderMessageID
			case "kind":
				bit, want = 1<<3, m.Kind
			case "text":
				bit, want = 1<<4, m.Text
			case "at":
				var tb [40]byte
				bit, checked = 1<<5, bytes.Equal(v, at.UTC().AppendFormat(tb[:0], time.RFC3339Nano))
				if !checked {
					return "", false
				}
			case "entry_point_display":
				if len(v) == 0 {
					return "", false // kept as it came: an empty name is not put back
				}
				display = string(v)
				bit, want = 1<<6, display
			default:
				return "", false
			}
			if !checked && string(v) != want {
				return "", false
			}
		}
		if seen&bit != 0 {
			return "", false
		}
		seen |= bit
		switch {
		case i == len(b)-1: // b[i] is the closing brace
			return display, true
		case i < len(b) && b[i] == ',':
			i++
		default:
			return "", false
		}
	}
}

// plainJSONString reads the JSON string at b[i]: its content when it has no escape and no control
// character and is valid UTF-8 (so that it decodes to itself), and the index after it.
func plainJSONString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			return s, j + 1, ascii || utf8.Valid(s)
		case c < 0x20 || c == '\\':
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// appendContactPayload appends c as gojson.Marshal writes it.
func appendContactPayload(dst []byte, c payloadContact) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, c.ID)
	dst = jsonenc.AppendMember(dst, "wa_id", c.WaID)
	dst = jsonenc.AppendMember(dst, "user_id", c.UserID)
	dst = jsonenc.AppendMember(dst, "parent_user_id", c.ParentUserID)
	dst = jsonenc.AppendMember(dst, "name", c.Name)
	dst = jsonenc.AppendMember(dst, "username", c.Username)
	dst = jsonenc.AppendMember(dst, "phone", c.Phone)
	return append(dst, '}')
}

// jsonStringIs reports whether raw is the JSON encoding of v: directly when v needs no escaping
// (the usual case; 0xE2 starts U+2028 and U+2029, which encoders escape), else by decoding raw.
func jsonStringIs(raw json.RawMessage, v string) bool {
	plain := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c == 0xE2 {
			plain = false
			break
		}
	}
	if plain {
		return len(raw) == len(v)+2 && raw[0] == '"' && raw[len(raw)-1] == '"' && string(raw[1:len(raw)-1]) == v
	}
	var s string
	return gojson.Unmarshal(raw, &s) == nil && s == v
}

// payloadContact is the contact member of a payload as the conversation's fields rebuild it.
type payloadContact struct {
	ID           string `json:"id"`
	WaID         string `json:"wa_id,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	ParentUserID string `json:"parent_user_id,omitempty"`
	Name         string `json:"name,omitempty"`
	Username     string `json:"username,omitempty"`
	Phone        string `json:"phone,omitempty"`
}

// contactFields are what a conversation knows of its contact, in the names of its HASH.
type contactFields struct {
	id, phone, bsuid, pbsuid, username, name string
}

func inboundContact(m Inbound) contactFields {
	c := contactFields{id: m.ContactID, name: m.ContactName}
	for _, id := range m.Identifiers {
		switch id.Kind {
		case IdentPhone:
			c.phone = id.Value
		case IdentUserID:
			c.bsuid = id.Value
		case IdentParentID:
			c.pbsuid = id.Value
		case IdentUsername:
			c.username = id.Value
		}
	}
	return c
}

// contactPayload rebuilds the payload's contact: a customer named by identifiers (WhatsApp) is
// known by its user id, else its number; one without (a WebChat visitor) by its contact id.
func contactPayload(c contactFields) payloadContact {
	phone := strings.TrimPrefix(c.phone, "+")
	if phone == "" && c.bsuid == "" && c.pbsuid == "" && c.username == "" {
		return payloadContact{ID: c.id, Name: c.name}
	}
	p := payloadContact{WaID: phone, UserID: c.bsuid, ParentUserID: c.pbsuid, Name: c.name, Username: c.username}
	if phone != "" {
		p.Phone = "+" + phone
	}
	p.ID = p.UserID
	if p.ID == "" {
		p.ID = phone
	}
	return p
}

// expandPayload puts an inbound message's payload back together from its fields and its
// conversation's (conv may be nil: then only the message's own fields are put back).
func expandPayload(m *Message, x string, conv map[string]string) {
	p := map[string]any{}
	if x != "" {
		var rest map[string]json.RawMessage
		if json.Unmarshal([]byte(x), &rest) != nil {
			return
		}
		for k, v := range rest {
			p[k] = v
		}
	}
	put := func(k string, v any) {
		if _, ok := p[k]; !ok {
			p[k] = v
		}
	}
	put("channel", m.Channel)
	put("id", m.ProviderMessageID)
	put("at", m.At)
	put("kind", m.Kind)
	if m.Text != "" {
		put("text", m.Text)
	}
	if len(conv) > 0 {
		put("entry_point", conv["entry_point"])
		if d := conv["entry_point_display"]; d != "" {
			put("entry_point_display", d)
		}
		put("contact", contactPayload(contactFields{id: conv["contact_id"], phone: conv["contact_phone"], bsuid: conv["contact_bsuid"],
			pbsuid: conv["contact_pbsuid"], username: conv["contact_username"], name: conv["contact_name"]}))
	}
	if b, err := json.Marshal(p); err == nil {
		m.Payload = b
	}
}
