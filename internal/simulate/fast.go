package simulate

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"math/rand/v2"
	"strconv"
	"time"
)

// TextNotifications builds, byte for byte, the bodies WhatsAppNotification builds for text messages
// to one number from one named sender, at a small fraction of the cost: WhatsAppNotification makes a
// template once and each body is the template with its sender, id, time and text put in. For load
// generators, whose own CPU shares the machine with the gateway they measure.
type TextNotifications struct {
	segs  [][]byte // the template around its slots
	slots []int    // which value goes between segs[i] and segs[i+1]
}

// The placeholders the template is made with; each must come out of json.Marshal unchanged.
const (
	slotFrom = iota
	slotID
	slotAt
	slotText
)

var placeholders = [...]string{"5500FROMFROMFROM00", "wamid.IDIDIDIDIDIDIDIDIDIDIDIDIDIDIDIDIDID", "1234567890", "TEXTTEXTTEXTTEXT"}

// NewTextNotifications makes the template of phoneNumberID's text messages from a customer named name.
func NewTextNotifications(phoneNumberID, name string) *TextNotifications {
	tpl := WhatsAppNotification(WhatsAppMessage{PhoneNumberID: phoneNumberID, Name: name, From: "+" + placeholders[slotFrom],
		ID: placeholders[slotID], Text: placeholders[slotText], At: time.Unix(1234567890, 0)})
	t := &TextNotifications{}
	for len(tpl) > 0 {
		at, slot := len(tpl), -1
		for s, p := range placeholders {
			if i := bytes.Index(tpl, []byte(p)); i >= 0 && i < at {
				at, slot = i, s
			}
		}
		t.segs = append(t.segs, tpl[:at])
		if slot < 0 {
			break
		}
		t.slots = append(t.slots, slot)
		tpl = tpl[at+len(placeholders[slot]):]
	}
	if len(t.segs) == len(t.slots) {
		t.segs = append(t.segs, nil)
	}
	return t
}

// Append appends the body of a text message from the customer's number (digits, optionally with
// '+'), with the message id, time and text, to dst.
func (t *TextNotifications) Append(dst []byte, from, id string, at time.Time, text string) []byte {
	for i, seg := range t.segs {
		dst = append(dst, seg...)
		if i == len(t.slots) {
			break
		}
		switch t.slots[i] {
		case slotFrom:
			dst = appendJSONText(dst, digits(from))
		case slotID:
			dst = appendJSONText(dst, id)
		case slotAt:
			dst = strconv.AppendInt(dst, at.Unix(), 10)
		case slotText:
			dst = appendJSONText(dst, text)
		}
	}
	return dst
}

// appendJSONText appends s as the inside of a JSON string, escaped as json.Marshal escapes it.
func appendJSONText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b[1:len(b)-1]...)
		}
	}
	return append(dst, s...)
}

// MessageIDs makes ids in NewMessageID's form from a seeded generator instead of the system's
// random source (a system call each): unique enough for a load test, and cheap. Not safe for
// concurrent use; one per goroutine.
type MessageIDs struct{ r *rand.PCG }

// NewMessageIDs seeds a generator; give each a different seed.
func NewMessageIDs(seed1, seed2 uint64) *MessageIDs { return &MessageIDs{r: rand.NewPCG(seed1, seed2)} }

// Next returns a new id.
func (g *MessageIDs) Next() string {
	var b [18]byte
	for i := 0; i < len(b); i += 8 {
		v := g.r.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v >> (8 * (j - i)))
		}
	}
	var out [6 + 36]byte
	copy(out[:], "wamid.")
	const upper = "0123456789ABCDEF"
	for i, c := range b {
		out[6+2*i], out[6+2*i+1] = upper[c>>4], upper[c&15]
	}
	return string(out[:])
}

// WhatsAppSigner signs bodies as SignWhatsApp does, reusing its keyed hash. Not safe for concurrent
// use; one per goroutine.
type WhatsAppSigner struct{ mac hash.Hash }

// NewWhatsAppSigner keys a signer with the app secret.
func NewWhatsAppSigner(appSecret string) *WhatsAppSigner {
	return &WhatsAppSigner{mac: hmac.New(sha256.New, []byte(appSecret))}
}

// Sign appends body's X-Hub-Signature-256 value to dst.
func (s *WhatsAppSigner) Sign(dst, body []byte) []byte {
	s.mac.Reset()
	s.mac.Write(body)
	var sum [sha256.Size]byte
	dst = append(dst, "sha256="...)
	return hex.AppendEncode(dst, s.mac.Sum(sum[:0]))
}
