// Package webchat sends agents' replies on WebChat: to the visitor's stream of the widget, and for a
// site with a callback URL as a signed POST through asynq (the site protocol of webhooks/webchat).
package webchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/routing"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
	"github.com/chatgate/chatgate/widget"
)

// TypeCallback is the asynq task that POSTs an agent's reply to a site's callback URL.
const TypeCallback = "webchat:callback"

// Enqueuer puts tasks on asynq (*asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// SenderOptions tune the sender and its callback worker.
type SenderOptions struct {
	Logger     *slog.Logger
	MaxRetry   int           // callback attempts after the first (asynq retries with backoff)
	Timeout    time.Duration // one callback POST
	HTTPClient *http.Client
	Clock      func() time.Time
}

// Sender delivers agents' replies on WebChat: at once to the visitor's stream (status sent; the
// widget's stream marks it delivered when it writes it), and for a site with a callback URL through
// a webchat:callback task whose 2xx marks it delivered and whose permanent 4xx marks it failed.
// It also tells the visitor when a conversation closes.
type Sender struct {
	events   *widget.EventLog
	statuses widget.StatusUpdater
	enqueuer Enqueuer
	sites    map[string]configs.Site
	opts     SenderOptions
}

// NewSender builds the WebChat channel sender. enqueuer may be nil in a process that only works tasks.
func NewSender(events *widget.EventLog, statuses widget.StatusUpdater, enqueuer Enqueuer, cfg *configs.Config, o SenderOptions) *Sender {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "webchat")
	if o.MaxRetry <= 0 {
		o.MaxRetry = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	s := &Sender{events: events, statuses: statuses, enqueuer: enqueuer, sites: map[string]configs.Site{}, opts: o}
	for _, site := range cfg.WebChat.Sites {
		s.sites[site.ID] = site
	}
	return s
}

// Callback types: an agent's reply, or the end of the conversation.
const (
	CallbackMessageType = "message"
	CallbackClosedType  = "conversation.closed"
)

// callbackTask is the payload of a webchat:callback task.
type callbackTask struct {
	Type           string          `json:"type,omitempty"` // empty: a message (tasks enqueued before closes were told)
	Site           string          `json:"site"`
	Visitor        string          `json:"visitor"`
	ConversationID string          `json:"conversation_id"`
	MessageID      string          `json:"message_id"`
	Kind           string          `json:"kind"`
	Text           string          `json:"text,omitempty"`
	Media          json.RawMessage `json:"media,omitempty"`
	At             time.Time       `json:"at"`
}

// CallbackBody is what a site's callback URL receives, signed like the webhook (X-Chatgate-Timestamp,
// X-Chatgate-Signature over "<timestamp>.<raw body>" with the site's secret).
type CallbackBody struct {
	Type           string              `json:"type"` // message or conversation.closed
	Site           string              `json:"site"`
	Visitor        webchathook.Visitor `json:"visitor"`
	ConversationID string              `json:"conversation_id"`
	Message        *CallbackMessage    `json:"message,omitempty"`
	ClosedAt       *time.Time          `json:"closed_at,omitempty"`
}

// CallbackMessage is the agent's reply as the site receives it.
type CallbackMessage struct {
	ID    string          `json:"id"`
	Kind  string          `json:"kind"`
	Text  string          `json:"text,omitempty"`
	Media json.RawMessage `json:"media,omitempty"`
	At    time.Time       `json:"at"`
}

var errNotWebChat = errors.New("webchat: not a WebChat conversation of a configured site")

// SendReply writes the reply to the visitor's stream and, when the site has a callback URL, enqueues
// its callback. It returns once both are durable.
func (s *Sender) SendReply(ctx context.Context, conv routing.Conversation, msg routing.Message) error {
	site, ok := s.sites[conv.EntryPoint]
	if conv.Channel != webchathook.Channel || !ok {
		return errNotWebChat
	}
	var media json.RawMessage
	if msg.Kind != "text" && len(msg.Payload) > 0 {
		media = msg.Payload
	}
	if site.CallbackURL != "" {
		if s.enqueuer == nil {
			return errors.New("webchat: no task client to enqueue the callback")
		}
		payload, err := json.Marshal(callbackTask{Site: site.ID, Visitor: conv.Contact.ID, ConversationID: conv.ID,
			MessageID: msg.ID, Kind: msg.Kind, Text: msg.Text, Media: media, At: msg.At})
		if err != nil {
			return err
		}
		// The message id is the task id: a repeated hand-over enqueues nothing new.
		_, err = s.enqueuer.EnqueueContext(ctx, asynq.NewTask(TypeCallback, payload), asynq.Queue(tasks.QueueReplies),
			asynq.MaxRetry(s.opts.MaxRetry), asynq.Timeout(s.opts.Timeout+5*time.Second), asynq.TaskID("webchat-callback:"+msg.ID))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("webchat: enqueue callback: %w", err)
		}
	}
	ev := widget.Event{Type: widget.EventMessage, At: msg.At, Message: &widget.VisitorMessage{ID: msg.ID, ConversationID: conv.ID, From: "agent",
		Kind: msg.Kind, Text: msg.Text, Media: media, At: msg.At}}
	if _, err := s.events.Publish(ctx, site.ID, conv.Contact.ID, ev); err != nil {
		return fmt.Errorf("webchat: write to the visitor's stream: %w", err)
	}
	if _, _, err := s.statuses.UpdateStatus(ctx, msg.ID, routing.StatusUpdate{State: routing.MessageSent}); err != nil {
		s.opts.Logger.Warn("reply written but its status not updated", "message_id", msg.ID, "err", err)
	}
	return nil
}

