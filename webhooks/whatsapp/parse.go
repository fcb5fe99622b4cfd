package whatsapp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/chatgate/chatgate/webhooks"
)

// Meta's notification shapes (WebhookPayload, IncomingMessage, Statuses in Meta's OpenAPI file).
type notification struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type changeValue struct {
	valueHead
	Messages []json.RawMessage `json:"messages"`
	Statuses []json.RawMessage `json:"statuses"`
}

// valueHead is what a change's messages and statuses share: the receiving number, the senders, the
// change's errors.
type valueHead struct {
	MessagingProduct string `json:"messaging_product"`
	Metadata         struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []contact  `json:"contacts"`
	Errors   []apiError `json:"errors"`
}

// typedNotification is the whole notification decoded in one pass, its messages and statuses
// included: parseTyped's input. One is reused from request to request (typedPool), its slices'
// arrays with it: they were most of what the decode allocated.
type typedNotification struct {
	Object string       `json:"object"`
	Entry  []typedEntry `json:"entry"`
}

type typedEntry struct {
	Changes []typedChange `json:"changes"`
}

type typedChange struct {
	Field string     `json:"field"`
	Value typedValue `json:"value"`
}

type typedValue struct {
	valueHead
	Messages []message `json:"messages"`
	Statuses []status  `json:"statuses"`
}

var typedPool = sync.Pool{New: func() any { return new(typedNotification) }}

// reset empties n as a new one is, keeping its slices' arrays (zeroed: the decoder decodes into the
// elements of an array, past the length too), and reports whether they are small enough to keep.
func (n *typedNotification) reset() bool {
	keep := cap(n.Entry) <= 4
	entries := n.Entry[:cap(n.Entry)]
	for i := range entries {
		changes := entries[i].Changes[:cap(entries[i].Changes)]
		keep = keep && len(changes) <= 4
		for j := range changes {
			v := &changes[j].Value
			msgs, sts, cs, errs := v.Messages[:cap(v.Messages)], v.Statuses[:cap(v.Statuses)], v.Contacts[:cap(v.Contacts)], v.Errors[:cap(v.Errors)]
			keep = keep && len(msgs) <= 16 && len(sts) <= 64 && len(cs) <= 16 && len(errs) <= 4
			clear(msgs)
			clear(sts)
			clear(cs)
			clear(errs)
			changes[j] = typedChange{Value: typedValue{valueHead: valueHead{Contacts: cs[:0], Errors: errs[:0]}, Messages: msgs[:0], Statuses: sts[:0]}}
		}
		entries[i] = typedEntry{Changes: changes[:0]}
	}
	*n = typedNotification{Entry: entries[:0]}
	return keep
}

type contact struct {
	Profile struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	} `json:"profile"`
	WaID         string `json:"wa_id"`
	UserID       string `json:"user_id"`
	ParentUserID string `json:"parent_user_id"`
}

type apiError struct {
	Code    flexInt `json:"code"`
	Title   string  `json:"title"`
	Message string  `json:"message"`
	// Details beside code and title: where Meta's older notifications put them.
	Details   string `json:"details"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
}

type media struct {
	ID       string `json:"id"`
	Link     string `json:"link"`
	URL      string `json:"url"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	Voice    bool   `json:"voice"`
	Animated bool   `json:"animated"`
}

// flexFloat reads a coordinate Meta may send as a number or as a string.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*f = flexFloat(v)
	return nil
}

// flexString reads an id Meta may send as a string or as a number (the old system.new_wa_id).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

// systemNotice is Meta's system message: a changed number (user_changed_number, formerly
// customer_changed_number with new_wa_id), a changed business-scoped user id (user_changed_user_id),
// or a changed security code (customer_identity_changed). wa_id and user_id are the new identifiers;
// previous_user_id and previous_parent_user_id the replaced user ids.
type systemNotice struct {
	Body                 string     `json:"body"`
	Type                 string     `json:"type"`
	WaID                 flexString `json:"wa_id"`
	NewWaID              flexString `json:"new_wa_id"`
	UserID               string     `json:"user_id"`
	ParentUserID         string     `json:"parent_user_id"`
	PreviousUserID       string     `json:"previous_user_id"`
	PreviousParentUserID string     `json:"previous_parent_user_id"`
}

// flexInt reads an integer Meta may send as a number or as a string.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	var f flexFloat
	if err := f.UnmarshalJSON(b); err != nil {
		return err
	}
	*n = flexInt(f)
	return nil
}

