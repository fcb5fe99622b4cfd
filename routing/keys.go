package routing

import (
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/presence"
)

// Keys of routing, all under the tenant's hash tag. Scripts that reach keys they cannot know
// beforehand (a conversation found by lookup, candidates' presence) build them from Prefix() inside
// Lua; they carry the same tag, so every script still touches one slot.
//
//	cg:{t}:pmsg:<channel>:<provider message id>  STRING  → id of a message the gateway sent (status lookup)
//	cg:{t}:pstatus:<channel>:<provider id>        LIST    statuses that came before the send's answer (TTL)
//	cg:{t}:pstatuses                              ZSET    pstatus key → expiry ms (bounds how many wait)
//	cg:{t}:ident:<channel>:<kind>:<value>          STRING  → contact id (kind: phone, bsuid, pbsuid, username)
//	cg:{t}:contact:<id>                           HASH    the contact's current identifiers (phone, bsuid, pbsuid, username), name,
//	                                                      convs (its conversations still kept: retention deletes the contact with the last)
//	cg:{t}:contactids:<id>                        SET     every "kind:value" indexed to the contact (the reverse of ident)
//	cg:{t}:convopen:<channel>:<entry>:<contact>   STRING  → the open conversation id (WebChat: the visitor id as contact)
//	cg:{t}:conv:<id>                              HASH    conversation fields (contact_pbsuid and entry_point_display complete
//	                                                      its messages' payloads, see compact.go)
//	cg:{t}:convmsgs:<id>                          LIST    message ids, oldest first
//	cg:{t}:msg:<id>                               HASH    message fields; a customer's message is compact (compact.go):
//	                                                      its id derived from the provider's (the key is the dedup), no id field, the
//	                                                      payload's rest in x, values over 64 bytes in pieces (text, text~1, …)
//	cg:{t}:card:<id>                              HASH    card fields
//	cg:{t}:refused:<card>                         ZSET    agent → ms it declined or let the offer time out (last time)
//	cg:{t}:reoffers                               ZSET    "card|agent" → ms a refusal allows a re-offer (swept)
//	cg:{t}:waiting:<queue>:<channel>              ZSET    card → position (enqueue ms; requeued cards go first)
//	cg:{t}:avail:<queue>:<channel>                ZSET    agent → strategy score (lowest is picked first)
//	cg:{t}:offers                                 ZSET    card → offer expiry ms (swept for timeouts)
//	cg:{t}:load:<agent>                           HASH    channel → cards offered or accepted
//	cg:{t}:cap:<agent>                            HASH    channel → capacity (from configuration)
//	cg:{t}:agentcards:<agent>                     SET     cards offered to or accepted by the agent
//	cg:{t}:noanswer:<agent>                       STRING  offers in a row left to time out
//	cg:{t}:wrapups                                ZSET    "agent|channel" → ms its wrap-up ends (swept)
//	cg:{t}:firstresp                              ZSET    card → ms its first-response timer comes due (swept)
//	cg:{t}:rpt:conv:<UTC day>                     ZSET    closed conversations' report rows by creation ms (reportrow.go; EXPIRE)
//	cg:{t}:audit                                  LIST    offer audit records (only when auditing, for tests)
//	cg:{t}:events:<agent>                         STREAM  the agent's events (type, event JSON), trimmed
//	cg:{t}:retention                              ZSET    conversation → ms retention looks at it next (retention.go)
//	cg:{t}:retention:held                         ZSET    conversation → ms its expiry was first held (outlet not acknowledged)
//	cg:{t}:integ:unacked                          HASH    conversation → events the integration outlet has not acknowledged (read only here)
//	cg:{t}:events                                 pub/sub channel announcing "agent\nid\nJSON\ntype" to every replica
type keys struct {
	ks keyspace.Space
}

func (k keys) prefix() string                 { return k.ks.Prefix() }
func (k keys) pmsg(channel, id string) string { return k.ks.Key("pmsg", channel, id) }
func (k keys) pendingStatuses(channel, id string) string {
	return k.ks.Key("pstatus", channel, id)
}
func (k keys) pendingIndex() string            { return k.ks.Key("pstatuses") }
func (k keys) conv(id string) string           { return k.ks.Key("conv", id) }
func (k keys) convMsgs(id string) string       { return k.ks.Key("convmsgs", id) }
func (k keys) msg(id string) string            { return k.ks.Key("msg", id) }
func (k keys) card(id string) string           { return k.ks.Key("card", id) }
func (k keys) refused(card string) string      { return k.ks.Key("refused", card) }
func (k keys) reoffers() string                { return k.ks.Key("reoffers") }
func (k keys) waiting(queue, ch string) string { return k.ks.Key("waiting", queue, ch) }
func (k keys) avail(queue, ch string) string   { return k.ks.Key("avail", queue, ch) }
func (k keys) offers() string                  { return k.ks.Key("offers") }
func (k keys) load(agent string) string        { return k.ks.Key("load", agent) }
func (k keys) capacity(agent string) string    { return k.ks.Key("cap", agent) }
func (k keys) agentCards(agent string) string  { return k.ks.Key("agentcards", agent) }
func (k keys) noAnswer(agent string) string    { return k.ks.Key("noanswer", agent) }
func (k keys) audit() string                   { return k.ks.Key("audit") }
func (k keys) events(agent string) string      { return k.ks.Key("events", agent) }
func (k keys) eventsChannel() string           { return k.ks.Key("events") }
func (k keys) wrapUps() string                 { return k.ks.Key("wrapups") }
func (k keys) firstResponses() string          { return k.ks.Key("firstresp") }

// presence and presenceHistory are presence's keys (its state HASH, which also holds the
// <channel>:wrap_up_until fields routing writes, and its history STREAM, which also gets wrap-up entries).
func (k keys) presence(agent string) string        { return presence.StateKey(k.ks, agent) }
func (k keys) presenceHistory(agent string) string { return k.ks.Key("presence", "history", agent) }

// ident is the index key of one identifier a provider showed for a customer; the caller builds it
// for every identifier of a message and passes it as a KEY, since the contact is not known yet.
func (k keys) ident(channel string, id Identifier) string {
	return k.ks.Key("ident", channel, id.Kind, id.Value)
}

func (k keys) retention() string     { return k.ks.Key("retention") }
func (k keys) retentionHeld() string { return k.ks.Key("retention", "held") }

// integUnacked is the integration outlet's HASH: conversation id → events not acknowledged yet
// (> 0 holds the conversation's expiry). The outlet maintains it; retention only reads it.
func (k keys) integUnacked() string { return k.ks.Key("integ", "unacked") }

func (k keys) contact(id string) string    { return k.ks.Key("contact", id) }
func (k keys) contactIDs(id string) string { return k.ks.Key("contactids", id) }

func (k keys) convOpen(channel, entry, contact string) string {
	return k.ks.Key("convopen", channel, entry, contact)
}
