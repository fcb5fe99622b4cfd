package webhooks

import (
	"github.com/goccy/go-json"

	"github.com/chatgate/chatgate/internal/jsonenc"
)

// payload is the message as json.Marshal writes it: by hand for a plain message (a text: none of
// the members a text leaves out), which is most of the intake, else by the encoder.
func (m *Message) payload() []byte {
	if !m.plain() {
		return m.marshal()
	}
	c := &m.Contact
	// the members' names and punctuation take under 160 bytes
	b := make([]byte, 0, 160+len(m.Channel)+len(m.EntryPoint)+len(m.EntryPointDisplay)+len(c.ID)+len(c.WaID)+len(c.UserID)+len(c.ParentUserID)+
		len(c.Name)+len(c.Username)+len(c.Phone)+len(c.Email)+len(m.ID)+40+len(m.Kind)+len(m.Text))
	b = append(b, `{"channel":`...)
	b = jsonenc.AppendString(b, m.Channel)
	b = append(b, `,"entry_point":`...)
	b = jsonenc.AppendString(b, m.EntryPoint)
	b = jsonenc.AppendMember(b, "entry_point_display", m.EntryPointDisplay)
	b = append(b, `,"contact":{"id":`...)
	b = jsonenc.AppendString(b, c.ID)
	b = jsonenc.AppendMember(b, "wa_id", c.WaID)
	b = jsonenc.AppendMember(b, "user_id", c.UserID)
	b = jsonenc.AppendMember(b, "parent_user_id", c.ParentUserID)
	b = jsonenc.AppendMember(b, "name", c.Name)
	b = jsonenc.AppendMember(b, "username", c.Username)
	b = jsonenc.AppendMember(b, "phone", c.Phone)
	b = jsonenc.AppendMember(b, "email", c.Email)
	b = append(b, `},"id":`...)
	b = jsonenc.AppendString(b, m.ID)
	b = append(b, `,"at":"`...)
	b, err := m.At.AppendText(b) // what the encoder writes of a time, and its error
	if err != nil {
		return m.marshal()
	}
	b = append(b, `","kind":`...)
	b = jsonenc.AppendString(b, m.Kind)
	b = jsonenc.AppendMember(b, "text", m.Text)
	return append(b, '}')
}

// marshal is the encoder's payload, of a copy: m itself stays where it is (on the caller's stack).
func (m *Message) marshal() []byte {
	b, _ := json.Marshal(*m)
	return b
}

// plain reports whether every member of the message's JSON after text is left out (omitempty).
func (m *Message) plain() bool {
	return m.Media == nil && m.Location == nil && len(m.Contacts) == 0 && m.Reaction == nil && m.Reply == nil && m.ReplyTo == "" &&
		!m.Forwarded && m.Referral == nil && m.Order == nil && m.ReferredProduct == nil && len(m.Errors) == 0 && len(m.Raw) == 0 &&
		!m.RawOmitted && len(m.Attachments) == 0 && m.PageURL == "" && !m.Notice && m.Previous == nil
}
