package outbound

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// Task types. A template opens a conversation (queue "templates"); text and media answer inside an
// open one (queue "replies", which gets twice the templates' share of workers).
const (
	TypeTemplate = "outbound:template"
	TypeText     = "outbound:text"
	TypeMedia    = "outbound:media"
	// TypeInteractive sends reply buttons or a list.
	TypeInteractive = "outbound:interactive"
)

// Send is the payload of every outbound task: which stored message to send, from which number, to
// whom, and what.
type Send struct {
	MessageID      string                `json:"message_id"`
	ConversationID string                `json:"conversation_id"`
	PhoneNumberID  string                `json:"phone_number_id"`
	To             string                `json:"to"`
	Text           string                `json:"text,omitempty"`
	Template       *TemplateSend         `json:"template,omitempty"`
	Media          *Media                `json:"media,omitempty"`
	Interactive    *whatsapp.Interactive `json:"interactive,omitempty"`
}

// TemplateSend is a validated template with its parameters.
type TemplateSend struct {
	Name         string   `json:"name"`
	Language     string   `json:"language"`
	HeaderParams []string `json:"header_params,omitempty"`
	BodyParams   []string `json:"body_params,omitempty"`
	ButtonParams []string `json:"button_params,omitempty"`
	ButtonKind   string   `json:"button_kind,omitempty"`
}

// Media is an attachment sent by link or by an uploaded media id.
type Media struct {
	Kind     string `json:"kind"`
	URL      string `json:"url,omitempty"`
	ID       string `json:"id,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	// MimeType and Size describe a file uploaded from the agent's computer (shown in the console).
	MimeType string `json:"mime_type,omitempty"`
	Size     int64  `json:"size,omitempty"`
}

// TaskOptions are what every outbound task is enqueued with.
type TaskOptions struct {
	MaxRetry int
	Timeout  time.Duration
}

func newTask(typ, queue string, s Send, o TaskOptions) (ordered.Task, error) {
	if s.MessageID == "" || s.ConversationID == "" {
		return ordered.Task{}, fmt.Errorf("outbound: a task needs a message and a conversation id")
	}
	payload, err := json.Marshal(s)
	if err != nil {
		return ordered.Task{}, err
	}
	// No retention: asynq deletes a finished task instead of re-encoding and keeping it. Nothing
	// re-enqueues a message's send (ids are the server's, client retries replay their Idempotency-Key),
	// and a send enqueued again anyway finds its message no longer queued and sends nothing.
	opts := []asynq.Option{asynq.MaxRetry(o.MaxRetry)}
	if o.Timeout > 0 {
		opts = append(opts, asynq.Timeout(o.Timeout))
	}
	// The conversation is the sequence: its messages reach the provider in the order accepted.
	return ordered.Task{Key: s.ConversationID, Queue: queue, ID: TaskID(s.MessageID), Type: typ, Payload: payload, Opts: opts}, nil
}

// TaskID is the asynq task id of a message's send: one message, one task, whatever retries happen.
func TaskID(messageID string) string { return "msg:" + messageID }

// messageOfTask is the message id of a send's task id, or "".
func messageOfTask(taskID string) string {
	id, ok := strings.CutPrefix(taskID, "msg:")
	if !ok {
		return ""
	}
	return id
}

// SequenceName names the outbound sequences in Redis (one per conversation).
const SequenceName = "outbound"

// NewTemplateTask is the task that sends a template message.
func NewTemplateTask(s Send, o TaskOptions) (ordered.Task, error) {
	if s.Template == nil {
		return ordered.Task{}, fmt.Errorf("outbound: a template task needs a template")
	}
	return newTask(TypeTemplate, tasks.QueueTemplates, s, o)
}

// NewTextTask is the task that sends a free-text reply.
func NewTextTask(s Send, o TaskOptions) (ordered.Task, error) {
	if s.Text == "" {
		return ordered.Task{}, fmt.Errorf("outbound: a text task needs text")
	}
	return newTask(TypeText, tasks.QueueReplies, s, o)
}

// NewMediaTask is the task that sends an attachment.
func NewMediaTask(s Send, o TaskOptions) (ordered.Task, error) {
	if s.Media == nil {
		return ordered.Task{}, fmt.Errorf("outbound: a media task needs media")
	}
	return newTask(TypeMedia, tasks.QueueReplies, s, o)
}

// NewInteractiveTask is the task that sends reply buttons or a list.
func NewInteractiveTask(s Send, o TaskOptions) (ordered.Task, error) {
	if s.Interactive == nil {
		return ordered.Task{}, fmt.Errorf("outbound: an interactive task needs its message")
	}
	return newTask(TypeInteractive, tasks.QueueReplies, s, o)
}
