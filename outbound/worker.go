package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/internal/luascript"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// Statuses is what the worker needs of routing: the stored message and its status changes.
type Statuses interface {
	Message(ctx context.Context, id string) (routing.Message, error)
	MessageKey(id string) string
	MessageFrom(ctx context.Context, id string, fields map[string]string) (routing.Message, error)
	UpdateStatus(ctx context.Context, messageID string, u routing.StatusUpdate) (routing.Message, bool, error)
}

// Sender is the provider client (outbound/whatsapp.Client).
type Sender interface {
	Send(ctx context.Context, phoneNumberID, token string, msg whatsapp.Message) (whatsapp.SendResult, error)
}

// Worker handles the outbound tasks: it waits for the number's rate and the customer's pace, sends
// through the provider, and records what happened on the message, which tells the agent.
type Worker struct {
	statuses Statuses
	sender   Sender
	limits   *Limits
	tokens   map[string]string // phone number id → access token
	sequence *ordered.Sequencer
	logger   *slog.Logger
	metrics  workerMetrics
	// inlineWait is the longest rate-limit wait spent holding the worker; longer ones defer the task.
	inlineWait time.Duration
	// sendReserve is the part of a last attempt's deadline kept for the send after a wait.
	sendReserve time.Duration
}

type workerMetrics struct {
	sends    *prometheus.CounterVec
	deferred prometheus.Counter
	latency  prometheus.Histogram
}

// WorkerOptions are the worker's collaborators.
type WorkerOptions struct {
	Tokens map[string]string
	// Sequencer keeps each conversation's sends in order (NewSequencer); required.
	Sequencer  *ordered.Sequencer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// NewWorker builds the handler of the outbound task types.
func NewWorker(statuses Statuses, sender Sender, limits *Limits, o WorkerOptions) *Worker {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &Worker{statuses: statuses, sender: sender, limits: limits, tokens: o.Tokens, sequence: o.Sequencer,
		logger: o.Logger.With("component", "outbound"), inlineWait: time.Second, sendReserve: 2 * time.Second,
		metrics: workerMetrics{
			sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_outbound_sends_total",
				Help: "Provider sends by outcome: sent, retry, failed."}, []string{"outcome"}),
			deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatgate_outbound_deferred_total",
				Help: "Sends put back for later by a rate limit or a customer's pace."}),
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatgate_outbound_provider_seconds",
				Help: "Time the provider took to answer a send.", Buckets: prometheus.DefBuckets}),
		}}
	if o.Registerer != nil {
		o.Registerer.MustRegister(w.metrics.sends, w.metrics.deferred, w.metrics.latency)
	}
	return w
}

// Register mounts the worker on the process's asynq server, behind the conversations' order.
func (w *Worker) Register(srv *tasks.Server) {
	if w.sequence == nil {
		panic("outbound: the worker needs WorkerOptions.Sequencer")
	}
	h := w.sequence.Handler(w)
	srv.Handle(TypeTemplate, h)
	srv.Handle(TypeText, h)
	srv.Handle(TypeMedia, h)
	srv.Handle(TypeInteractive, h)
}

// prefetched is what the claim of a send's turn read and took (Prefetch).
type prefetched struct {
	send   Send
	fields map[string]string // the message's, as stored
	wait   time.Duration     // the take's, when taken
	taken  bool
}

type prefetchKey struct{}

// PrefetchLua reads the message (KEYS[1]) and, only when the turn is granted, takes the number's
// rate and the customer's pace (the other keys, Limits.args). A send that then finds its message
// already sent (a run after a crash) has spent one unit of each; that is rare and only slows the
// number by one send. The keys are all under the tenant's hash tag, as the sequence's.
func (w *Worker) PrefetchLua() string {
	return rateTakeLua + `
local function prefetch(keys, argv, granted)
  local msg = redis.call('HGETALL', keys[1])
  if not granted then return {msg} end
  return {msg, rateTake({unpack(keys, 2)}, argv)}
end
`
}

