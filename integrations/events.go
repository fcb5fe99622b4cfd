package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/routing"
)

// Source reads what events describe (routing.Router).
type Source interface {
	ReadSnapshot(ctx context.Context, convs, msgs, cards []string) (routing.Snapshot, error)
	Conversation(ctx context.Context, id string) (routing.Conversation, error)
	Card(ctx context.Context, id string) (routing.Card, error)
	Message(ctx context.Context, id string) (routing.Message, error)
	Messages(ctx context.Context, conversationID string, limit int64) ([]routing.Message, error)
	ContactIdentifiers(ctx context.Context, contactID string) ([]routing.Identifier, error)
}

// Event is the body POSTed to a subscription (Standard Webhooks' recommended shape, with the id).
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// ContactData is a customer with every identifier known for it.
type ContactData struct {
	routing.Contact
	Identifiers []IdentifierData `json:"identifiers"`
}

// IdentifierData is one way a provider names the customer (kind phone, bsuid, pbsuid, username).
type IdentifierData struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// MessageData is a message with, for media, a time-limited link to it on the gateway.
type MessageData struct {
	routing.Message
	MediaURL string `json:"media_url,omitempty"`
}

// mediaKinds are the message kinds whose content is a file.
var mediaKinds = map[string]bool{"image": true, "audio": true, "video": true, "document": true, "sticker": true, "voice": true}

// cardStateAfter is the card's state right after each card event.
var cardStateAfter = map[string]string{outbox.CardOffered: routing.CardOffered, outbox.CardAccepted: routing.CardAccepted,
	outbox.CardDeclined: routing.CardWaiting, outbox.CardTimedOut: routing.CardWaiting, outbox.CardRequeued: routing.CardWaiting}

// built is an outbox entry made an event: its type, order key, queue (for filters) and body.
type built struct {
	typ, key, queue string
	at              time.Time
	body            []byte
	drop            bool // nothing to deliver (the entry names nothing that exists any more)
}

// errGone: what the entry names no longer exists.
var errGone = errors.New("gone")

// snapshotSource answers from a batch's snapshot (read ahead, pipelined); transcripts from the store.
type snapshotSource struct {
	Source
	snap routing.Snapshot
}

func (v snapshotSource) Conversation(_ context.Context, id string) (routing.Conversation, error) {
	if c, ok := v.snap.Conversations[id]; ok {
		return c, nil
	}
	return routing.Conversation{}, routing.ErrNotFound
}

func (v snapshotSource) Card(_ context.Context, id string) (routing.Card, error) {
	if c, ok := v.snap.Cards[id]; ok {
		return c, nil
	}
	return routing.Card{}, routing.ErrNotFound
}

func (v snapshotSource) Message(_ context.Context, id string) (routing.Message, error) {
	if m, ok := v.snap.Messages[id]; ok {
		return m, nil
	}
	return routing.Message{}, routing.ErrNotFound
}

func (v snapshotSource) ContactIdentifiers(_ context.Context, contactID string) ([]routing.Identifier, error) {
	return v.snap.Identifiers[contactID], nil
}

