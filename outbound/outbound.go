// Package outbound sends what agents write: new WhatsApp conversations (approved templates) and
// replies inside open conversations. Every WhatsApp send is an asynq task, so a crash, a deploy or a
// provider outage loses nothing; other channels plug in through ChannelSender.
package outbound

import (
	"context"

	"github.com/chatgate/chatgate/routing"
)

// ChannelSender hands an agent's reply, already recorded by routing with status "queued", to its
// channel. It must return only once the reply is durable (enqueued, or written where the customer
// reads it); an error makes the HTTP call fail with nothing sent.
type ChannelSender interface {
	SendReply(ctx context.Context, conv routing.Conversation, msg routing.Message) error
}
