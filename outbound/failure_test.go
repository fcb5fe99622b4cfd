package outbound

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/tasks"
	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// What the agent reads for each way a send can end badly: Meta's words where Meta spoke, plain
// words otherwise, and never the internal error text.
func TestFailureReasonsForTheAgent(t *testing.T) {
	throttled := &whatsapp.Error{HTTPStatus: 429, Code: 130429, Title: "Rate limit hit", Message: "(#130429) Rate limit hit",
		Details: "Cloud API message throughput has been reached.", FBTraceID: "AbC", Class: whatsapp.RateLimited}
	outage := &whatsapp.Error{HTTPStatus: 503, Code: 131016, Title: "Service unavailable", Message: "(#131016) Service unavailable",
		FBTraceID: "AbC", Class: whatsapp.Transient}
	timeout := &whatsapp.Error{Class: whatsapp.Transient}
	token := &whatsapp.Error{HTTPStatus: 401, Code: 190, Title: "Access token has expired", Message: "Error validating access token",
		FBTraceID: "AbC", Class: whatsapp.Auth}
	cases := []struct {
		name    string
		got     string
		code    int
		summary string
	}{
		{"throttled to the end", exhausted(fmt.Errorf("wrapped: %w", throttled), 11).Summary, 130429,
			"Não enviada: o WhatsApp continuou limitando a velocidade de envio deste número em 11 tentativas. Envie de novo mais tarde. · " +
				"Not sent: WhatsApp kept limiting how fast this number may send through 11 attempts. Send it again later. " +
				"(130429 Rate limit hit: Cloud API message throughput has been reached.)"},
		{"5xx to the end", exhausted(outage, 4).Summary, 131016,
			"Não enviada: o WhatsApp continuou respondendo com um erro temporário em 4 tentativas. Envie de novo mais tarde. · " +
				"Not sent: WhatsApp kept answering with a temporary error through 4 attempts. Send it again later. (131016 Service unavailable)"},
		{"unreachable to the end", exhausted(timeout, 4).Summary, 0,
			"Não enviada: o WhatsApp não pôde ser alcançado ou não respondeu em 4 tentativas. Envie de novo mais tarde. · " +
				"Not sent: WhatsApp could not be reached or did not answer through 4 attempts. Send it again later."},
		{"our rate to the end", exhausted(tasks.Defer(time.Minute, errors.New("rate limit")), 4).Summary, 0,
			"Não enviada: o limite de envio do número deixou a mensagem esperando até acabarem as tentativas. Envie de novo mais tarde. · " +
				"Not sent: the number's sending rate kept the message waiting until its attempts ran out. Send it again later."},
		{"Redis down to the end", exhausted(context.DeadlineExceeded, 4).Summary, 0,
			"Não enviada: o gateway não conseguiu enviá-la em 4 tentativas. Um operador pode enviá-la de novo pela visão de operações. · " +
				"Not sent: the gateway could not send it through 4 attempts. An operator can run it again from the operations view."},
		{"bad token", refused(token).Summary, 190,
			"190 Access token has expired: Error validating access token — o WhatsApp recusou o acesso do número de envio; avise um administrador. · " +
				"WhatsApp refused the sending number's access; tell an administrator."},
	}
	for _, c := range cases {
		if c.got != c.summary {
			t.Errorf("%s:\n got  %q\n want %q", c.name, c.got, c.summary)
		}
		for _, internal := range []string{"HTTP", "fbtrace", "AbC", "whatsapp:", "wrapped", "deadline"} {
			if strings.Contains(c.got, internal) {
				t.Errorf("%s: the agent would read %q", c.name, internal)
			}
		}
	}
	if e := exhausted(throttled, 11); e.Code != 130429 || e.Title != "Rate limit hit" || e.Details != throttled.Details {
		t.Errorf("throttled keeps Meta's fields: %+v", e)
	}
	invalid := fmt.Errorf("%w: text.body is empty", whatsapp.ErrInvalidMessage)
	if e := refused(invalid); e.Details != "text.body is empty" || e.Summary != "A mensagem não foi enviada: text.body is empty. · The message was not sent: text.body is empty." {
		t.Errorf("invalid message: %+v", e)
	}
}
