package webhooks

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatgate/chatgate/internal/counters"
	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/routing"
)

// HTTP errors of the webhooks.
var (
	errSignature   = httpx.ErrInvalidSignature
	errInvalidJSON = httpx.ErrInvalidJSON
	errHandshake   = httpx.ErrVerificationFailed
)

// Router is what the webhooks need of routing: durable intake and status updates.
type Router interface {
	Deliver(ctx context.Context, msgs []routing.Inbound) (routing.DeliverResult, error)
	ApplyProviderStatus(ctx context.Context, channel, providerMessageID string, u routing.StatusUpdate) (routing.Message, routing.StatusOutcome, error)
	QueueFor(channel, entryPoint string) (string, bool)
}

var _ Router = (*routing.Router)(nil)

// Handler serves one provider's webhook endpoints.
type Handler struct {
	name     string
	provider Provider
	router   Router
	logger   *slog.Logger
	metrics  *metrics
	// The children every accepted request updates, looked up once: a lookup hashes its labels.
	accepted   prometheus.Counter
	duplicates prometheus.Counter
	latency    prometheus.Observer
	kinds      *counters.ByLabel // messages by kind, for this provider
}

type metrics struct {
	notifications *prometheus.CounterVec
	messages      *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	badSignatures *prometheus.CounterVec
	unrouted      *prometheus.CounterVec
	statuses      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

// Metrics are the webhook counters, shared by every provider's handler (labelled by provider).
type Metrics = metrics

// NewMetrics registers the webhook metrics once per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_notifications_total", Help: "Webhook requests by provider and outcome."}, []string{"provider", "outcome"}),
		messages:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_messages_total", Help: "Inbound messages by provider and kind."}, []string{"provider", "kind"}),
		duplicates:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_duplicates_total", Help: "Redelivered messages recognised."}, []string{"provider"}),
		badSignatures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_signature_failures_total", Help: "Requests refused for their signature."}, []string{"provider"}),
		unrouted:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_unrouted_total", Help: "Messages for entry points not in the configuration."}, []string{"provider"}),
		statuses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_webhook_statuses_total",
			Help: "Provider statuses by status (other: one this version does not know) and outcome."}, []string{"provider", "status", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chatgate_webhook_intake_seconds", Help: "Time from request to durable record.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.notifications, m.messages, m.duplicates, m.badSignatures, m.unrouted, m.statuses, m.latency)
	}
	return m
}

// NewHandler serves provider name (the path segment) with its provider on the router.
func NewHandler(name string, p Provider, r Router, logger *slog.Logger, m *Metrics) *Handler {
	return &Handler{name: name, provider: p, router: r, logger: logger.With("component", "webhooks", "provider", name), metrics: m,
		accepted: m.notifications.WithLabelValues(name, "ok"), duplicates: m.duplicates.WithLabelValues(name), latency: m.latency.WithLabelValues(name),
		kinds: counters.New(m.messages, name)}
}

// Register mounts GET (handshake, when the provider has one) and POST /webhooks/<name>.
func (h *Handler) Register(app fiber.Router) {
	if hs, ok := h.provider.(Handshaker); ok {
		app.Get("/webhooks/"+h.name, func(c *fiber.Ctx) error {
			challenge, ok := hs.Handshake(func(k string) string { return c.Query(k) })
			if !ok {
				return errHandshake
			}
			// The challenge is the caller's text, sent back as it came: never to be sniffed as a page.
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
			c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
			return c.SendString(challenge)
		})
	}
	app.Post("/webhooks/"+h.name, h.receive)
}

// receive verifies the signature on the raw body, parses, and answers 200 only once every message is
// durably recorded by routing. A store outage is a 503 so the provider retries.
// RejectionError is the catalogue's answer to a provider's rejection, with the provider's message.
func RejectionError(r *Rejection) *httpx.Error {
	e := httpx.ErrValidation
	switch {
	case errors.Is(r.Reason, ErrTooManyAttachments):
		e = httpx.ErrTooManyAttachments
	case errors.Is(r.Reason, ErrMessageTooLong):
		e = httpx.ErrMessageTooLong
	}
	return e.WithMessage("%s", r.Message)
}

