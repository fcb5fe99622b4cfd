package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// Enqueuer admits a send at the end of its conversation's sequence and puts it on asynq
// (*ordered.Sequencer).
type Enqueuer interface {
	Enqueue(ctx context.Context, t ordered.Task) error
	// Admission and EnqueueAdmitted enqueue a send admitted by the script that records its message.
	Admission(queue, id string) ordered.Admission
	EnqueueAdmitted(ctx context.Context, t ordered.Task, head bool) error
}

// Accepted is the answer to a new conversation or a reply: the message is durably queued.
type Accepted struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	Status         string `json:"status"`
}

// NewConversation is the body of POST /v1/conversations.
type NewConversation struct {
	Channel       string          `json:"channel"`
	To            string          `json:"to"`
	PhoneNumberID string          `json:"phone_number_id"`
	Template      *TemplateParams `json:"template"`
}

// ReplyBody is the body of POST /v1/conversations/{id}/messages: text, or media as a follow-up.
type ReplyBody struct {
	Text  string `json:"text"`
	Media *Media `json:"media"`
	// Interactive is reply buttons or a list (WhatsApp).
	Interactive *whatsapp.Interactive `json:"interactive"`
}

// Service validates what agents send, records it through routing and hands it to its channel:
// WhatsApp through asynq, other channels through their ChannelSender.
type Service struct {
	router    *routing.Router
	topo      *topology.Topology
	catalogue *Catalogue
	enqueuer  Enqueuer
	taskOpts  TaskOptions
	numbers   map[string]string   // phone number id → queue
	order     []string            // phone number ids in configuration order
	agents    map[string][]string // agent → queues
	senders   map[string]ChannelSender
	uploader  Uploader
	tokens    map[string]string // phone number id → access token, for uploads
	logger    *slog.Logger
}

// ServiceOptions are what the service needs besides the topology.
type ServiceOptions struct {
	// Templates are the approved WhatsApp templates agents start conversations with.
	Templates []configs.Template
	// Tasks bound each send's retries and attempt time.
	Tasks TaskOptions
	// Uploader puts agents' files on the provider (*whatsapp.Client); Tokens are the numbers'
	// access tokens it uses. Without them, files cannot be sent from the agent's computer.
	Uploader Uploader
	Tokens   map[string]string
}

// NewService builds the service on the topology's agents and WhatsApp numbers.
func NewService(router *routing.Router, enqueuer Enqueuer, topo *topology.Topology, opts ServiceOptions, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Service{router: router, topo: topo, catalogue: NewCatalogue(opts.Templates), enqueuer: enqueuer,
		taskOpts: opts.Tasks, uploader: opts.Uploader, tokens: opts.Tokens,
		numbers: map[string]string{}, agents: map[string][]string{}, senders: map[string]ChannelSender{},
		logger: logger.With("component", "outbound")}
	for _, e := range topo.EntryPoints {
		if e.Channel == topology.WhatsApp {
			s.numbers[e.ID] = e.Queue
			s.order = append(s.order, e.ID)
		}
	}
	for _, a := range topo.Agents {
		s.agents[a.ID] = a.Queues
	}
	s.senders[topology.WhatsApp] = whatsappSender{s}
	return s
}

// SetSender routes replies of a channel through sender (WebChat plugs in here).
func (s *Service) SetSender(channel string, sender ChannelSender) { s.senders[channel] = sender }

// Catalogue is the template catalogue.
func (s *Service) Catalogue() *Catalogue { return s.catalogue }

// isE164: a plus, a non-zero country digit and up to 14 more digits (at least 8 in all), that is
// ^\+[1-9][0-9]{7,14}$ written out (a request's check, cheaper than the regexp).
func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxText is WhatsApp's limit for a text body; WebChat uses the same.
const maxText = 4096

