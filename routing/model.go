package routing

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Card states.
const (
	CardWaiting  = "waiting"
	CardOffered  = "offered"
	CardAccepted = "accepted"
	CardClosed   = "closed"
)

// Statuses of a message the agent sends, in the order they move: queued (recorded, not handed to
// the provider yet), sent, delivered, read, played (a voice message heard); failed is final.
// Deleted (the customer deleted it from the chat) and warning (the provider's remark about it) are
// marks beside the status. Customers' messages have none. These names are the API's and the
// status scripts'.
const (
	MessageQueued    = "queued"
	MessageSent      = "sent"
	MessageDelivered = "delivered"
	MessageRead      = "read"
	MessagePlayed    = "played"
	MessageFailed    = "failed"
	MessageDeleted   = "deleted"
	MessageWarning   = "warning"
)

// Contact is the customer of a conversation: one per customer and channel, found by any identifier
// the provider has shown for it. Phone and UserID (WhatsApp's business-scoped user id) are the
// current ones; a reply goes to the phone when there is one, else to the user id.
type Contact struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Phone    string `json:"phone,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Username string `json:"username,omitempty"`
}

// Identifier kinds of a contact.
const (
	IdentPhone       = "phone"    // WhatsApp wa_id: the phone number's digits
	IdentUserID      = "bsuid"    // WhatsApp business-scoped user id (user_id, from_user_id)
	IdentParentID    = "pbsuid"   // WhatsApp parent business-scoped user id (linked portfolios)
	IdentUsername    = "username" // WhatsApp username: shown, moved, never merges two contacts
	maxIdentifierLen = 256
)

// Identifier is one way a provider names a customer.
type Identifier struct {
	Kind  string
	Value string
}

// Conversation is (channel, entry point, contact) while open; every message of it goes to its agent.
type Conversation struct {
	ID         string     `json:"id"`
	Channel    string     `json:"channel"`
	EntryPoint string     `json:"entry_point"`
	Queue      string     `json:"queue"`
	Contact    Contact    `json:"contact"`
	State      string     `json:"state"`
	Agent      string     `json:"agent,omitempty"`
	CardID     string     `json:"card_id,omitempty"`
	OpenedAt   time.Time  `json:"opened_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
	// ClosedBy is who closed it: its agent, a supervisor's id, or max_wait (closed by its queue's limit).
	ClosedBy              string     `json:"closed_by,omitempty"`
	LastCustomerMessageAt *time.Time `json:"last_customer_message_at,omitempty"`
	WindowExpiresAt       *time.Time `json:"window_expires_at,omitempty"`
	// Running the floor: transfers so far and the last one, the disposition recorded at close, the
	// first agent message, and when the first-response timer found it unanswered.
	Transfers       int        `json:"transfers,omitempty"`
	LastTransfer    *Transfer  `json:"last_transfer,omitempty"`
	Disposition     string     `json:"disposition,omitempty"`
	DispositionNote string     `json:"disposition_note,omitempty"`
	FirstResponseAt *time.Time `json:"first_response_at,omitempty"`
	UnansweredAt    *time.Time `json:"unanswered_at,omitempty"`
}

// Transfer is a conversation moved by its holder or a supervisor: by whom, from which holder ("" when
// nobody held it), to an agent or a queue, with the note for the next holder.
type Transfer struct {
	By      string    `json:"by"`
	ByName  string    `json:"by_name,omitempty"` // By's configured name, for people (absent for a supervisor)
	From    string    `json:"from,omitempty"`
	ToAgent string    `json:"to_agent,omitempty"`
	ToQueue string    `json:"to_queue,omitempty"`
	Note    string    `json:"note,omitempty"`
	At      time.Time `json:"at"`
}

