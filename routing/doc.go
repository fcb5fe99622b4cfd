// Package routing turns customers' conversations into cards offered only to eligible agents, keeps
// the waiting queues and the offers, records every message of a conversation with its status, and
// carries every agent's live event stream.
//
// # What routing owns
//
// The tenant's contacts (one per customer and channel, found by any identifier a provider showed),
// conversations (channel, entry point, contact; open until closed), their messages, cards, the
// waiting queues per (queue, channel), the candidate sets of agents per (queue, channel), the offers
// in flight, each agent's load and capacity per channel, and the agents' event streams. Presence (who
// is online, paused or offline) belongs to package presence: routing reads its state HASH inside its
// scripts and hears of changes through PresenceChanged. Sending belongs to outbound: routing records
// an agent's message as queued and applies the statuses the senders and the providers report.
//
// # The card's life
//
//	waiting ──offer──▶ offered ──accept──▶ accepted ──close──▶ closed
//	   ▲                  │                   │
//	   └──decline/timeout─┘                   │
//	   └──────────────requeue (logout)────────┘
//
// A customer's first message opens a conversation and its card, waiting in the queue of its entry
// point (deliverScript), and the first routing decision is made in the same step. A decision
// (offerLua) gives the first waiting card that some eligible candidate has not refused to the best
// such candidate by the queue's strategy. The agent accepts it (acceptScript), declines it or lets
// the offer time out (releaseScript: back in its old place; that agent gets it again only once the
// queue's reoffer_after has passed and every eligible agent refused it, the longest-ago refuser
// first), or logs out of the channel (requeueScript: its cards go first in line). A card is closed by
// its holder, a supervisor, the queue's max_wait, or a contact merge (closeScript, maxWaitScript,
// contactLua); max_wait may instead move it first in line in the queue's overflow_queue. An agent may also open a conversation itself (startScript): its card is born accepted.
// Later messages of an open conversation join it and go to its agent, even while paused.
//
// Running the floor (floor.go, floorscripts.go): a holder or a supervisor transfers a conversation
// to one agent (offered to it only; refused, first in line in its queue) or first in line in a queue;
// a close records the disposition and starts the holder's wrap-up on the channel, during which the
// offer script skips that agent there; the first-response timer flags (or requeues) a conversation
// accepted without an agent message.
//
// # Invariants
//
//   - Every step that changes several keys together is atomic, so replicas never see half of it: a
//     Lua script (scripts.go, each with its KEYS, ARGV and replies listed; the event stream's
//     publish script beside the stream in events.go), or a MULTI transaction for plain writes
//     (an agent's message recorded, capacities synced). Every key carries the tenant's hash tag,
//     so each step touches one slot of a Redis Cluster.
//   - An agent is offered a card only when it is online on the card's channel and its load there is
//     below its capacity, checked inside the offer script. A stale candidate in a candidate set is
//     harmless: the script drops it.
//   - A card is in one place at a time: the waiting ZSET of its queue (waiting), or counted in its
//     agent's load and listed in its agentcards SET (offered, accepted); an offered card is also in
//     the offers ZSET until accepted or released. A closed card is in none.
//   - A contact has at most one open conversation per entry point (the convopen key); a provider's
//     redelivered message is recorded once (its key, derived from the provider id and written last in the intake script).
//   - The customer service window never moves back, and a message's status only moves forward
//     (statusLua; but for an operator's retry of a send that never reached the provider); statuses
//     that arrive before the send's answer are kept and applied with it.
//   - Waiting cards move the moment capacity appears (login, resume, decline, close, timeout); the
//     sweeper also reconciles the candidate sets with presence every 30 s, so a lost trigger delays
//     an offer, never loses it.
//   - No customer is stranded: a waiting card and an agent eligible for it never coexist for longer
//     than reoffer_after plus one sweep. Each refusal's re-offer time is in the reoffers ZSET; the
//     timeout sweep dispatches the queues of the waiting cards whose refusals came due, and a refuser
//     that is not eligible then gets the card through the dispatch its becoming eligible triggers.
//
// # Keys
//
// Every key is listed in keys.go with its type and what it holds. The message statuses are
// MessageQueued … MessageWarning; the card states CardWaiting … CardClosed; the event types on an
// agent's stream are in event.go.
package routing