// Start validates a new conversation (an *InvalidRequestError names the fields at fault; routing's
// ErrNotLoggedIn, ErrAtCapacity and ErrConversationTaken say why it cannot start), records it
// assigned to the agent and enqueues its template.
func (s *Service) Start(ctx context.Context, agent string, req NewConversation) (Accepted, error) {
	var bad []FieldError
	// Conversations start from WhatsApp templates, on a channel that lets agents start them.
	if req.Channel != topology.WhatsApp || !s.topo.Channel(req.Channel).AgentStarts {
		bad = append(bad, FieldError{Field: "channel", Message: "must be whatsapp: only WhatsApp conversations can be started by an agent"})
	}
	if !isE164(req.To) {
		bad = append(bad, FieldError{Field: "to", Message: "must be a phone number in E.164 form, like +5511999990001"})
	}
	number := req.PhoneNumberID
	if number == "" {
		number = s.defaultNumber(agent)
		if number == "" {
			bad = append(bad, FieldError{Field: "phone_number_id", Message: "is required: none of your queues has a WhatsApp number"})
		}
	} else if queue, ok := s.numbers[number]; !ok {
		bad = append(bad, FieldError{Field: "phone_number_id", Message: "is not a configured WhatsApp number"})
	} else if !s.memberOf(agent, queue) {
		bad = append(bad, FieldError{Field: "phone_number_id", Message: "belongs to a queue you are not in"})
	}
	var tpl Template
	if req.Template == nil {
		bad = append(bad, FieldError{Field: "template", Message: "is required"})
	} else {
		var tbad []FieldError
		tpl, tbad = s.catalogue.Check(*req.Template)
		bad = append(bad, tbad...)
	}
	if len(bad) > 0 {
		return Accepted{}, invalid(bad...)
	}
	t := req.Template
	send := &TemplateSend{Name: t.Name, Language: t.Language, HeaderParams: t.HeaderParams, BodyParams: t.BodyParams,
		ButtonParams: t.ButtonParams, ButtonKind: tpl.ButtonKind}
	payload, err := json.Marshal(send)
	if err != nil {
		return Accepted{}, err
	}
	digits := strings.TrimPrefix(req.To, "+")
	// The start script admits the send to the conversation's sequence (one round trip fewer).
	conv, msg, head, err := s.router.StartAdmitted(ctx, routing.StartRequest{Agent: agent, Channel: topology.WhatsApp,
		EntryPoint: number, ContactPhone: digits,
		Message: routing.Outbound{Kind: "template", Text: tpl.Render(t.BodyParams), Payload: payload}},
		func(messageID string) ordered.Admission {
			return s.enqueuer.Admission(tasks.QueueTemplates, TaskID(messageID))
		})
	if err != nil {
		return Accepted{}, err
	}
	task, err := NewTemplateTask(Send{MessageID: msg.ID, ConversationID: conv.ID, PhoneNumberID: number, To: digits, Template: send}, s.taskOpts)
	if err == nil {
		err = s.enqueuer.EnqueueAdmitted(ctx, task, head)
		if err != nil {
			s.logger.Error("could not enqueue a send", "type", task.Type, "err", err)
		}
	}
	if err != nil {
		s.router.FailMessage(context.WithoutCancel(ctx), msg.ID, 0, "could not be queued")
		return Accepted{}, err
	}
	return Accepted{ConversationID: conv.ID, MessageID: msg.ID, Status: msg.Status}, nil
}

// Reply validates and records an agent's reply and hands it to the conversation's channel. Its errors
// are an *InvalidRequestError, routing's errors about the conversation, or ErrNoSender.
func (s *Service) Reply(ctx context.Context, agent, conversationID string, body ReplyBody) (Accepted, error) {
	out, err := checkReply(body)
	if err != nil {
		return Accepted{}, err
	}
	if out.Kind == "interactive" || out.Kind == "sticker" {
		// WhatsApp's own kinds: refused up front on other channels, before anything is recorded.
		if _, err := s.whatsappConversation(ctx, agent, conversationID); err != nil {
			return Accepted{}, err
		}
	}
	conv, msg, err := s.router.Reply(ctx, conversationID, agent, out)
	if err != nil {
		return Accepted{}, err
	}
	sender, ok := s.senders[conv.Channel]
	if !ok {
		s.router.FailMessage(context.WithoutCancel(ctx), msg.ID, 0, "no sender for channel "+conv.Channel)
		return Accepted{}, ErrNoSender
	}
	if err := sender.SendReply(ctx, conv, msg); err != nil {
		s.router.FailMessage(context.WithoutCancel(ctx), msg.ID, 0, "could not be queued")
		return Accepted{}, err
	}
	return Accepted{ConversationID: conv.ID, MessageID: msg.ID, Status: msg.Status}, nil
}

// AutoReply sends the gateway's own text to a conversation's customer (routing's no-agents and
// max-wait messages), recorded in the conversation without an agent.
func (s *Service) AutoReply(ctx context.Context, conv routing.Conversation, text string) error {
	sender, ok := s.senders[conv.Channel]
	if !ok {
		return fmt.Errorf("outbound: no sender for channel %s", conv.Channel)
	}
	msg, err := s.router.RecordOutbound(ctx, conv.ID, "", "text", text, nil)
	if err != nil {
		return err
	}
	if err := sender.SendReply(ctx, conv, msg); err != nil {
		s.router.FailMessage(context.WithoutCancel(ctx), msg.ID, 0, "could not be queued")
		return err
	}
	return nil
}