// Card is a conversation offered to agents: waiting → offered → accepted → closed.
type Card struct {
	ID             string     `json:"id"`
	ConversationID string     `json:"conversation_id"`
	Queue          string     `json:"queue"`
	Channel        string     `json:"channel"`
	State          string     `json:"state"`
	Agent          string     `json:"agent,omitempty"`
	Preview        string     `json:"preview,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	OfferedAt      *time.Time `json:"offered_at,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	AcceptedAt     *time.Time `json:"accepted_at,omitempty"`
	ClosedAt       *time.Time `json:"closed_at,omitempty"`
	// ClosedBy is who closed it: its agent, a supervisor's id, or max_wait.
	ClosedBy string `json:"closed_by,omitempty"`
	// LastOutcome is how the card's last offer ended when it did not end accepted: declined,
	// timed_out, or requeued (its agent logged out); empty until then.
	LastOutcome     string     `json:"last_outcome,omitempty"`
	Contact         *Contact   `json:"contact,omitempty"`
	WindowExpiresAt *time.Time `json:"window_expires_at,omitempty"`
	// Transfer is the last transfer of the card's conversation (who, from whom, the note), shown to
	// the agent it is offered to next.
	Transfer *Transfer `json:"transfer,omitempty"`
}

// Message is one message of a conversation, from the customer (in) or from the agent (out).
type Message struct {
	ID                string          `json:"id"`
	ConversationID    string          `json:"conversation_id"`
	Direction         string          `json:"direction"`
	Channel           string          `json:"channel"`
	ProviderMessageID string          `json:"provider_message_id,omitempty"`
	Kind              string          `json:"kind"`
	Text              string          `json:"text,omitempty"`
	Payload           json.RawMessage `json:"payload,omitempty"`
	At                time.Time       `json:"at"`
	Agent             string          `json:"agent,omitempty"`
	Status            string          `json:"status,omitempty"`
	StatusAt          *time.Time      `json:"status_at,omitempty"`
	Error             *MessageError   `json:"error,omitempty"`
	// Warning is the provider's warning about a sent message (e.g. a catalog item it could not show).
	Warning *MessageError `json:"warning,omitempty"`
	// DeletedAt: when the message was deleted from the chat (Meta's deleted status).
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// MessageError is why a message failed, in the provider's words: its code, title, message and
// details (Meta's error_data.details), and Summary, one sentence for the agent. Internal details
// (HTTP statuses, trace ids, attempts' errors) stay in the logs.
type MessageError struct {
	Code    int    `json:"code"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Details string `json:"details,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// summarize fills Summary, when empty, with Describe.
func (e *MessageError) summarize() {
	if e.Summary == "" {
		e.Summary = e.Describe()
	}
}

// Describe says the provider's words in one line: "131047 Re-engagement message: more than 24
// hours have passed…" (code, title, then the details or else the message).
func (e MessageError) Describe() string {
	var b strings.Builder
	if e.Code != 0 {
		b.WriteString(strconv.Itoa(e.Code))
	}
	if e.Title != "" {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Title)
	}
	// The details, else the message; neither when it only repeats the title (Meta's messages
	// read "(#131047) Re-engagement message").
	explain := ""
	for _, s := range []string{e.Details, e.Message} {
		if s != "" && !strings.EqualFold(strings.TrimPrefix(s, "(#"+strconv.Itoa(e.Code)+") "), e.Title) {
			explain = s
			break
		}
	}
	if explain != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(explain)
	}
	return b.String()
}

func msTime(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func msTimePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := msTime(s)
	if t.IsZero() {
		return nil
	}
	return &t
}

// joinPieces puts back a value the intake script cut in pieces (name, name~1, name~2…; compact.go).
func joinPieces(h map[string]string, name string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	var b strings.Builder
	b.WriteString(h[name])
	for i := 1; ; i++ {
		k := name + "~" + strconv.Itoa(i)
		v, ok := h[k]
		if !ok {
			break
		}
		b.WriteString(v)
		delete(out, k)
	}
	out[name] = b.String()
	return out
}

