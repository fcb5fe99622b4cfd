// Package integrations hands the gateway's events to the systems of record: each configured
// subscription (integrations.webhooks) receives the events it wants as signed POSTs (Standard
// Webhooks), durably, at least once, and in order per conversation.
//
// The path of an event: a routing script that changes state appends a reference to the tenant's
// outbox stream in the same atomic step (internal/outbox). One dispatcher at a time (a lease in
// Redis) reads the outbox in order, writes each event's body once (retained for replays), and in one
// script per batch pushes the event's id on the ordered list of every subscription that wants it —
// one list per subscription and conversation — and advances its cursor. A list that was empty gets
// an asynq task (a "chain") that delivers the list head by head: the next event of a conversation
// is sent only once the one before was acknowledged with a 2xx, or dead-lettered after max_age.
// Each subscription has its own asynq queue and server (own workers), so a slow or failing receiver
// holds up neither the gateway nor the other subscriptions.
package integrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatgate/chatgate/internal/medialink"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/tasks"
)

// TaskType is the asynq task that delivers one chain (a subscription's list of one conversation).
const TaskType = "integrations:deliver"

// QueuePrefix names a subscription's asynq queue: integrations.<id>.
const QueuePrefix = "integrations."

// Options tune the service; zero values take the defaults.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Registerer takes the metrics (nil: none).
	Registerer prometheus.Registerer
	// PublicURL, MediaURLTTL, TranscriptInline, RetainEvents: see configs.Integrations.
	PublicURL        string
	MediaURLTTL      time.Duration
	TranscriptInline int
	RetainEvents     time.Duration
	// MediaLinks signs the links to customers' files that events carry (media.link_key: the key the
	// media endpoint checks); nil leaves media_url out.
	MediaLinks *medialink.Signer
	// RetryBase and RetryMax bound the backoff between attempts: about RetryBase·2ⁿ with jitter, at
	// most RetryMax (defaults 1 s and 10 min). A receiver's Retry-After wins.
	RetryBase, RetryMax time.Duration
	// UnhealthyAfter is how many failed attempts in a row mark a subscription unhealthy (default 5).
	UnhealthyAfter int
	// Lease is the dispatcher's lease (default 10 s); a dead dispatcher is replaced within it.
	Lease time.Duration
	// SweepEvery is how often chains are checked to have their task (default 15 s).
	SweepEvery time.Duration
	// HTTPClient sends the requests (default: a client per subscription with its timeout).
	Transport http.RoundTripper
	// NoWorkers leaves the delivery workers off in this process (it dispatches only).
	NoWorkers bool
}

// subscription is one configured webhook, ready to sign and send.
type subscription struct {
	configs.Webhook
	events, queues []string
	signer         *Signer
	client         *http.Client
	server         *asynq.Server
	idle           *tasks.IdleWait
	okAt           atomic.Int64 // when this process last recorded a success (unix ns; 0: after a failure)
}

// Service is the integrations of one tenant: dispatcher, delivery workers, operations.
type Service struct {
	client redis.UniversalClient
	ks     keyspace.Space
	keys   keys
	src    Source
	opts   Options
	logger *slog.Logger
	// prepared: the outbox flag and the removed subscriptions were handled (Start, or a later sweep).
	prepared atomic.Bool
	clock    clock.Clock
	enqueuer *asynq.Client
	subs     map[string]*subscription
	order    []string
	metrics  *metrics
	token    string

	stop chan struct{}
	wg   sync.WaitGroup
}

// New builds the service for the configured subscriptions.
func New(client redis.UniversalClient, ks keyspace.Space, src Source, cfg configs.Integrations, o Options) (*Service, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Minute
	}
	if o.UnhealthyAfter <= 0 {
		o.UnhealthyAfter = 5
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Second
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 15 * time.Second
	}
	o.PublicURL = firstNonEmpty(o.PublicURL, cfg.PublicURL)
	if o.MediaURLTTL <= 0 {
		o.MediaURLTTL = max(cfg.MediaURLTTL, time.Minute)
	}
	if o.TranscriptInline <= 0 {
		o.TranscriptInline = max(cfg.TranscriptInline, 1)
	}
	if o.RetainEvents <= 0 {
		o.RetainEvents = max(cfg.RetainEvents, time.Hour)
	}
	s := &Service{client: client, ks: ks, keys: keys{ks}, src: src, opts: o, clock: o.Clock,
		logger:   o.Logger.With("component", "integrations"),
		enqueuer: asynq.NewClientFromRedisClient(client), subs: map[string]*subscription{}, stop: make(chan struct{}),
		token: newToken()}
	for _, w := range cfg.Webhooks {
		signer, err := NewSigner(w.Secret, w.PreviousSecret)
		if err != nil {
			return nil, fmt.Errorf("integrations.webhooks %s: %w", w.ID, err)
		}
		transport := o.Transport
		if transport == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConnsPerHost = max(w.Workers, 2)
			transport = t
		}
		s.subs[w.ID] = &subscription{Webhook: w, events: w.Events, queues: w.Queues, signer: signer,
			client: &http.Client{Timeout: w.Timeout, Transport: transport,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		s.order = append(s.order, w.ID)
	}
	s.metrics = newMetrics(s, o.Registerer)
	return s, nil
}

// Queues are the asynq queues of the subscriptions (for the operations view).
func (s *Service) Queues() []string {
	out := make([]string, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, QueuePrefix+id)
	}
	return out
}