func checkReply(body ReplyBody) (routing.Outbound, error) {
	if body.Interactive != nil {
		if body.Text != "" || body.Media != nil {
			return routing.Outbound{}, invalid(FieldError{Field: "interactive", Message: "send text, media or interactive, one of them"})
		}
		var bad []FieldError
		for _, p := range body.Interactive.Check() {
			bad = append(bad, FieldError{Field: "interactive." + p.Field, Message: p.Message})
		}
		if len(bad) > 0 {
			return routing.Outbound{}, invalid(bad...)
		}
		payload, err := json.Marshal(body.Interactive)
		if err != nil {
			return routing.Outbound{}, err
		}
		return routing.Outbound{Kind: "interactive", Text: body.Interactive.Body, Payload: payload}, nil
	}
	switch {
	case body.Media == nil && strings.TrimSpace(body.Text) == "":
		return routing.Outbound{}, invalid(FieldError{Field: "text", Message: "is required (or media)"})
	case body.Media != nil && body.Text != "":
		return routing.Outbound{}, invalid(FieldError{Field: "text", Message: "send text or media, not both (media takes a caption)"})
	case body.Media == nil:
		if n := len([]rune(body.Text)); n > maxText {
			return routing.Outbound{}, invalid(FieldError{Field: "text",
				Message: fmt.Sprintf("is %d characters; the limit is %d", n, maxText)})
		}
		return routing.Outbound{Kind: "text", Text: body.Text}, nil
	}
	m := body.Media
	var bad []FieldError
	switch m.Kind {
	case "image", "document", "audio", "video", "sticker":
	default:
		bad = append(bad, FieldError{Field: "media.kind", Message: "must be image, document, audio, video or sticker"})
	}
	if (m.URL == "") == (m.ID == "") {
		bad = append(bad, FieldError{Field: "media.url", Message: "give exactly one of url and id"})
	} else if m.URL != "" && !(strings.HasPrefix(m.URL, "https://") || strings.HasPrefix(m.URL, "http://")) || len(m.URL) > 2048 {
		bad = append(bad, FieldError{Field: "media.url", Message: "must be an http(s) URL of at most 2048 characters"})
	}
	if len(m.ID) > 128 || strings.ContainsAny(m.ID, " /\\\n") {
		bad = append(bad, FieldError{Field: "media.id", Message: "is not a media id"})
	}
	if len([]rune(m.Caption)) > 1024 {
		bad = append(bad, FieldError{Field: "media.caption", Message: "is longer than 1024 characters"})
	}
	if (m.Kind == "audio" || m.Kind == "sticker") && m.Caption != "" {
		bad = append(bad, FieldError{Field: "media.caption", Message: m.Kind + " takes no caption"})
	}
	if m.Filename != "" && (m.Kind != "document" || len(m.Filename) > 240) {
		bad = append(bad, FieldError{Field: "media.filename", Message: "only documents take a filename (at most 240 characters)"})
	}
	if len(bad) > 0 {
		return routing.Outbound{}, invalid(bad...)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return routing.Outbound{}, err
	}
	return routing.Outbound{Kind: m.Kind, Text: m.Caption, Payload: payload}, nil
}

// whatsappSender enqueues a WhatsApp reply as an asynq task.
type whatsappSender struct{ s *Service }

func (w whatsappSender) SendReply(ctx context.Context, conv routing.Conversation, msg routing.Message) error {
	// The phone when the contact has one, else its business-scoped user id (sent as Meta's "recipient").
	to := conv.Contact.Phone
	if to == "" {
		to = conv.Contact.UserID
	}
	if to == "" {
		to = conv.Contact.ID // a conversation opened before contacts: its contact id was the user id
	}
	send := Send{MessageID: msg.ID, ConversationID: conv.ID, PhoneNumberID: conv.EntryPoint, To: to}
	var task ordered.Task
	var err error
	switch msg.Kind {
	case "text":
		send.Text = msg.Text
		task, err = NewTextTask(send, w.s.taskOpts)
	case "interactive":
		var it whatsapp.Interactive
		if err := json.Unmarshal(msg.Payload, &it); err != nil {
			return err
		}
		send.Interactive = &it
		task, err = NewInteractiveTask(send, w.s.taskOpts)
	default:
		var m Media
		if err := json.Unmarshal(msg.Payload, &m); err != nil {
			return err
		}
		send.Media = &m
		task, err = NewMediaTask(send, w.s.taskOpts)
	}
	if err != nil {
		return err
	}
	return w.s.enqueue(ctx, task)
}

// enqueue puts a send on asynq behind the conversation's earlier sends. An id conflict means the
// task already exists: the send is queued.
func (s *Service) enqueue(ctx context.Context, task ordered.Task) error {
	err := s.enqueuer.Enqueue(ctx, task)
	if err == nil {
		return nil
	}
	s.logger.Error("could not enqueue a send", "type", task.Type, "err", err)
	return err
}

func (s *Service) defaultNumber(agent string) string {
	for _, q := range s.agents[agent] {
		for _, id := range s.order {
			if s.numbers[id] == q {
				return id
			}
		}
	}
	return ""
}

func (s *Service) memberOf(agent, queue string) bool {
	for _, q := range s.agents[agent] {
		if q == queue {
			return true
		}
	}
	return false
}