// Prefetch gives PrefetchLua a send's message and limits (see ordered.Prefetcher).
func (w *Worker) Prefetch(ctx context.Context, task *asynq.Task) (ordered.Prefetch, bool) {
	var s Send
	if err := decodeSend(task.Payload(), &s); err != nil || s.MessageID == "" {
		return ordered.Prefetch{}, false // ProcessTask reports it
	}
	if _, ok := w.tokens[s.PhoneNumberID]; !ok {
		return ordered.Prefetch{}, false // never sent: spend nothing
	}
	keys, argv := w.limits.args(s.PhoneNumberID, s.To).KeysAndArgv()
	return ordered.Prefetch{Keys: append([]string{w.statuses.MessageKey(s.MessageID)}, keys...), Args: argv,
		Done: func(ctx context.Context, reply any) context.Context {
			pre := &prefetched{send: s}
			a, _ := luascript.AsArray(reply)
			if len(a) > 0 {
				pre.fields = a.Fields(0)
			}
			if len(a) > 1 {
				seconds, err := parseWait(a[1])
				pre.wait, pre.taken = waitOf(seconds), err == nil
			}
			return context.WithValue(ctx, prefetchKey{}, pre)
		}}, true
}

// decodeSend reads a task's payload, which newTask wrote with encoding/json. goccy/go-json reads
// it in a fifth of encoding/json's time and allocations, on every send.
func decodeSend(payload []byte, s *Send) error { return gojson.Unmarshal(payload, s) }