// build reads what an outbox entry refers to (from src) and writes the event's body.
func (s *Service) build(ctx context.Context, src Source, id string, f map[string]any) (built, error) {
	str := func(k string) string { v, _ := f[k].(string); return v }
	typ, conv := str(outbox.FieldType), str(outbox.FieldConversation)
	at := time.Now().UTC()
	if ms, err := parseInt(str(outbox.FieldAt)); err == nil && ms > 0 {
		at = time.UnixMilli(ms).UTC()
	}
	b := built{typ: typ, key: conv, at: at}
	data := map[string]any{}
	if d := str(outbox.FieldData); d != "" {
		_ = json.Unmarshal([]byte(d), &data)
	}
	var err error
	var c routing.Conversation
	if conv != "" {
		c, err = src.Conversation(ctx, conv)
		if errors.Is(err, routing.ErrNotFound) {
			err = errGone
		}
		if err != nil {
			return b.dropIf(err)
		}
		b.queue = c.Queue
		data["conversation_id"] = conv
	}
	switch {
	case typ == outbox.ConversationOpened:
		data["conversation"] = c
	case typ == outbox.MessageReceived || typ == outbox.MessageSent:
		m, err := src.Message(ctx, str(outbox.FieldMessage))
		if err != nil {
			return b.dropIf(gone(err))
		}
		md := MessageData{Message: m}
		if mediaKinds[m.Kind] && s.opts.MediaLinks != nil {
			md.MediaURL = strings.TrimRight(s.opts.PublicURL, "/") + s.opts.MediaLinks.SignURL(m.ID, time.Now().Add(s.opts.MediaURLTTL))
		}
		data["message"] = md
		if typ == outbox.MessageReceived {
			ids, err := src.ContactIdentifiers(ctx, c.Contact.ID)
			if err != nil {
				return b, err
			}
			cd := ContactData{Contact: c.Contact, Identifiers: make([]IdentifierData, 0, len(ids))}
			for _, id := range ids {
				cd.Identifiers = append(cd.Identifiers, IdentifierData{Kind: id.Kind, Value: id.Value})
			}
			data["contact"] = cd
		}
	case typ == outbox.MessageStatus:
		m, err := src.Message(ctx, str(outbox.FieldMessage))
		if err != nil {
			return b.dropIf(gone(err))
		}
		st := map[string]any{"message_id": m.ID, "provider_message_id": m.ProviderMessageID, "status": str(outbox.FieldStatus)}
		if m.Error != nil && str(outbox.FieldStatus) == routing.MessageFailed {
			st["error"] = m.Error
		}
		if m.Warning != nil && str(outbox.FieldStatus) == routing.MessageWarning {
			st["warning"] = m.Warning
		}
		for k, v := range st {
			data[k] = v
		}
	case strings.HasPrefix(typ, "card."):
		card, err := src.Card(ctx, str(outbox.FieldCard))
		if err != nil {
			return b.dropIf(gone(err))
		}
		card.Contact = nil // the conversation's contact is in conversation.opened and message.received
		// The record is read at dispatch, a moment later: the card says the state this event made.
		card.State = cardStateAfter[typ]
		data["card"] = card
		data["agent"] = str(outbox.FieldAgent)
	case typ == outbox.ConversationClosed:
		data["conversation"] = c
		if k := str(outbox.FieldCard); k != "" {
			if card, err := src.Card(ctx, k); err == nil {
				card.Contact = nil
				data["card"] = card
			}
		}
		msgs, err := src.Messages(ctx, conv, int64(s.opts.TranscriptInline)+1)
		if err != nil {
			return b, err
		}
		link := strings.TrimRight(s.opts.PublicURL, "/") + "/v1/conversations/" + conv + "/transcript"
		if len(msgs) > s.opts.TranscriptInline {
			data["transcript_url"] = link
		} else {
			data["transcript"] = msgs
		}
	case typ == outbox.PresenceChanged:
		b.key = agentKeyPrefix + str(outbox.FieldAgent)
		data["agent"] = str(outbox.FieldAgent)
		if _, ok := data["at"]; !ok {
			data["at"] = at // written by presence's script: the change's time is the entry's
		}
	default:
		// conversation.transferred and other Go emitters: their data is the entry's d field
		if a := str(outbox.FieldAgent); a != "" {
			data["agent"] = a
		}
	}
	if b.key == "" {
		return b.dropIf(errGone)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return b, err
	}
	b.body, err = envelope(id, typ, at, raw)
	return b, err
}

// envelope writes json.Marshal(Event{…}) byte for byte without its second pass over data (which
// json.Marshal validates and compacts again, though it is its own compact output).
func envelope(id, typ string, at time.Time, data []byte) ([]byte, error) {
	jid, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	jtyp, err := json.Marshal(typ)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, len(data)+len(jid)+len(jtyp)+80)
	buf = append(append(buf, `{"id":`...), jid...)
	buf = append(append(buf, `,"type":`...), jtyp...)
	if buf, err = at.AppendText(append(buf, `,"timestamp":"`...)); err != nil {
		return nil, err
	}
	buf = append(append(buf, `","data":`...), data...)
	return append(buf, '}'), nil
}

func gone(err error) error {
	if errors.Is(err, routing.ErrNotFound) {
		return errGone
	}
	return err
}

func (b built) dropIf(err error) (built, error) {
	if errors.Is(err, errGone) {
		b.drop = true
		return b, nil
	}
	return b, err
}

// wants reports whether a subscription takes an event of type typ in queue.
func (w *subscription) wants(typ, queue string) bool {
	if len(w.events) > 0 {
		ok := false
		for _, e := range w.events {
			if e == "*" || e == typ || (strings.HasSuffix(e, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(e, "*"))) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(w.queues) > 0 && typ != outbox.PresenceChanged {
		for _, q := range w.queues {
			if q == queue {
				return true
			}
		}
		return false
	}
	return true
}