// Start turns the outbox on (or off, with no subscription), forgets subscriptions no longer
// configured, and starts the dispatcher, the sweeper and the workers. Redis being unreachable does
// not stop the gateway from starting: the preparation is tried again until it succeeds.
func (s *Service) Start() error {
	if err := s.prepare(context.Background()); err != nil {
		s.logger.Warn("integrations not prepared yet (Redis); trying again", "err", err)
	} else {
		s.prepared.Store(true)
	}
	if len(s.subs) == 0 {
		if !s.prepared.Load() {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				for !s.prepared.Load() && sleep(s.stop, time.Second) {
					if s.prepare(context.Background()) == nil {
						s.prepared.Store(true)
					}
				}
			}()
		}
		return nil
	}
	if !s.opts.NoWorkers {
		for _, id := range s.order {
			if err := s.startWorkers(s.subs[id]); err != nil {
				return err
			}
		}
	}
	s.wg.Add(2)
	go s.dispatchLoop()
	go s.sweepLoop()
	return nil
}

// prepare turns the outbox on or off and forgets removed subscriptions.
func (s *Service) prepare(ctx context.Context) error {
	if len(s.subs) == 0 {
		// Nothing wants events: the routing scripts stop writing them. Entries already in the outbox
		// are left for a later start with subscriptions.
		return s.client.Del(ctx, outbox.OnKey(s.ks)).Err()
	}
	if err := s.forgetRemoved(ctx); err != nil {
		return err
	}
	return s.client.Set(ctx, outbox.OnKey(s.ks), "1", 0).Err()
}

// keepOn runs before each sweep: it finishes a preparation Redis refused at start, and sets the
// outbox's flag again, so a Redis that came back empty (restarted, failed over) resumes writing
// events within one sweep.
func (s *Service) keepOn(ctx context.Context) error {
	if !s.prepared.Load() {
		if err := s.prepare(ctx); err != nil {
			return err
		}
		s.prepared.Store(true)
		return nil
	}
	return s.client.Set(ctx, outbox.OnKey(s.ks), "1", 0).Err()
}

// Shutdown stops dispatching and lets in-flight deliveries finish (asynq hands back the rest).
func (s *Service) Shutdown() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.wg.Wait()
	// End every idle wait first: each server's shutdown waits for its dequeue under way.
	for _, id := range s.order {
		if w := s.subs[id].idle; w != nil {
			w.Close()
		}
	}
	for _, id := range s.order {
		if srv := s.subs[id].server; srv != nil {
			srv.Shutdown()
		}
	}
	// give the lease up so another process takes over at once
	_ = s.client.Eval(context.Background(), `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
		[]string{s.keys.leader()}, s.token).Err()
}

// forgetRemoved drops what Redis still owes to subscriptions no longer configured (releasing their
// holds on conversations) and records the configured ones.
func (s *Service) forgetRemoved(ctx context.Context) error {
	known, err := s.client.SMembers(ctx, s.keys.subs()).Result()
	if err != nil {
		return err
	}
	for _, id := range known {
		if _, ok := s.subs[id]; ok {
			continue
		}
		n, err := dropScript.Run(ctx, s.client, dropArgs{keys: s.keys, sub: id, mode: "removed", now: s.clock.Now().UnixMilli()})
		if err != nil {
			return err
		}
		s.logger.Warn("subscription no longer configured: its undelivered events are dropped", "subscription", id, "dropped", n)
	}
	if len(s.order) == 0 {
		return nil
	}
	members := make([]any, len(s.order))
	for i, id := range s.order {
		members[i] = id
	}
	return s.client.SAdd(ctx, s.keys.subs(), members...).Err()
}

// ---- holds (retention's contract) --------------------------------------------------------------

// Held is how many events of a conversation, summed over subscriptions, are accepted for delivery
// and not yet acknowledged (dead letters included): retention keeps the conversation while it is > 0.
func (s *Service) Held(ctx context.Context, conversationID string) (int64, error) {
	return Held(ctx, s.client, s.ks, conversationID)
}

// Held reads a conversation's hold without a service (for retention).
func Held(ctx context.Context, c redis.UniversalClient, ks keyspace.Space, conversationID string) (int64, error) {
	n, err := c.HGet(ctx, keys{ks}.unacked(), conversationID).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// Holds is how much integrations hold: conversations with unacknowledged events and since when the
// oldest hold began (zero when none).
type Holds struct {
	Conversations int64     `json:"conversations"`
	OldestSince   time.Time `json:"oldest_since,omitzero"`
}

// HeldTotal reads the holds of a tenant.
func HeldTotal(ctx context.Context, c redis.UniversalClient, ks keyspace.Space) (Holds, error) {
	k := keys{ks}
	pipe := c.Pipeline()
	n := pipe.HLen(ctx, k.unacked())
	oldest := pipe.ZRangeWithScores(ctx, k.unackedSince(), 0, 0)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Holds{}, err
	}
	h := Holds{Conversations: n.Val()}
	if z := oldest.Val(); len(z) == 1 {
		h.OldestSince = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	return h, nil
}

// HeldTotal reads the holds of the service's tenant.
func (s *Service) HeldTotal(ctx context.Context) (Holds, error) {
	return HeldTotal(ctx, s.client, s.ks)
}

// ---- Go emitters ---------------------------------------------------------------------------------

// EmitTransferred records a conversation.transferred event. The transfer code calls it right after
// its own script (or, better, writes the same entry from that script with outboxEmit: see
// internal/outbox). data is the event's data: from/to agent or queue, by whom, why.
func EmitTransferred(ctx context.Context, c redis.Scripter, ks keyspace.Space, conversationID string, at time.Time, data map[string]any) error {
	return outbox.Emit(ctx, c, ks, outbox.ConversationTransferred, conversationID, at, map[string]string{outbox.FieldData: mustJSON(data)})
}

// ---- helpers -------------------------------------------------------------------------------------

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func sleep(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// shortErr keeps an error readable in the operations view.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return strings.ToValidUTF8(s, "?")
}
