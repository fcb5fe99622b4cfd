package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/ordered"
	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/outbound/whatsapp"
	"github.com/chatgate/chatgate/routing"
)

// A failed send's reason: Meta's code, title, message and details as Meta wrote them (for integrators
// and support), and where the gateway explains it a sentence of ours in Portuguese and English
// (bilingual; the console shows the half of its language, and what a code means for Meta's own
// refusals, never the code). HTTP statuses, trace ids and the attempts' errors go to the log only.

// bilingual joins the Portuguese and English forms of a sentence for the agent.
func bilingual(pt, en string) string { return pt + " · " + en }

// refused is the reason of a send the provider refused for good (or that was invalid before it).
func refused(err error) routing.MessageError {
	var perr *whatsapp.Error
	if !errors.As(err, &perr) {
		// Refused before sending: the reason names our own check (a field and what is wrong).
		detail := strings.TrimPrefix(strings.TrimPrefix(err.Error(), whatsapp.ErrInvalidMessage.Error()), ": ")
		return routing.MessageError{Title: "Not sent", Details: detail,
			Summary: bilingual("A mensagem não foi enviada: "+detail+".", "The message was not sent: "+detail+".")}
	}
	e := providerWords(perr)
	if perr.Class == whatsapp.Auth {
		e.Summary = e.Describe() + " — " + bilingual("o WhatsApp recusou o acesso do número de envio; avise um administrador.",
			"WhatsApp refused the sending number's access; tell an administrator.")
	}
	return e
}

// exhausted is the reason of a send still failing when its attempts ran out.
func exhausted(err error, attempts int) routing.MessageError {
	var perr *whatsapp.Error
	var delay *tasks.DelayError
	switch {
	case errors.As(err, &perr) && perr.Class == whatsapp.RateLimited:
		e := providerWords(perr)
		e.Summary = bilingual(
			fmt.Sprintf("Não enviada: o WhatsApp continuou limitando a velocidade de envio deste número em %d tentativas. Envie de novo mais tarde.", attempts),
			fmt.Sprintf("Not sent: WhatsApp kept limiting how fast this number may send through %d attempts. Send it again later.", attempts)) +
			" (" + e.Describe() + ")"
		return e
	case errors.As(err, &perr) && perr.Code != 0:
		e := providerWords(perr)
		e.Summary = bilingual(
			fmt.Sprintf("Não enviada: o WhatsApp continuou respondendo com um erro temporário em %d tentativas. Envie de novo mais tarde.", attempts),
			fmt.Sprintf("Not sent: WhatsApp kept answering with a temporary error through %d attempts. Send it again later.", attempts)) +
			" (" + e.Describe() + ")"
		return e
	case errors.As(err, &perr):
		return routing.MessageError{Title: "WhatsApp unavailable",
			Summary: bilingual(
				fmt.Sprintf("Não enviada: o WhatsApp não pôde ser alcançado ou não respondeu em %d tentativas. Envie de novo mais tarde.", attempts),
				fmt.Sprintf("Not sent: WhatsApp could not be reached or did not answer through %d attempts. Send it again later.", attempts))}
	case errors.As(err, &delay) && !delay.Counted:
		return routing.MessageError{Title: "Sending rate",
			Summary: bilingual("Não enviada: o limite de envio do número deixou a mensagem esperando até acabarem as tentativas. Envie de novo mais tarde.",
				"Not sent: the number's sending rate kept the message waiting until its attempts ran out. Send it again later.")}
	}
	return routing.MessageError{Title: "Not sent",
		Summary: bilingual(
			fmt.Sprintf("Não enviada: o gateway não conseguiu enviá-la em %d tentativas. Um operador pode enviá-la de novo pela visão de operações.", attempts),
			fmt.Sprintf("Not sent: the gateway could not send it through %d attempts. An operator can run it again from the operations view.", attempts))}
}

// providerWords copies Meta's own words from a provider error.
func providerWords(perr *whatsapp.Error) routing.MessageError {
	title := perr.Title
	if title == "" {
		title = whatsapp.Title(perr.Code)
	}
	if title == "" && perr.Code == 0 {
		title = "WhatsApp refused the message"
	}
	return routing.MessageError{Code: perr.Code, Title: title, Message: perr.Message, Details: perr.Details}
}

// NewSequencer is the process's sequencer of sends, one sequence per conversation (the service
// enqueues through it, the worker is gated by it). A send lost before it reached asynq (its
// process died between admission and enqueue) is shown failed, so the agent can send it again.
func NewSequencer(client redis.UniversalClient, ks keyspace.Space, enqueuer ordered.Enqueuer, statuses Statuses, logger *slog.Logger) *ordered.Sequencer {
	if logger == nil {
		logger = slog.Default()
	}
	return ordered.New(client, ks, SequenceName, enqueuer, ordered.Options{Logger: logger,
		OnSkip: func(ctx context.Context, it ordered.Item, state string) {
			id := messageOfTask(it.TaskID)
			if id == "" {
				return
			}
			m, err := statuses.Message(ctx, id)
			if err != nil || m.Status != routing.MessageQueued {
				return // sent or failed already: nothing to tell
			}
			logger.Warn("a queued send was lost; marking it failed", "message_id", id, "task_state", state)
			if _, _, err := statuses.UpdateStatus(ctx, id, routing.StatusUpdate{State: routing.MessageFailed, Error: &routing.MessageError{
				Title: "Not sent", Summary: bilingual("Não enviada: o envio foi interrompido antes de chegar ao WhatsApp. Envie de novo.",
					"Not sent: the send was interrupted before it reached WhatsApp. Send it again.")}}); err != nil {
				logger.Warn("could not mark a lost send failed", "message_id", id, "err", err)
			}
		}})
}