func cardFrom(h map[string]string) Card {
	return Card{ID: h["id"], ConversationID: h["conversation_id"], Queue: h["queue"], Channel: h["channel"], State: h["state"],
		Agent: h["agent"], Preview: h["preview"], CreatedAt: msTime(h["created_at"]), OfferedAt: msTimePtr(h["offered_at"]),
		ExpiresAt: msTimePtr(h["expires_at"]), AcceptedAt: msTimePtr(h["accepted_at"]), LastOutcome: h["last_outcome"],
		ClosedAt: msTimePtr(h["closed_at"]), ClosedBy: h["closed_by"], Transfer: cardTransfer(h)}
}

// cardTransfer is the card's last transfer, nil when it was never transferred.
func cardTransfer(h map[string]string) *Transfer {
	if h["transferred_by"] == "" {
		return nil
	}
	t := &Transfer{By: h["transferred_by"], From: h["transferred_from"], Note: h["transfer_note"], At: msTime(h["transferred_at"])}
	return t
}

func conversationFrom(h map[string]string) Conversation {
	c := Conversation{ID: h["id"], Channel: h["channel"], EntryPoint: h["entry_point"], Queue: h["queue"],
		Contact: Contact{ID: h["contact_id"], Name: h["contact_name"], Phone: h["contact_phone"],
			UserID: h["contact_bsuid"], Username: h["contact_username"]}, State: h["state"],
		Agent: h["agent"], CardID: h["card"], OpenedAt: msTime(h["opened_at"]), ClosedAt: msTimePtr(h["closed_at"]), ClosedBy: h["closed_by"],
		LastCustomerMessageAt: msTimePtr(h["last_customer_message_at"]), WindowExpiresAt: msTimePtr(h["window_expires_at"]),
		Disposition: h["disposition"], DispositionNote: h["disposition_note"], FirstResponseAt: msTimePtr(h["first_response_at"]),
		UnansweredAt: msTimePtr(h["unanswered_at"])}
	c.Transfers, _ = strconv.Atoi(h["transfers"])
	if h["last_transfer_by"] != "" {
		c.LastTransfer = &Transfer{By: h["last_transfer_by"], From: h["last_transfer_from"], ToAgent: h["last_transfer_to_agent"],
			ToQueue: h["last_transfer_to_queue"], Note: h["last_transfer_note"], At: msTime(h["last_transfer_at"])}
	}
	return c
}

// messageFrom reads a message's HASH; id is its key's (inbound messages have no id field) and conv,
// when given, its conversation's fields, from which an inbound message's payload is completed.
func messageFrom(id string, h, conv map[string]string) Message {
	if id == "" {
		id = h["id"]
	}
	if _, ok := h["text~1"]; ok {
		h = joinPieces(h, "text")
	}
	if _, ok := h["x~1"]; ok {
		h = joinPieces(h, "x")
	}
	m := Message{ID: id, ConversationID: h["conversation_id"], Direction: h["direction"], Channel: h["channel"],
		ProviderMessageID: h["provider_message_id"], Kind: h["kind"], Text: h["text"], At: msTime(h["at"]), Agent: h["agent"],
		Status: h["status"], StatusAt: msTimePtr(h["status_at"])}
	if p := h["payload"]; p != "" && json.Valid([]byte(p)) {
		m.Payload = json.RawMessage(p)
	} else if x, ok := h["x"]; ok {
		expandPayload(&m, x, conv)
	}
	if c, err := strconv.Atoi(h["error_code"]); err == nil {
		m.Error = &MessageError{Code: c, Title: h["error_title"], Message: h["error_message"], Details: h["error_details"],
			Summary: h["error_summary"]}
	}
	if c, err := strconv.Atoi(h["warning_code"]); err == nil {
		m.Warning = &MessageError{Code: c, Title: h["warning_title"], Message: h["warning_message"], Details: h["warning_details"]}
	}
	m.DeletedAt = msTimePtr(h["deleted_at"])
	return m
}