// flexTime reads a Unix time in seconds Meta may send as a string ("1750096325") or as a number.
type flexTime time.Time

func (t *flexTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	sec, err := strconv.ParseFloat(s, 64)
	if err != nil || sec <= 0 || sec > 1e11 {
		// An unreadable time is not a reason to lose the message: it takes the time of arrival.
		return nil
	}
	*t = flexTime(time.Unix(int64(sec), 0).UTC())
	return nil
}

func (t flexTime) time() time.Time { return time.Time(t) }

type message struct {
	From             string   `json:"from"`
	FromUserID       string   `json:"from_user_id"`
	FromParentUserID string   `json:"from_parent_user_id"`
	ID               string   `json:"id"`
	Timestamp        flexTime `json:"timestamp"`
	Type             string   `json:"type"`
	Text             *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image    *media `json:"image"`
	Audio    *media `json:"audio"`
	Video    *media `json:"video"`
	Document *media `json:"document"`
	Sticker  *media `json:"sticker"`
	Location *struct {
		Latitude  flexFloat `json:"latitude"`
		Longitude flexFloat `json:"longitude"`
		Name      string    `json:"name"`
		Address   string    `json:"address"`
		URL       string    `json:"url"`
	} `json:"location"`
	Contacts    json.RawMessage `json:"contacts"`
	Interactive *struct {
		Type        string `json:"type"`
		ButtonReply *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply *struct {
			ID          string `json:"id"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"list_reply"`
		NFMReply *struct {
			Name         string `json:"name"`
			Body         string `json:"body"`
			ResponseJSON string `json:"response_json"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Button *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Order *struct {
		CatalogID    string `json:"catalog_id"`
		Text         string `json:"text"`
		ProductItems []struct {
			ProductRetailerID string    `json:"product_retailer_id"`
			Quantity          flexFloat `json:"quantity"`
			ItemPrice         flexFloat `json:"item_price"`
			Currency          string    `json:"currency"`
		} `json:"product_items"`
	} `json:"order"`
	System  *systemNotice `json:"system"`
	Context *struct {
		From                string `json:"from"`
		ID                  string `json:"id"`
		Forwarded           bool   `json:"forwarded"`
		FrequentlyForwarded bool   `json:"frequently_forwarded"`
		ReferredProduct     *struct {
			CatalogID         string `json:"catalog_id"`
			ProductRetailerID string `json:"product_retailer_id"`
		} `json:"referred_product"`
	} `json:"context"`
	Referral *struct {
		SourceURL    string `json:"source_url"`
		SourceID     string `json:"source_id"`
		SourceType   string `json:"source_type"`
		Body         string `json:"body"`
		Headline     string `json:"headline"`
		MediaType    string `json:"media_type"`
		ImageURL     string `json:"image_url"`
		VideoURL     string `json:"video_url"`
		ThumbnailURL string `json:"thumbnail_url"`
		CTWAClid     string `json:"ctwa_clid"`
		Welcome      *struct {
			Text string `json:"text"`
		} `json:"welcome_message"`
	} `json:"referral"`
	Errors []apiError `json:"errors"`
}

type status struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Timestamp    flexTime   `json:"timestamp"`
	RecipientID  string     `json:"recipient_id"`
	Errors       []apiError `json:"errors"`
	Conversation *struct {
		ID string `json:"id"`
	} `json:"conversation"`
	Pricing *struct {
		Category string `json:"category"`
	} `json:"pricing"`
}

// Parse reads a whole notification: every entry and change, the contacts, every message kind
// (unknown kinds kept with their raw JSON) and every status. Fields other than "messages" (and
// group events) are skipped, not errors: Meta must not retry them forever.
func (p *Provider) Parse(body []byte) (webhooks.Notification, error) {
	if out, ok := parseTyped(body); ok {
		return out, nil
	}
	return parseParts(body)
}

// parseParts is Parse part by part: the notification, then each change's value, then each message
// and status, so that one of an unexpected shape costs only itself.
func parseParts(body []byte) (webhooks.Notification, error) {
	var out webhooks.Notification
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || len(bytes.TrimSpace(body)) == 0 {
			return out, webhooks.ErrInvalidJSON
		}
		return out, fmt.Errorf("%w: %v", webhooks.ErrNotUnderstood, err)
	}
	if n.Object != "whatsapp_business_account" {
		return out, webhooks.ErrForeignObject
	}
	for _, e := range n.Entry {
		for _, ch := range e.Changes {
			if ch.Field != "messages" {
				out.Skipped = append(out.Skipped, webhooks.Skipped{Field: ch.Field, Reason: "field not handled"})
				continue
			}
			var v changeValue
			if err := json.Unmarshal(ch.Value, &v); err != nil && !lenientValue(ch.Value, &v) {
				out.Skipped = append(out.Skipped, webhooks.Skipped{Field: ch.Field, Reason: "value not understood: " + err.Error()})
				continue
			}
			parseValue(&v, &out)
		}
	}
	return out, nil
}

// parseTyped is Parse in one decode of the body, for the common notification: every part in the
// shapes Meta documents, only "messages" changes, and no message whose raw JSON is kept (a text, a
// media file, a reply). It reports false for anything else, which parseParts then reads: three
// decodes, but a part of an unexpected shape costs only that part, and raw JSON is at hand. Both
// give the same result where parseTyped reports true (TestParseTypedIsParseParts).
func parseTyped(body []byte) (webhooks.Notification, bool) {
	n := typedPool.Get().(*typedNotification)
	out, ok := parseTypedInto(body, n)
	if n.reset() {
		typedPool.Put(n)
	}
	return out, ok
}

// parseTypedInto is parseTyped decoding into n, which is empty (reset).
func parseTypedInto(body []byte, n *typedNotification) (webhooks.Notification, bool) {
	var out webhooks.Notification
	if json.Unmarshal(body, n) != nil || n.Object != "whatsapp_business_account" {
		return out, false
	}
	for _, e := range n.Entry {
		for i := range e.Changes {
			ch := &e.Changes[i]
			if ch.Field != "messages" {
				return out, false
			}
			v := &ch.Value
			valueErrors := providerErrors(v.Errors)
			for j := range v.Messages {
				m := &v.Messages[j]
				if m.ID == "" {
					return out, false
				}
				msg, keepRaw := normalize(m)
				if keepRaw {
					return out, false
				}
				out.Messages = append(out.Messages, settleMessage(&v.valueHead, m, msg, valueErrors))
			}
			for j := range v.Statuses {
				st, ok := statusOf(&v.Statuses[j], v.Metadata.PhoneNumberID)
				if !ok {
					return out, false
				}
				out.Statuses = append(out.Statuses, st)
			}
			if len(v.Messages) == 0 && len(v.Statuses) == 0 && len(valueErrors) > 0 {
				return out, false
			}
		}
	}
	return out, true
}

func parseValue(v *changeValue, out *webhooks.Notification) {
	// Errors Meta reports for the whole change (e.g. 131000 on a message it could not render) belong
	// to its messages that carry none of their own.
	valueErrors := providerErrors(v.Errors)
	for _, raw := range v.Messages {
		var m message
		msg := webhooks.Message{}
		if err := json.Unmarshal(raw, &m); err != nil {
			// Meta's JSON in a shape this parser does not expect: recorded raw, never dropped.
			if !lenient(raw, &m) {
				out.Skipped = append(out.Skipped, webhooks.Skipped{Field: "messages", Reason: "message without an id or not understood"})
				continue
			}
			msg = webhooks.Message{ID: m.ID, At: m.Timestamp.time(), Kind: "raw", Unrecognized: true}
			msg.Raw, msg.RawOmitted = bounded(raw)
		} else if m.ID == "" {
			out.Skipped = append(out.Skipped, webhooks.Skipped{Field: "messages", Reason: "message without an id or not understood"})
			continue
		} else {
			var keepRaw bool
			if msg, keepRaw = normalize(&m); keepRaw {
				msg.Raw, msg.RawOmitted = bounded(raw)
			}
		}
		out.Messages = append(out.Messages, settleMessage(&v.valueHead, &m, msg, valueErrors))
	}
	for _, raw := range v.Statuses {
		var s status
		st, ok := webhooks.Status{}, json.Unmarshal(raw, &s) == nil
		if ok {
			st, ok = statusOf(&s, v.Metadata.PhoneNumberID)
		}
		if !ok {
			out.Skipped = append(out.Skipped, webhooks.Skipped{Field: "statuses", Reason: "status without an id or not understood"})
			continue
		}
		out.Statuses = append(out.Statuses, st)
	}
	if len(v.Messages) == 0 && len(v.Statuses) == 0 {
		for _, e := range valueErrors {
			out.Skipped = append(out.Skipped, webhooks.Skipped{Field: "messages",
				Reason: fmt.Sprintf("account error %d %s: %s", e.Code, firstNonEmpty(e.Title, e.Message), e.Details)})
		}
	}
}

// settleMessage completes a normalized message with what its change says: the change's errors when
// it has none of its own, the receiving number, the sender, and an identity change.
func settleMessage(v *valueHead, m *message, msg webhooks.Message, valueErrors []webhooks.ProviderError) webhooks.Message {
	if len(msg.Errors) == 0 {
		msg.Errors = valueErrors
	}
	msg.Channel, msg.EntryPoint, msg.EntryPointDisplay = Channel, v.Metadata.PhoneNumberID, v.Metadata.DisplayPhoneNumber
	msg.Contact = contactFor(m, v.Contacts)
	if m.Type == "system" {
		identityChange(m, &msg)
	}
	return msg
}

// statusOf normalizes a status; false when it has no id or no state.
func statusOf(s *status, entry string) (webhooks.Status, bool) {
	if s.ID == "" || s.Status == "" {
		return webhooks.Status{}, false
	}
	st := webhooks.Status{Channel: Channel, EntryPoint: entry, MessageID: s.ID, RecipientID: s.RecipientID,
		State: s.Status, At: s.Timestamp.time(), Errors: providerErrors(s.Errors)}
	if s.Conversation != nil {
		st.ConversationID = s.Conversation.ID
	}
	if s.Pricing != nil {
		st.PricingCategory = s.Pricing.Category
	}
	return st, true
}

// lenientValue reads a change whose JSON does not fit changeValue part by part, so one contact or
// error of an unexpected shape does not cost the change's messages and statuses (each of which is
// then read on its own). It reports whether the value is an object at all.
func lenientValue(raw json.RawMessage, v *changeValue) bool {
	var parts map[string]json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return false
	}
	*v = changeValue{}
	_ = json.Unmarshal(parts["metadata"], &v.Metadata)
	_ = json.Unmarshal(parts["messages"], &v.Messages)
	_ = json.Unmarshal(parts["statuses"], &v.Statuses)
	var items []json.RawMessage
	if json.Unmarshal(parts["contacts"], &items) == nil {
		for _, it := range items {
			var c contact
			if json.Unmarshal(it, &c) == nil {
				v.Contacts = append(v.Contacts, c)
			}
		}
	}
	items = nil
	if json.Unmarshal(parts["errors"], &items) == nil {
		for _, it := range items {
			var e apiError
			if json.Unmarshal(it, &e) == nil {
				v.Errors = append(v.Errors, e)
			}
		}
	}
	return true
}

// lenient reads what identifies a message whose JSON does not fit the message type (a field of an
// unexpected type): its id, sender and time. It reports whether there is an id to record it by.
func lenient(raw json.RawMessage, m *message) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return false
	}
	text := func(k string) string {
		var s string
		if json.Unmarshal(fields[k], &s) == nil {
			return s
		}
		return ""
	}
	*m = message{ID: text("id"), From: text("from"), FromUserID: text("from_user_id"), Type: text("type")}
	_ = m.Timestamp.UnmarshalJSON(fields["timestamp"])
	return m.ID != ""
}

// bounded keeps raw compacted, unless it is over webhooks.MaxRaw.
func bounded(raw json.RawMessage) (json.RawMessage, bool) {
	c := compact(raw)
	if len(c) > webhooks.MaxRaw {
		return nil, true
	}
	return c, false
}

// contactFor finds the message's sender among the change's contacts: by wa_id, by user_id, or the
// only contact there is. The contact is keyed by the business-scoped user id when Meta sends one.
func contactFor(m *message, contacts []contact) webhooks.Contact {
	var found *contact
	for i := range contacts {
		c := &contacts[i]
		if (m.From != "" && c.WaID == m.From) || (m.FromUserID != "" && c.UserID == m.FromUserID) {
			found = c
			break
		}
	}
	if found == nil && len(contacts) == 1 {
		found = &contacts[0]
	}
	out := webhooks.Contact{WaID: m.From, UserID: m.FromUserID, ParentUserID: m.FromParentUserID}
	if found != nil {
		out.Name, out.Username = found.Profile.Name, found.Profile.Username
		if found.WaID != "" {
			out.WaID = found.WaID
		}
		if found.UserID != "" {
			out.UserID = found.UserID
		}
		if found.ParentUserID != "" {
			out.ParentUserID = found.ParentUserID
		}
	}
	settleContact(&out)
	return out
}

// settleContact derives the phone and the main id from the identifiers.
func settleContact(c *webhooks.Contact) {
	c.WaID = strings.TrimPrefix(c.WaID, "+")
	c.Phone = ""
	if c.WaID != "" {
		c.Phone = "+" + c.WaID
	}
	c.ID = c.UserID
	if c.ID == "" {
		c.ID = c.WaID
	}
}

// identityChange reads a system message as a notice: for a changed number or user id, the message's
// contact becomes the customer's new identifiers and Previous the replaced ones (the sender's old
// number, the previous user ids), so routing moves them and the open conversation carries on. Other
// system messages (a changed security code) are notes only. The agent sees Meta's body, or a line
// of ours, in Portuguese and English, when Meta sends none.
func identityChange(m *message, msg *webhooks.Message) {
	msg.Notice = true
	s := m.System
	if s == nil {
		return
	}
	cur, prev := msg.Contact, webhooks.Contact{}
	changed := false
	switch s.Type {
	case "user_changed_number", "customer_changed_number":
		if w := strings.TrimPrefix(string(firstFlex(s.WaID, s.NewWaID)), "+"); w != "" && w != cur.WaID {
			prev.WaID, cur.WaID, changed = cur.WaID, w, true
		}
		if msg.Text == "" {
			msg.Text = "O cliente mudou de número no WhatsApp. · The customer changed their WhatsApp number."
		}
	case "user_changed_user_id":
		if cur.WaID == "" {
			cur.WaID = strings.TrimPrefix(string(s.WaID), "+")
		}
		if msg.Text == "" {
			msg.Text = "O identificador do cliente no WhatsApp mudou. · The customer's WhatsApp identifier changed."
		}
	default:
		return
	}
	var c1, c2 bool
	cur.UserID, prev.UserID, c1 = replaceID(cur.UserID, s.UserID, s.PreviousUserID)
	cur.ParentUserID, prev.ParentUserID, c2 = replaceID(cur.ParentUserID, s.ParentUserID, s.PreviousParentUserID)
	if !changed && !c1 && !c2 {
		return
	}
	settleContact(&cur)
	settleContact(&prev)
	msg.Contact, msg.Previous = cur, &prev
}

// replaceID: the sender's id (from_user_id, the old one when Meta gives a new one), the new id and
// the previous id Meta names → the current id, the replaced one, and whether anything changed.
func replaceID(sender, next, previous string) (current, replaced string, changed bool) {
	if next == "" {
		if previous != "" && previous != sender {
			return sender, previous, true
		}
		return sender, "", false
	}
	if previous == "" && sender != next {
		previous = sender
	}
	if previous == next {
		previous = ""
	}
	return next, previous, previous != "" || sender != next
}

func firstFlex(vs ...flexString) flexString {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// normalize reads a message of the parser's shape; keepRaw says the message is to keep Meta's JSON
// too (bounded), as it has parts the normalized form does not hold.
func normalize(m *message) (msg webhooks.Message, keepRaw bool) {
	msg = webhooks.Message{ID: m.ID, At: m.Timestamp.time(), Kind: m.Type, Errors: providerErrors(m.Errors)}
	switch m.Type {
	case "text":
		if m.Text != nil {
			msg.Text = m.Text.Body
		}
	case "image", "audio", "video", "document", "sticker":
		if md := mediaOf(m); md != nil {
			msg.Media = &webhooks.Media{ID: md.ID, URL: firstNonEmpty(md.URL, md.Link), MimeType: md.MimeType, SHA256: md.SHA256,
				Caption: md.Caption, Filename: md.Filename, Voice: md.Voice, Animated: md.Animated}
			msg.Text = md.Caption
		}
	case "location":
		if l := m.Location; l != nil {
			msg.Location = &webhooks.Location{Latitude: float64(l.Latitude), Longitude: float64(l.Longitude), Name: l.Name, Address: l.Address, URL: l.URL}
			msg.Text = firstNonEmpty(l.Name, l.Address)
		}
	case "contacts":
		msg.Contacts = compact(m.Contacts)
	case "interactive":
		if it := m.Interactive; it != nil {
			switch {
			case it.ButtonReply != nil:
				msg.Reply = &webhooks.Reply{Type: "button_reply", ID: it.ButtonReply.ID, Title: it.ButtonReply.Title}
			case it.ListReply != nil:
				msg.Reply = &webhooks.Reply{Type: "list_reply", ID: it.ListReply.ID, Title: it.ListReply.Title, Description: it.ListReply.Description}
			case it.NFMReply != nil:
				msg.Reply = &webhooks.Reply{Type: "nfm_reply", ID: it.NFMReply.Name, Title: it.NFMReply.Body, Payload: it.NFMReply.ResponseJSON}
			default:
				msg.Reply = &webhooks.Reply{Type: it.Type}
				keepRaw = true
			}
			msg.Text = msg.Reply.Title
		}
	case "button":
		if b := m.Button; b != nil {
			msg.Reply = &webhooks.Reply{Type: "quick_reply", Title: b.Text, Payload: b.Payload}
			msg.Text = b.Text
		}
	case "reaction":
		if r := m.Reaction; r != nil {
			msg.Reaction = &webhooks.Reaction{MessageID: r.MessageID, Emoji: r.Emoji}
			msg.Text = r.Emoji
		}
	case "order":
		if o := m.Order; o != nil {
			msg.Order = &webhooks.Order{CatalogID: o.CatalogID, Text: o.Text, Items: make([]webhooks.OrderItem, 0, len(o.ProductItems))}
			for _, it := range o.ProductItems {
				msg.Order.Items = append(msg.Order.Items, webhooks.OrderItem{ProductID: it.ProductRetailerID,
					Quantity: float64(it.Quantity), ItemPrice: float64(it.ItemPrice), Currency: it.Currency})
			}
			msg.Text = o.Text
		}
	case "system":
		if s := m.System; s != nil {
			msg.Text = s.Body
		}
	}
	if m.Context != nil {
		msg.ReplyTo = m.Context.ID
		msg.Forwarded = m.Context.Forwarded || m.Context.FrequentlyForwarded
		if p := m.Context.ReferredProduct; p != nil {
			msg.ReferredProduct = &webhooks.Product{CatalogID: p.CatalogID, ProductID: p.ProductRetailerID}
		}
	}
	if r := m.Referral; r != nil {
		msg.Referral = &webhooks.Referral{SourceURL: r.SourceURL, SourceID: r.SourceID, SourceType: r.SourceType, Headline: r.Headline,
			Body: r.Body, MediaType: r.MediaType, ImageURL: r.ImageURL, VideoURL: r.VideoURL, ThumbnailURL: r.ThumbnailURL, ClickID: r.CTWAClid}
		if r.Welcome != nil {
			msg.Referral.WelcomeMessage = r.Welcome.Text
		}
	}
	if msg.Kind == "" {
		msg.Kind = "unknown"
	}
	// Kinds without a normalized form keep Meta's JSON, so nothing a customer sent is dropped.
	switch msg.Kind {
	case "text", "image", "audio", "video", "document", "sticker", "location", "button", "reaction", "interactive":
		// A known kind without its object (Meta sends such a message with errors[]) or with a part
		// this parser does not read is shown raw as well.
		keepRaw = keepRaw || !hasBody(m)
	case "contacts", "order", "system", "unsupported", "request_welcome":
		keepRaw = true
	case "unknown":
		// Meta's name, in older versions, for what it now calls unsupported; a message without any
		// type is not understood
		keepRaw, msg.Unrecognized = true, m.Type != "unknown"
	default:
		keepRaw = true
		msg.Unrecognized = true
	}
	return msg, keepRaw
}

// hasBody reports whether a message of a normalized kind carries that kind's object.
func hasBody(m *message) bool {
	switch m.Type {
	case "text":
		return m.Text != nil
	case "location":
		return m.Location != nil
	case "interactive":
		return m.Interactive != nil
	case "button":
		return m.Button != nil
	case "reaction":
		return m.Reaction != nil
	}
	return mediaOf(m) != nil
}

func mediaOf(m *message) *media {
	switch m.Type {
	case "image":
		return m.Image
	case "audio":
		return m.Audio
	case "video":
		return m.Video
	case "document":
		return m.Document
	case "sticker":
		return m.Sticker
	}
	return nil
}

func providerErrors(in []apiError) []webhooks.ProviderError {
	if len(in) == 0 {
		return nil
	}
	out := make([]webhooks.ProviderError, len(in))
	for i, e := range in {
		out[i] = webhooks.ProviderError{Code: int(e.Code), Title: e.Title, Message: e.Message, Details: firstNonEmpty(e.ErrorData.Details, e.Details)}
	}
	return out
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil
	}
	return b.Bytes()
}