func (h *Handler) receive(c *fiber.Ctx) error {
	start := time.Now()
	body := c.Body()
	if err := h.provider.Verify(func(k string) string { return c.Get(k) }, body); err != nil {
		h.metrics.badSignatures.WithLabelValues(h.name).Inc()
		h.metrics.notifications.WithLabelValues(h.name, "bad_signature").Inc()
		return errSignature.Wrap(err)
	}
	// Signed, so the sender is known; its body must still say it is JSON and be unambiguous.
	if _, err := httpx.JSONBody(c); err != nil {
		h.metrics.notifications.WithLabelValues(h.name, "rejected").Inc()
		return err
	}
	n, err := h.provider.Parse(body)
	var rejection *Rejection
	switch {
	case errors.As(err, &rejection):
		h.metrics.notifications.WithLabelValues(h.name, "rejected").Inc()
		return RejectionError(rejection)
	case errors.Is(err, ErrInvalidJSON):
		h.metrics.notifications.WithLabelValues(h.name, "invalid_json").Inc()
		h.logger.Warn("signed request with invalid JSON", "body", truncate(body))
		return errInvalidJSON
	case errors.Is(err, ErrForeignObject):
		h.metrics.notifications.WithLabelValues(h.name, "ignored").Inc()
		return c.JSON(fiber.Map{"status": "ignored"})
	case err != nil:
		h.metrics.notifications.WithLabelValues(h.name, "not_understood").Inc()
		h.logger.Warn("signed payload not understood; acknowledged so it is not retried", "err", err, "body", truncate(body))
		return c.JSON(fiber.Map{"status": "ignored"})
	}
	ctx := c.UserContext()
	var res routing.DeliverResult
	for _, m := range n.Messages {
		if _, ok := h.router.QueueFor(m.Channel, m.EntryPoint); !ok {
			h.metrics.unrouted.WithLabelValues(h.name).Inc()
			h.logger.Warn("message for an entry point not in the configuration; not routed", "entry_point", m.EntryPoint, "message_id", m.ID)
			continue
		}
		if m.Unrecognized {
			h.logger.Warn("message of an unknown kind; recorded with its raw JSON", "kind", m.Kind, "message_id", m.ID, "raw", truncate(m.Raw))
		}
		// One message per Deliver, so a kind is counted once it is recorded: not for a duplicate, nor
		// for a 503 and again for its retry.
		r, err := h.router.Deliver(ctx, []routing.Inbound{m.Inbound()})
		if err != nil && isScriptError(err) {
			// The same message would fail the same way on every redelivery, for days: logged whole
			// (digits masked) for an operator, and the rest of the notification still counts.
			h.metrics.notifications.WithLabelValues(h.name, "message_error").Inc()
			h.logger.Error("message could not be recorded; acknowledged so it is not redelivered forever", "message_id", m.ID,
				"kind", m.Kind, "err", err, "raw", truncate(m.Raw))
			continue
		}
		if err != nil {
			h.metrics.notifications.WithLabelValues(h.name, "unavailable").Inc()
			return err
		}
		res.Recorded += r.Recorded
		res.Duplicates += r.Duplicates
		h.kinds.Of(m.Kind).Add(float64(r.Recorded))
		h.duplicates.Add(float64(r.Duplicates))
	}
	var statuses, pending int
	for _, s := range n.Statuses {
		u := routing.StatusUpdate{State: s.State, At: s.At}
		if len(s.Errors) > 0 {
			e := s.Errors[0]
			u.Error = &routing.MessageError{Code: e.Code, Title: e.Title, Message: e.Message, Details: e.Details}
		}
		_, outcome, err := h.router.ApplyProviderStatus(ctx, s.Channel, s.MessageID, u)
		if err != nil {
			if !isScriptError(err) {
				h.metrics.notifications.WithLabelValues(h.name, "unavailable").Inc()
				return err
			}
			// A script's own error would fail the provider's redelivery the same way: logged, and the
			// rest of the notification still counts.
			h.logger.Error("status not applied", "status", truncate([]byte(s.State)), "message_id", s.MessageID, "err", err)
			outcome = "error"
		}
		label := s.State
		if !routing.KnownStatus(label) {
			label = "other"
			h.logger.Warn("status of an unknown kind; acknowledged and not applied", "status", truncate([]byte(s.State)),
				"message_id", s.MessageID, "recipient_id", truncate([]byte(s.RecipientID)))
		}
		h.metrics.statuses.WithLabelValues(h.name, label, string(outcome)).Inc()
		switch outcome {
		case routing.StatusApplied:
			statuses++
		case routing.StatusPending:
			pending++
		case routing.StatusDropped:
			h.logger.Warn("status kept for a send not recorded yet, but its buffer is full; dropped", "status", s.State, "message_id", s.MessageID)
		}
	}
	for _, s := range n.Skipped {
		h.logger.Debug("notification part skipped", "field", s.Field, "reason", s.Reason)
	}
	h.accepted.Inc()
	h.latency.Observe(time.Since(start).Seconds())
	return sendReceipt(c, receipt{Status: "ok", Recorded: res.Recorded, Duplicates: res.Duplicates, Statuses: statuses, Pending: pending})
}