// ProcessTask sends one message. A message whose status moved past queued was sent by an earlier
// attempt (the process died before acknowledging the task) and is not sent again; one that failed
// before the provider took it is sent when an operator runs its archived task again.
func (w *Worker) ProcessTask(ctx context.Context, task *asynq.Task) error {
	var s Send
	if pre, _ := ctx.Value(prefetchKey{}).(*prefetched); pre != nil {
		s = pre.send // decoded once, by Prefetch
	} else if err := decodeSend(task.Payload(), &s); err != nil || s.MessageID == "" {
		return fmt.Errorf("%w: unreadable payload", asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	last := retried >= maxRetry
	err := w.process(ctx, task.Type(), s, last)
	if err != nil && last && !errors.Is(err, asynq.SkipRetry) {
		// asynq archives a task on its last attempt whatever the error, an uncounted deferral too:
		// the message would stay queued and the agent never hear of it.
		w.metrics.sends.WithLabelValues("failed").Inc()
		w.fail(ctx, s.MessageID, exhausted(err, retried+1), err, nil)
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	return err
}

// process sends s; last tells it this is the task's last attempt.
func (w *Worker) process(ctx context.Context, typ string, s Send, last bool) error {
	var msg routing.Message
	var err error
	if pre, _ := ctx.Value(prefetchKey{}).(*prefetched); pre != nil && pre.fields != nil && pre.send.MessageID == s.MessageID {
		msg, err = w.statuses.MessageFrom(ctx, s.MessageID, pre.fields) // read with the claim
	} else {
		msg, err = w.statuses.Message(ctx, s.MessageID)
	}
	if errors.Is(err, routing.ErrNotFound) {
		return fmt.Errorf("%w: message %s is not stored", asynq.SkipRetry, s.MessageID)
	}
	if err != nil {
		return err
	}
	switch {
	case msg.Status == routing.MessageFailed && msg.ProviderMessageID == "":
		// An operator ran an archived send again: the provider never accepted it, so it is sent
		// (and the agent sees it queued again). One the provider accepted is never sent twice.
		if _, changed, err := w.statuses.UpdateStatus(ctx, s.MessageID, routing.StatusUpdate{State: routing.MessageQueued, At: time.Now()}); err != nil {
			return err
		} else if !changed {
			return nil
		}
	case msg.Status != routing.MessageQueued:
		return nil
	}
	out, err := w.message(typ, s)
	if err != nil {
		w.fail(ctx, s.MessageID, routing.MessageError{Title: "Not sent",
			Summary: bilingual("A mensagem não pôde ser montada para o WhatsApp e não foi enviada.",
				"The message could not be built for WhatsApp and was not sent.")}, err, &msg)
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	token, ok := w.tokens[s.PhoneNumberID]
	if !ok {
		err := fmt.Errorf("number %s is not configured", s.PhoneNumberID)
		w.fail(ctx, s.MessageID, routing.MessageError{Title: "Sending number not configured",
			Summary: bilingual("O número de WhatsApp desta conversa não está configurado para envio; avise um administrador.",
				"The WhatsApp number of this conversation is not configured for sending; tell an administrator.")}, err, &msg)
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	if err := w.waitTurn(ctx, s, last); err != nil {
		return err
	}

	start := time.Now()
	res, err := w.sender.Send(ctx, s.PhoneNumberID, token, out)
	w.metrics.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		w.metrics.sends.WithLabelValues("sent").Inc()
		if adv := ordered.AdvanceOf(ctx); adv != nil {
			adv.Succeeds() // nil is returned below: the status script may complete the task too
		}
		w.record(ctx, s.MessageID, routing.StatusUpdate{State: routing.MessageSent, ProviderMessageID: res.MessageID, Channel: msg.Channel, Before: &msg})
		return nil
	}
	if whatsapp.IsPermanent(err) || last {
		w.metrics.sends.WithLabelValues("failed").Inc()
		reason := refused(err)
		if !whatsapp.IsPermanent(err) {
			retried, _ := asynq.GetRetryCount(ctx)
			reason = exhausted(err, retried+1)
		}
		w.fail(ctx, s.MessageID, reason, err, &msg)
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	w.metrics.sends.WithLabelValues("retry").Inc()
	return tasks.RetryAfter(err, whatsapp.RetryAfter(err))
}

// waitTurn takes the number's rate and the customer's pace, waiting in place for short waits and
// putting the task back for longer ones (without using up an attempt). On the last attempt a
// deferral would archive the task, so it waits in place as long as the task's deadline allows.
func (w *Worker) waitTurn(ctx context.Context, s Send, last bool) error {
	pre, _ := ctx.Value(prefetchKey{}).(*prefetched)
	for {
		wait, ok := time.Duration(0), false
		if pre != nil && pre.send.PhoneNumberID == s.PhoneNumberID && pre.send.To == s.To {
			wait, ok = pre.wait, pre.taken // taken with the claim, once
			pre = nil
		}
		if !ok {
			var err error
			if wait, err = w.limits.Take(ctx, s.PhoneNumberID, s.To); err != nil {
				return err
			}
		}
		if wait == 0 {
			return nil
		}
		inline := w.inlineWait
		if last {
			inline = max(inline, time.Until(deadline(ctx))-w.sendReserve)
		}
		if wait > inline {
			w.metrics.deferred.Inc()
			return tasks.Defer(wait, errors.New("rate limit"))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// deadline is the task's deadline (asynq always sets one; a day when run without).
func deadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(24 * time.Hour)
}

func (w *Worker) message(typ string, s Send) (whatsapp.Message, error) {
	switch typ {
	case TypeTemplate:
		if s.Template == nil {
			return nil, errors.New("template task without a template")
		}
		t := s.Template
		buttons := make([]whatsapp.ButtonParam, len(t.ButtonParams))
		kind := whatsapp.URLButton
		if t.ButtonKind == "quick_reply" {
			kind = whatsapp.QuickReplyButton
		}
		for i, v := range t.ButtonParams {
			buttons[i] = whatsapp.ButtonParam{Kind: kind, Index: i, Value: v}
		}
		return whatsapp.TemplateMessage{To: s.To, Name: t.Name, Language: t.Language, HeaderParams: t.HeaderParams,
			BodyParams: t.BodyParams, ButtonParams: buttons}, nil
	case TypeText:
		return whatsapp.TextMessage{To: s.To, Body: s.Text}, nil
	case TypeMedia:
		if s.Media == nil {
			return nil, errors.New("media task without media")
		}
		return whatsapp.MediaMessage{To: s.To, Kind: whatsapp.MediaKind(s.Media.Kind), ID: s.Media.ID, Link: s.Media.URL,
			Caption: s.Media.Caption, Filename: s.Media.Filename}, nil
	case TypeInteractive:
		if s.Interactive == nil {
			return nil, errors.New("interactive task without its message")
		}
		return whatsapp.InteractiveMessage{To: s.To, Interactive: *s.Interactive}, nil
	}
	return nil, fmt.Errorf("unknown task type %q", typ)
}

// record stores a status, insisting for a while when Redis hiccups: once the provider accepted the
// message, failing the task would send it again.
func (w *Worker) record(ctx context.Context, id string, u routing.StatusUpdate) {
	u.At = time.Now()
	// Every status recorded here is the send's final outcome: the conversation's next send may go
	// once it is written, and the same script moves the sequence on.
	u.Advance = ordered.AdvanceOf(ctx)
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, _, err := w.statuses.UpdateStatus(context.WithoutCancel(ctx), id, u)
		if err == nil || errors.Is(err, routing.ErrNotFound) {
			return
		}
		if attempt == 8 {
			w.logger.Error("could not record a message status", "message_id", id, "status", u.State, "err", err)
			return
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}

// fail records the agent's reason on the message; the internal cause goes to the log only. before
// is the message as read in this turn, when it was (see routing.StatusUpdate.Before).
func (w *Worker) fail(ctx context.Context, id string, reason routing.MessageError, cause error, before *routing.Message) {
	w.logger.Warn("send failed", "message_id", id, "code", reason.Code, "err", cause)
	w.record(ctx, id, routing.StatusUpdate{State: routing.MessageFailed, Error: &reason, Before: before})
}