// ConversationClosed tells the visitor of a WebChat conversation that it ended: on the widget's
// stream, and for a site with a callback URL by a conversation.closed callback.
func (s *Sender) ConversationClosed(ctx context.Context, conv routing.Conversation) {
	if conv.Channel != webchathook.Channel {
		return
	}
	site, ok := s.sites[conv.EntryPoint]
	if !ok {
		return
	}
	at := s.opts.Clock().UTC()
	if site.CallbackURL != "" && s.enqueuer != nil {
		payload, err := json.Marshal(callbackTask{Type: CallbackClosedType, Site: site.ID, Visitor: conv.Contact.ID,
			ConversationID: conv.ID, At: at})
		if err == nil {
			// One close per conversation: a repeated close enqueues nothing new.
			_, err = s.enqueuer.EnqueueContext(ctx, asynq.NewTask(TypeCallback, payload), asynq.Queue(tasks.QueueReplies),
				asynq.MaxRetry(s.opts.MaxRetry), asynq.Timeout(s.opts.Timeout+5*time.Second), asynq.TaskID("webchat-close:"+conv.ID))
		}
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			s.opts.Logger.Warn("could not enqueue the close callback", "conversation_id", conv.ID, "err", err)
		}
	}
	_, err := s.events.Publish(ctx, conv.EntryPoint, conv.Contact.ID, widget.Event{Type: widget.EventConversationClosed, At: at,
		Conversation: &widget.EventConv{ID: conv.ID}})
	if err != nil {
		s.opts.Logger.Warn("could not tell the visitor the conversation closed", "conversation_id", conv.ID, "err", err)
	}
}

// Register mounts the callback worker on the process's task server.
func (s *Sender) Register(srv interface {
	Handle(taskType string, h asynq.Handler)
}) {
	srv.Handle(TypeCallback, asynq.HandlerFunc(s.processCallback))
}

// permanentStatus: the site refused the callback for good (retrying the same body cannot help).
func permanentStatus(code int) bool {
	return code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

func (s *Sender) processCallback(ctx context.Context, t *asynq.Task) error {
	var p callbackTask
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("webchat callback payload: %v: %w", err, asynq.SkipRetry)
	}
	site, ok := s.sites[p.Site]
	if !ok || site.CallbackURL == "" {
		s.fail(ctx, p.MessageID, 0, "the site has no callback URL any more")
		return fmt.Errorf("webchat callback: site %q has no callback URL: %w", p.Site, asynq.SkipRetry)
	}
	cb := CallbackBody{Type: CallbackMessageType, Site: p.Site, Visitor: webchathook.Visitor{ID: p.Visitor}, ConversationID: p.ConversationID}
	if p.Type == CallbackClosedType {
		cb.Type, cb.ClosedAt = CallbackClosedType, &p.At
	} else {
		cb.Message = &CallbackMessage{ID: p.MessageID, Kind: p.Kind, Text: p.Text, Media: p.Media, At: p.At}
	}
	body, err := json.Marshal(cb)
	if err != nil {
		return fmt.Errorf("webchat callback: %v: %w", err, asynq.SkipRetry)
	}
	ts := strconv.FormatInt(s.opts.Clock().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, site.CallbackURL, bytes.NewReader(body))
	if err != nil {
		s.fail(ctx, p.MessageID, 0, "the callback URL is not usable")
		return fmt.Errorf("webchat callback: %v: %w", err, asynq.SkipRetry)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chatgate-webchat-callback")
	req.Header.Set(webchathook.HeaderTimestamp, ts)
	req.Header.Set(webchathook.HeaderSignature, webchathook.Sign([]byte(site.Secret), ts, body))
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return s.retryOrFail(ctx, p.MessageID, 0, "the callback URL did not answer", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && p.MessageID == "":
		return nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if _, _, err := s.statuses.UpdateStatus(ctx, p.MessageID, routing.StatusUpdate{State: routing.MessageDelivered}); err != nil && !errors.Is(err, routing.ErrNotFound) {
			return err // the site has it; a retry posts it again, which the site dedups by message id
		}
		return nil
	case permanentStatus(resp.StatusCode):
		s.fail(ctx, p.MessageID, resp.StatusCode, "the site refused the callback: "+resp.Status)
		return fmt.Errorf("webchat callback refused with %s: %w", resp.Status, asynq.SkipRetry)
	default:
		return s.retryOrFail(ctx, p.MessageID, resp.StatusCode, "the site's callback failed: "+resp.Status, errors.New(resp.Status))
	}
}

// retryOrFail hands the task back for a retry, or marks the reply failed on the last attempt.
func (s *Sender) retryOrFail(ctx context.Context, messageID string, code int, title string, cause error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry {
		s.fail(ctx, messageID, code, title)
	}
	return fmt.Errorf("webchat callback: %w", cause)
}

func (s *Sender) fail(ctx context.Context, messageID string, code int, title string) {
	if messageID == "" { // a close callback: no message to mark
		s.opts.Logger.Warn("a close callback was given up", "code", code, "reason", title)
		return
	}
	if _, _, err := s.statuses.UpdateStatus(ctx, messageID, routing.StatusUpdate{State: routing.MessageFailed,
		Error: &routing.MessageError{Code: code, Title: title}}); err != nil && !errors.Is(err, routing.ErrNotFound) {
		s.opts.Logger.Warn("could not mark a reply failed", "message_id", messageID, "err", err)
	}
}
