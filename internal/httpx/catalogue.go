package httpx

import "net/http"

// The error catalogue: every code an HTTP answer of chatgate can carry, declared once, with its
// status and default message. Handlers return these entries (a message made more precise with
// WithMessage, the fields at fault with WithFields); services return their own domain errors, which
// the HTTP layer of their package maps to an entry. catalogue_test.go checks that codes are unique
// and that no other file makes up an error code.
var (
	// Plumbing: requests that cannot be read, routed or served.
	ErrRouteNotFound        = def(http.StatusNotFound, "route_not_found", "no such path")
	ErrMethodNotAllowed     = def(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this path")
	ErrBodyTooLarge         = def(http.StatusRequestEntityTooLarge, "body_too_large", "request body is over the limit")
	ErrHeaderTooLarge       = def(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "request headers are over the limit")
	ErrBadRequest           = def(http.StatusBadRequest, "bad_request", "the request could not be read")
	ErrInvalidJSON          = def(http.StatusBadRequest, "invalid_json", "the body is not valid JSON")
	ErrDuplicateKey         = def(http.StatusBadRequest, "duplicate_key", "an object names the same field twice (field names are matched regardless of case)")
	ErrUnsupportedMedia     = def(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	ErrValidation           = def(http.StatusUnprocessableEntity, "validation_failed", "some fields are invalid")
	ErrBadID                = def(http.StatusBadRequest, "invalid_id", "ids are letters and digits")
	ErrRateLimited          = def(http.StatusTooManyRequests, "rate_limited", "too many requests; retry later")
	ErrUnavailable          = def(http.StatusServiceUnavailable, "unavailable", "the store is unreachable; retry later")
	ErrNotReady             = def(http.StatusServiceUnavailable, "not_ready", "the process should not receive traffic yet")
	ErrTimeout              = def(http.StatusRequestTimeout, "timeout", "the request took too long")
	ErrInternal             = def(http.StatusInternalServerError, "internal", "internal error")
	ErrTooManyConnections   = def(http.StatusServiceUnavailable, "too_many_connections", "this server holds as many connections as it may; retry")
	ErrTooManyStreams       = def(http.StatusServiceUnavailable, "stream_capacity_reached", "this server holds as many event streams as it may; retry in a moment")
	ErrTooManyStreamsFromIP = def(http.StatusTooManyRequests, "too_many_streams_from_ip", "this address holds as many event streams as it may; close one first")

	// Who is calling: agents' and operators' tokens, the development sign-in.
	ErrInvalidToken     = def(http.StatusUnauthorized, "invalid_token", "the Bearer token is missing, expired or not signed by this gateway")
	ErrForbidden        = def(http.StatusForbidden, "forbidden", "you may act only on yourself")
	ErrRoleRequired     = def(http.StatusForbidden, "role_required", "this needs a higher role")
	ErrDevAgentOnly     = def(http.StatusForbidden, "dev_signin_agent_only", "the development sign-in mints agent tokens only; mint others with `chatgate token --agent ID --role ROLE`")
	ErrDevLoopbackOnly  = def(http.StatusForbidden, "dev_signin_loopback_only", "the development sign-in answers only clients on this host, reached directly")
	ErrAgentNotFound    = def(http.StatusNotFound, "agent_not_found", "no such agent")
	ErrInvalidLastEvent = def(http.StatusBadRequest, "invalid_last_event_id", "Last-Event-ID must be an id this stream sent")

	// Presence: channels, pauses and their history.
	ErrChannelNotEnabled = def(http.StatusForbidden, "channel_not_enabled", "the agent is not enabled for this channel")
	ErrInvalidState      = def(http.StatusBadRequest, "invalid_state", `state must be "online", "offline" or "paused"`)
	ErrInvalidReason     = def(http.StatusUnprocessableEntity, "invalid_reason", "a pause needs a reason from GET /v1/pause-reasons")
	ErrChannelOffline    = def(http.StatusConflict, "channel_offline", "log in to the channel before pausing it")
	ErrInvalidDay        = def(http.StatusBadRequest, "invalid_day", "day must be YYYY-MM-DD")
	ErrInvalidRange      = def(http.StatusBadRequest, "invalid_range", "from and to must be RFC 3339 times, from not after to")

	// Reports.
	ErrInvalidReportQuery = def(http.StatusBadRequest, "invalid_report_query", "the report's period, filters, grouping or page are not valid")

	// Routing: cards and conversations.
	ErrCardNotFound         = def(http.StatusNotFound, "card_not_found", "no such card")
	ErrNotYourCard          = def(http.StatusForbidden, "not_your_card", "the card is not offered to or held by you")
	ErrCardState            = def(http.StatusConflict, "card_state", "the card is not in a state that allows this")
	ErrCardNotAccepted      = def(http.StatusConflict, "card_not_accepted", "accept the conversation's card before replying")
	ErrConversationNotFound = def(http.StatusNotFound, "conversation_not_found", "no such conversation")
	ErrNotYourConversation  = def(http.StatusForbidden, "not_your_conversation", "the conversation is not assigned to you")
	ErrConversationClosed   = def(http.StatusConflict, "conversation_closed", "the conversation is closed")
	ErrChannelNotSupported  = def(http.StatusUnprocessableEntity, "channel_not_supported", "this channel does not support this")

	// Running the floor: transfers and wrap-up.
	ErrAgentNotAvailable = def(http.StatusConflict, "agent_not_available", "the agent cannot take the conversation now (offline, paused, wrapping up or without room on the channel)")
	ErrNoWrapUp          = def(http.StatusConflict, "no_wrap_up", "no wrap-up is running on this channel")

	// Outbound: new conversations and replies.
	ErrNotLoggedIn        = def(http.StatusConflict, "whatsapp_not_logged_in", "log in on WhatsApp to start a conversation")
	ErrAtCapacity         = def(http.StatusConflict, "agent_at_capacity", "you are at your WhatsApp capacity; close a conversation first")
	ErrConversationTaken  = def(http.StatusConflict, "conversation_taken", "the customer already has an open conversation with someone else on this number")
	ErrWindowClosed       = def(http.StatusUnprocessableEntity, "window_closed", "the customer's 24-hour service window is closed; start a new conversation with an approved template (POST /v1/conversations)")
	ErrBadIdempotencyKey  = def(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key is 1 to 255 visible ASCII characters")
	ErrIdempotencyRunning = def(http.StatusConflict, "idempotency_in_progress", "a request with this Idempotency-Key is still being processed")
	ErrIdempotencyReused  = def(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used with a different request")

	// Webhooks and the WebChat widget.
	ErrInvalidSignature      = def(http.StatusUnauthorized, "invalid_signature", "the request is not signed by the provider")
	ErrVerificationFailed    = def(http.StatusForbidden, "verification_failed", "the verification token does not match")
	ErrTooManyAttachments    = def(http.StatusRequestEntityTooLarge, "too_many_attachments", "the message has too many attachments")
	ErrMessageTooLong        = def(http.StatusRequestEntityTooLarge, "message_too_long", "the message text is over the limit")
	ErrUnknownSite           = def(http.StatusNotFound, "unknown_site", "the site is not configured")
	ErrOriginNotAllowed      = def(http.StatusForbidden, "origin_not_allowed", "this origin may not use the chat of this site")
	ErrInvalidVisitorToken   = def(http.StatusUnauthorized, "invalid_visitor_token", "the visitor token is missing, expired or not issued by this gateway")
	ErrInvalidEventID        = def(http.StatusBadRequest, "invalid_event_id", "Last-Event-ID is not an event id")
	ErrTooManyVisitorStreams = def(http.StatusTooManyRequests, "too_many_streams", "this visitor has too many open event streams; close one")

	// Operations: asynq's queues and tasks.
	ErrQueueNotFound = def(http.StatusNotFound, "queue_not_found", "no such task queue")
	ErrTaskNotFound  = def(http.StatusNotFound, "task_not_found", "no such task in this queue")
	ErrTaskState     = def(http.StatusConflict, "task_state", "a running task cannot be run or deleted; a pending one is already due")

	// Integrations: event subscriptions, their dead letters and replays; transcripts.
	ErrSubscriptionNotFound  = def(http.StatusNotFound, "subscription_not_found", "no such event subscription")
	ErrSubscriptionDisabled  = def(http.StatusConflict, "subscription_disabled", "the subscription is disabled (its receiver answered 410 Gone); enable it first")
	ErrDeadLetterNotFound    = def(http.StatusNotFound, "dead_letter_not_found", "no such dead-lettered event for this subscription")
	ErrInvalidSince          = def(http.StatusBadRequest, "invalid_since", `since must be an RFC 3339 time, e.g. {"since":"2026-01-02T15:04:05Z"}`)
	ErrInvalidTranscriptType = def(http.StatusBadRequest, "invalid_format", `format must be "json" or "text"`)
	// Media: customers' files and agents' uploads.
	ErrMessageNotFound  = def(http.StatusNotFound, "message_not_found", "no such message")
	ErrNoMedia          = def(http.StatusNotFound, "media_not_found", "the message carries no file held by the provider")
	ErrMediaExpired     = def(http.StatusGone, "media_expired", "the provider no longer holds this file (WhatsApp keeps customers' media for a limited time)")
	ErrMediaMismatch    = def(http.StatusBadGateway, "media_mismatch", "the file the provider served does not match its size or checksum; it was not served")
	ErrMediaUnavailable = def(http.StatusBadGateway, "media_unavailable", "the provider could not be reached for this file; retry")
	ErrInvalidMediaLink = def(http.StatusForbidden, "invalid_media_link", "the media link is expired or not signed by this gateway")
	ErrMediaTooLarge    = def(http.StatusRequestEntityTooLarge, "media_too_large", "the file is over WhatsApp's limit for its kind")
	ErrMediaTypeRefused = def(http.StatusUnsupportedMediaType, "media_type_not_accepted", "WhatsApp does not accept this type of file for its kind")
	ErrProviderRefused  = def(http.StatusBadGateway, "provider_refused", "the provider refused the request")
)

// catalogue lists the entries in declaration order, for the tests and for documentation.
var catalogue []*Error

// def declares one catalogue entry; nothing outside this file builds a code.
func def(status int, code, message string) *Error {
	e := &Error{Status: status, Code: code, Message: message}
	catalogue = append(catalogue, e)
	return e
}

// Catalogue returns every declared error, in declaration order.
func Catalogue() []Error {
	out := make([]Error, len(catalogue))
	for i, e := range catalogue {
		out[i] = *e
	}
	return out
}
