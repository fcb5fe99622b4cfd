package routing

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/sse"
)

// Heartbeater records that an agent's client is alive (presence.Store satisfies it).
type Heartbeater interface {
	Heartbeat(ctx context.Context, agent string) error
}

// StreamsOptions tune the live streams.
type StreamsOptions struct {
	Logger    *slog.Logger
	KeepAlive time.Duration
	Heartbeat Heartbeater
	// Known reports whether an agent exists; unknown agents get 404.
	Known func(agent string) bool
}

// Streams serves the agents' Server-Sent Events over the shared event-stream hub (internal/sse): one
// Redis subscription per process carries every agent's announcements to the agent's open streams, and
// a client that reconnects with Last-Event-ID, to this replica or another, first gets what it missed
// from the agent's Redis STREAM, then live events, never twice.
type Streams struct {
	log  *StreamLog
	opts StreamsOptions
	hub  *sse.Hub
}

// NewStreams builds the streams over the event log.
func NewStreams(log *StreamLog, opts StreamsOptions) *Streams {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	opts.Logger = opts.Logger.With("component", "streams")
	return &Streams{log: log, opts: opts, hub: sse.NewHub(log.log, sse.HubOptions{Logger: opts.Logger, KeepAlive: opts.KeepAlive})}
}

// Start subscribes this process to the tenant's event channel.
func (s *Streams) Start() error { return s.hub.Start() }

// Shutdown ends every open stream (clients resume elsewhere with Last-Event-ID) and unsubscribes.
func (s *Streams) Shutdown() { s.hub.Shutdown() }

// Open reports how many streams this process holds (for metrics and tests).
func (s *Streams) Open() int { return s.hub.Open() }

// Handler is GET /v1/agents/:id/events (mount it behind the auth middleware).
func (s *Streams) Handler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		agent, err := auth.Subject(c, c.Params("id"))
		if err != nil {
			return err
		}
		if s.opts.Known != nil && !s.opts.Known(agent) {
			return errAgentNotFound
		}
		last, ok := sse.LastEventID(c)
		if !ok {
			return errBadEventID
		}
		expires := auth.Caller(c).ExpiresAt
		return s.hub.Serve(c, sse.Stream{Subscriber: agent, Key: s.log.keys.events(agent), Last: last, ResetWhenTrimmed: true,
			Expires: expires,
			Expired: func() sse.Event {
				s.opts.Logger.Info("event stream ended at its token's expiry", "agent", agent)
				return sse.Event{Type: EventSessionExpired, Data: `{"type":"` + EventSessionExpired + `","at":"` +
					time.Now().UTC().Format(time.RFC3339Nano) + `","message":"the token has expired: sign in again and reconnect with Last-Event-ID"}`}
			},
			// A stream must not keep the agent's presence alive past its credentials.
			Alive: func() {
				if expires.IsZero() || time.Now().Before(expires) {
					s.heartbeat(agent)
				}
			}})
	}
}

// EventSessionExpired is the last event of a stream whose token expired: the client signs in again
// and reconnects with Last-Event-ID (the event has no id, so the client's last id stays put). A
// stream must not carry customers' messages past its credentials.
const EventSessionExpired = "session.expired"

func (s *Streams) heartbeat(agent string) {
	if s.opts.Heartbeat == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.opts.Heartbeat.Heartbeat(ctx, agent); err != nil {
		s.opts.Logger.Debug("heartbeat failed", "agent", agent, "err", err)
	}
}