// sendReceipt answers r as c.JSON would, written by hand into the response's own buffer: every
// accepted notification gets one, and the encoder's allocations were a visible part of the path.
func sendReceipt(c *fiber.Ctx, r receipt) error {
	var buf [128]byte
	b := append(buf[:0], `{"status":`...)
	b = strconv.AppendQuote(b, r.Status)
	b = strconv.AppendInt(append(b, `,"recorded":`...), int64(r.Recorded), 10)
	b = strconv.AppendInt(append(b, `,"duplicates":`...), int64(r.Duplicates), 10)
	b = strconv.AppendInt(append(b, `,"statuses":`...), int64(r.Statuses), 10)
	if r.Pending != 0 {
		b = strconv.AppendInt(append(b, `,"pending":`...), int64(r.Pending), 10)
	}
	c.Response().SetBody(append(b, '}'))
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	return nil
}

// receipt is the answer to an accepted notification.
type receipt struct {
	Status     string `json:"status"`
	Recorded   int    `json:"recorded"`
	Duplicates int    `json:"duplicates"`
	Statuses   int    `json:"statuses"`
	// Pending: statuses for sends whose answer has not recorded the provider's id yet; kept and
	// applied when it does.
	Pending int `json:"pending,omitempty"`
}

// Inbound is the message in routing's intake form, for every way a message comes in (a provider's
// webhook, the WebChat widget). The normalized message is kept whole as the stored payload, so
// agents see every field.
func (m Message) Inbound() routing.Inbound {
	payload := m.payload()
	name := m.Contact.Name
	in := routing.Inbound{Channel: m.Channel, EntryPoint: m.EntryPoint, ContactID: m.Contact.ID, ContactName: name,
		ContactPhone: m.Contact.Phone, ProviderMessageID: m.ID, Sender: m.Sender, At: m.At, Kind: m.Kind, Text: m.Text, Payload: payload,
		Identifiers: identifiers(m.Contact), Notice: m.Notice}
	if m.Previous != nil {
		in.Replaced = identifiers(*m.Previous)
	}
	return in
}

// identifiers are the ways a provider named the customer: the phone (digits, as Meta's wa_id), the
// business-scoped user id and its parent, the username. A contact with none of them (WebChat's
// visitor) is its ID alone.
func identifiers(c Contact) []routing.Identifier {
	var out []routing.Identifier
	add := func(kind, v string) {
		if v != "" {
			out = append(out, routing.Identifier{Kind: kind, Value: v})
		}
	}
	add(routing.IdentPhone, strings.TrimPrefix(c.WaID, "+"))
	add(routing.IdentUserID, c.UserID)
	add(routing.IdentParentID, c.ParentUserID)
	add(routing.IdentUsername, c.Username)
	return out
}

// isScriptError: Redis ran the script and the script failed on its input, so a redelivery would fail
// the same way. A Redis that is out of memory, loading, busy or failing over is not that: it passes.
func isScriptError(err error) bool {
	msg := err.Error()
	if !strings.Contains(msg, "user_script") && !strings.Contains(msg, "Error running script") {
		return false
	}
	for _, passing := range []string{"OOM ", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS"} {
		if strings.Contains(msg, passing) {
			return false
		}
	}
	return true
}

var longDigits = regexp.MustCompile(`\d{6,}`)

// truncate bounds what a log line quotes of a body and masks long digit runs (phone numbers).
func truncate(b []byte) string {
	const max = 2048
	if len(b) > max {
		b = b[:max]
	}
	return string(longDigits.ReplaceAll(bytes.Clone(b), []byte("******")))
}
