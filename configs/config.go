// Package configs holds chatgate's configuration: its shape, the strict loader, environment overrides
// and validation. The annotated example is chatgate.yaml beside this file.
package configs

import (
	"time"
)

// Config is the whole configuration file. Keys may grow; existing keys keep their names (operators rely on them).
type Config struct {
	Listen        string        `yaml:"listen" validate:"required,hostname_port"`
	Env           string        `yaml:"env" validate:"omitempty,oneof=development production"`
	Tenant        string        `yaml:"tenant" validate:"required,max=64,safeid"`
	ShutdownGrace time.Duration `yaml:"shutdown_grace" validate:"gte=0"`
	// ShutdownDelay, part of the grace, is how long /readyz answers 503 while requests are still
	// accepted, so that a load balancer stops sending before the listener closes.
	ShutdownDelay time.Duration `yaml:"shutdown_delay" validate:"gte=0"`
	Log           Log           `yaml:"log"`
	Redis         Redis         `yaml:"redis"`
	HTTP          HTTP          `yaml:"http"`
	Auth          Auth          `yaml:"auth"`
	Presence      Presence      `yaml:"presence"`
	Reports       Reports       `yaml:"reports"`
	Events        Events        `yaml:"events"`
	Outbound      Outbound      `yaml:"outbound"`
	PauseReasons  []PauseReason `yaml:"pause_reasons" validate:"required,min=1,dive"`
	Queues        []Queue       `yaml:"queues" validate:"required,min=1,dive"`
	Agents        []Agent       `yaml:"agents" validate:"dive"`
	WhatsApp      WhatsApp      `yaml:"whatsapp"`
	WebChat       WebChat       `yaml:"webchat"`
	Integrations  Integrations  `yaml:"integrations"`
	Retention     Retention     `yaml:"retention"`
	Media         Media         `yaml:"media"`
}

// Retention bounds how long Redis keeps conversations.
type Retention struct {
	// ClosedConversations: a closed conversation, its messages, card and indexes are deleted this long
	// after closing (default 7 days), but never before the integration outlet acknowledged its events.
	ClosedConversations time.Duration `yaml:"closed_conversations" validate:"gte=0"`
	// IdleClose: an open conversation silent this long is closed with reason idle (default 24 h; an
	// explicit 0 turns it off).
	IdleClose *time.Duration `yaml:"idle_close" validate:"omitempty,gte=0"`
}

// IdleCloseAfter is IdleClose with its default (0: off).
func (r Retention) IdleCloseAfter() time.Duration {
	if r.IdleClose == nil {
		return 24 * time.Hour
	}
	return *r.IdleClose
}

// Media configures customers' files: the per-replica disk cache of downloads, the largest upload
// an agent may send, and the key of the signed links integrations fetch media with.
type Media struct {
	// CacheDir holds downloaded files (default: chatgate-media in the system's temporary directory).
	CacheDir string `yaml:"cache_dir"`
	// CacheMaxBytes bounds the cache; the least recently used files go first (default 256 MiB).
	CacheMaxBytes int64 `yaml:"cache_max_bytes" validate:"gte=0"`
	// UploadLimit bounds the body of a multipart reply (default 101 MiB: Meta's largest document
	// and room for the form).
	UploadLimit int `yaml:"upload_limit" validate:"gte=0"`
	// LinkKey signs the time-limited media links (at least 32 characters); required in production,
	// generated per process in development.
	LinkKey string `yaml:"link_key" validate:"omitempty,min=32"`
	// LinkTTL is how long a signed link given to integrations stays valid (default 24h).
	LinkTTL time.Duration `yaml:"link_ttl" validate:"gte=0"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level" validate:"omitempty,oneof=debug info warn error"`
	Format string `yaml:"format" validate:"omitempty,oneof=text json"`
}

// Redis selects the store. An empty URL and no addresses mean the embedded in-memory store.
type Redis struct {
	// URL is redis://, rediss:// or unix:// for one server.
	URL string `yaml:"url" validate:"omitempty,url"`
	// Addrs lists cluster nodes, or sentinels when MasterName is set.
	Addrs      []string `yaml:"addrs" validate:"dive,hostname_port"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	Password   string   `yaml:"password"`
	PoolSize   int      `yaml:"pool_size" validate:"gte=0"`
	// TLSCAFile is a PEM file of the CA that signed the server's certificate, for rediss:// to a
	// server with a private CA (empty: the system's roots).
	TLSCAFile string `yaml:"tls_ca_file"`
}

// Embedded reports whether no external Redis is configured.
func (r Redis) Embedded() bool { return r.URL == "" && len(r.Addrs) == 0 }

// HTTP bounds what one request may cost.
type HTTP struct {
	BodyLimit int `yaml:"body_limit" validate:"gte=0"`
	// WhatsAppBodyLimit is POST /webhooks/whatsapp's own limit: Meta's notifications reach 3 MB.
	WhatsAppBodyLimit int           `yaml:"whatsapp_body_limit" validate:"gte=0"`
	HeaderLimit       int           `yaml:"header_limit" validate:"gte=0"`
	ReadTimeout       time.Duration `yaml:"read_timeout" validate:"gte=0"`
	WriteTimeout      time.Duration `yaml:"write_timeout" validate:"gte=0"`
	IdleTimeout       time.Duration `yaml:"idle_timeout" validate:"gte=0"`
	MaxConnections    int           `yaml:"max_connections" validate:"gte=0"`
	// MaxStreamsPerIP bounds the event streams (agents' and visitors') one client address holds open
	// in one process; every stream also counts against MaxConnections.
	MaxStreamsPerIP int `yaml:"max_streams_per_ip" validate:"gte=0"`
	// TrustedProxies are the addresses (IPs or CIDRs) of the load balancers in front of the gateway;
	// only a request from one of them has its client address read from ProxyHeader.
	TrustedProxies []string `yaml:"trusted_proxies" validate:"dive,cidr|ip"`
	// ProxyHeader names the header that carries the client's address, one the proxy overwrites
	// (X-Real-IP) rather than appends to, since a client can start an X-Forwarded-For list itself.
	ProxyHeader string `yaml:"proxy_header" validate:"required_with=TrustedProxies,excluded_without=TrustedProxies,omitempty,max=64"`
}

// Auth configures the agents' Bearer JWTs (HS256).
type Auth struct {
	JWTSecret string `yaml:"jwt_secret" validate:"required,min=8"`
	// PreviousJWTSecret is still accepted for verification while secrets rotate.
	PreviousJWTSecret string        `yaml:"previous_jwt_secret"`
	Issuer            string        `yaml:"issuer"`
	DefaultTTL        time.Duration `yaml:"default_ttl" validate:"gte=0"`
	// MaxTokenTTL refuses tokens that live longer (exp − iat, or exp − now without iat).
	MaxTokenTTL time.Duration `yaml:"max_token_ttl" validate:"gte=0"`
}

// Presence tunes liveness and history.
type Presence struct {
	// DisconnectGrace is how long an agent's event stream may be gone before it is logged out.
	DisconnectGrace  time.Duration `yaml:"disconnect_grace" validate:"gte=0"`
	ReaperInterval   time.Duration `yaml:"reaper_interval" validate:"gte=0"`
	HistoryRetention time.Duration `yaml:"history_retention" validate:"gte=0"`
}

// Reports configures the contact center's reports.
type Reports struct {
	// Timezone (IANA name) draws the reports' days and hours; empty: America/Sao_Paulo.
	Timezone string `yaml:"timezone" validate:"omitempty,timezone"`
	// DetailRetention keeps one row per closed conversation (the listing, summary and quantitative
	// reports read them).
	DetailRetention time.Duration `yaml:"detail_retention" validate:"gte=0"`
	// SummaryRetention keeps the daily aggregates (the summary beyond the detail retention).
	SummaryRetention time.Duration `yaml:"summary_retention" validate:"gte=0"`
}

// Events tunes the agents' event streams.
type Events struct {
	// MaxLen bounds each agent's stream, and so how far back a reconnecting stream can resume with
	// Last-Event-ID.
	MaxLen    int64         `yaml:"max_len" validate:"gte=0"`
	KeepAlive time.Duration `yaml:"keep_alive" validate:"gte=0"`
	// RemovedRetention (events.retention) was never read: MaxLen alone bounds resumption. It is still
	// accepted so that configurations written for earlier versions load; Deprecations names it.
	RemovedRetention *time.Duration `yaml:"retention"`
}

// Outbound tunes the asynq workers.
type Outbound struct {
	Concurrency int `yaml:"concurrency" validate:"gte=0"`
	MaxRetry    int `yaml:"max_retry" validate:"gte=0"`
	// RecipientInterval is the minimum gap between two sends to the same customer.
	RecipientInterval time.Duration `yaml:"recipient_interval" validate:"gte=0"`
	SendTimeout       time.Duration `yaml:"send_timeout" validate:"gte=0"`
	// RetryBase and RetryMax bound the backoff of a failed send: about RetryBase·2ⁿ with jitter,
	// at most RetryMax (a provider's Retry-After wins when it gives one).
	RetryBase time.Duration `yaml:"retry_base" validate:"gte=0"`
	RetryMax  time.Duration `yaml:"retry_max" validate:"gte=0"`
}

// PauseReason is one entry of the pause catalogue. Label is the default; Labels, optional, gives it
// per console language (pt-BR, en), so each agent reads the reason in the language it chose.
type PauseReason struct {
	ID     string            `yaml:"id" json:"id" validate:"required,max=64,safeid"`
	Label  string            `yaml:"label" json:"label" validate:"required,max=200"`
	Labels map[string]string `yaml:"labels" json:"labels,omitempty" validate:"omitempty,dive,keys,oneof=pt-BR en,endkeys,required,max=200"`
}

// Queue is an attendance queue and the channels attached to it.
type Queue struct {
	ID           string        `yaml:"id" validate:"required,max=64,safeid"`
	Name         string        `yaml:"name"`
	Channels     []string      `yaml:"channels" validate:"required,min=1,dive,channel"`
	Strategy     string        `yaml:"strategy" validate:"omitempty,oneof=longest_idle least_busy round_robin"`
	OfferTimeout time.Duration `yaml:"offer_timeout" validate:"gte=0"`
	// NoAnswerLimit offers in a row left to time out pause the agent with reason no_answer (0: never).
	NoAnswerLimit int `yaml:"no_answer_limit" validate:"gte=0"`
	// ReofferAfter is how long after an agent refused a card (declined or let the offer time out) the
	// card may go to that agent again, when no eligible agent that never refused it is left. Unset: 1m;
	// it cannot be turned off, so no customer waits for ever beside an agent with room.
	ReofferAfter time.Duration `yaml:"reoffer_after" validate:"gte=0"`
	// MaxWait, when set, ends a wait with MaxWaitAction: keep (only reported), close (with
	// MaxWaitMessage) or overflow (the card goes first in line in OverflowQueue).
	MaxWait        time.Duration `yaml:"max_wait" validate:"gte=0"`
	MaxWaitAction  string        `yaml:"max_wait_action" validate:"omitempty,oneof=keep close overflow"`
	MaxWaitMessage string        `yaml:"max_wait_message" validate:"max=4096"`
	OverflowQueue  string        `yaml:"overflow_queue" validate:"omitempty,max=64,safeid"`
	// NoAgentsMessage is sent to a customer who writes while nobody is logged in on the channel.
	NoAgentsMessage string `yaml:"no_agents_message" validate:"max=4096"`
	// Dispositions are the outcomes an agent records when closing a conversation ("tabulação");
	// RequireDisposition refuses a close without one.
	Dispositions       []Disposition `yaml:"dispositions" validate:"dive"`
	RequireDisposition bool          `yaml:"require_disposition"`
	// WrapUp is the after-conversation work time: after closing a conversation it accepted, the
	// agent takes no new offer on that channel for this long, or until it ends the wrap-up itself.
	WrapUp time.Duration `yaml:"wrap_up" validate:"gte=0,lte=24h"`
	// FirstResponseTimeout, when set, flags a conversation accepted without an agent message for this
	// long (conversation.unanswered); FirstResponseAction requeue also puts it back first in line.
	FirstResponseTimeout time.Duration `yaml:"first_response_timeout" validate:"gte=0"`
	FirstResponseAction  string        `yaml:"first_response_action" validate:"omitempty,oneof=notify requeue"`
	// ServiceLevel is the wait within which a conversation counts as answered in time (reports).
	ServiceLevel time.Duration `yaml:"service_level" validate:"gte=0"`

	// ---- Business hours and the customer's place in line (issue 17) ----

	// Hours, when set, are the queue's business hours; without them the queue is always open.
	Hours *Hours `yaml:"hours"`
	// ClosedMessage is sent at once to a customer who writes while the queue is closed, once per
	// conversation and closed period; ClosedAction then keeps the card waiting for the opening (wait,
	// the default) or closes the conversation with closed_by out_of_hours (close).
	ClosedMessage string `yaml:"closed_message" validate:"max=4096"`
	ClosedAction  string `yaml:"closed_action" validate:"omitempty,oneof=wait close"`
	// PositionMessage ({{position}}, {{estimated_wait}}) tells a waiting customer its place in line
	// after PositionAfter of waiting, then every PositionEvery while the place changes.
	// PositionLanguage words the estimate (pt-BR, the default, or en).
	PositionMessage  string        `yaml:"position_message" validate:"max=4096"`
	PositionAfter    time.Duration `yaml:"position_after" validate:"gte=0"`
	PositionEvery    time.Duration `yaml:"position_every" validate:"gte=0"`
	PositionLanguage string        `yaml:"position_language" validate:"omitempty,oneof=pt-BR en"`
}

// Disposition is one outcome of a queue's conversations. Label is the default; Labels, optional,
// gives it per console language (pt-BR, en), as for pause reasons.
type Disposition struct {
	ID     string            `yaml:"id" json:"id" validate:"required,max=64,safeid"`
	Label  string            `yaml:"label" json:"label" validate:"required,max=200"`
	Labels map[string]string `yaml:"labels" json:"labels,omitempty" validate:"omitempty,dive,keys,oneof=pt-BR en,endkeys,required,max=200"`
}

// Disposition returns the queue's disposition with that id.
func (q Queue) Disposition(id string) (Disposition, bool) {
	for _, d := range q.Dispositions {
		if d.ID == id {
			return d, true
		}
	}
	return Disposition{}, false
}

// Agent is a configured agent and the channels enabled for it.
type Agent struct {
	ID       string                  `yaml:"id" validate:"required,max=64,safeid"`
	Name     string                  `yaml:"name" validate:"max=200"`
	Queues   []string                `yaml:"queues" validate:"required,min=1,dive,safeid"`
	Channels map[string]AgentChannel `yaml:"channels" validate:"required,min=1,dive,keys,channel,endkeys"`
}

// AgentChannel is an agent's setting on one channel.
type AgentChannel struct {
	Capacity int `yaml:"capacity" validate:"gte=1,lte=1000"`
}

// WhatsApp configures the Cloud API webhooks and sending numbers.
type WhatsApp struct {
	AppSecret string `yaml:"app_secret"`
	// PreviousAppSecret is accepted on incoming signatures while the app secret rotates.
	PreviousAppSecret string     `yaml:"previous_app_secret"`
	VerifyToken       string     `yaml:"verify_token"`
	APIBaseURL        string     `yaml:"api_base_url" validate:"omitempty,url"`
	APIVersion        string     `yaml:"api_version" validate:"omitempty,startswith=v"`
	BusinessAccountID string     `yaml:"business_account_id"`
	Numbers           []Number   `yaml:"numbers" validate:"dive"`
	Templates         []Template `yaml:"templates" validate:"dive"`
}

// Number is a WhatsApp sending number (an entry point of a queue).
type Number struct {
	PhoneNumberID string `yaml:"phone_number_id" validate:"required,numeric,max=32"`
	Queue         string `yaml:"queue" validate:"required,safeid"`
	AccessToken   string `yaml:"access_token"`
	RatePerSecond int    `yaml:"rate_per_second" validate:"gte=0,lte=1000"`
}

// Template is an approved message template and the parameters it takes.
type Template struct {
	Name         string `yaml:"name" validate:"required,max=512"`
	Language     string `yaml:"language" validate:"required,max=16"`
	Category     string `yaml:"category" validate:"omitempty,oneof=MARKETING UTILITY AUTHENTICATION marketing utility authentication"`
	Text         string `yaml:"text"`
	HeaderParams int    `yaml:"header_params" validate:"gte=0,lte=1"`
	BodyParams   int    `yaml:"body_params" validate:"gte=0,lte=100"`
	ButtonParams int    `yaml:"button_params" validate:"gte=0,lte=10"`
	// ButtonKind is how the template's parameterised buttons take their value: url (a suffix of the
	// button's link, the default) or quick_reply (a payload returned with the customer's tap).
	ButtonKind string `yaml:"button_kind" validate:"omitempty,oneof=url quick_reply"`
}

// WebChat configures the sites that talk to the gateway.
type WebChat struct {
	TimestampTolerance time.Duration `yaml:"timestamp_tolerance" validate:"gte=0"`
	VisitorTokenTTL    time.Duration `yaml:"visitor_token_ttl" validate:"gte=0"`
	MaxMessageLength   int           `yaml:"max_message_length" validate:"gte=0"`
	MaxAttachments     int           `yaml:"max_attachments" validate:"gte=0,lte=20"`
	VisitorRate        int           `yaml:"visitor_rate_per_minute" validate:"gte=0"`
	IPRate             int           `yaml:"ip_rate_per_minute" validate:"gte=0"`
	Sites              []Site        `yaml:"sites" validate:"dive"`
}

// Site is a website whose visitors chat through the gateway.
type Site struct {
	ID             string   `yaml:"id" validate:"required,max=64,safeid"`
	Queue          string   `yaml:"queue" validate:"required,safeid"`
	Secret         string   `yaml:"secret" validate:"required,min=8"`
	PreviousSecret string   `yaml:"previous_secret"`
	AllowedOrigins []string `yaml:"allowed_origins" validate:"dive,url"`
	// CallbackURL receives agents' replies, signed like the webhook, for sites with their own front end.
	CallbackURL string `yaml:"callback_url" validate:"omitempty,url"`
}

// Development placeholders shipped in the example file carry this marker; production refuses them.
const devSecretMarker = "dev-only"

// Environments. Without an explicit development the gateway is production: a missing setting never
// opens the development sign-in or accepts the example's secrets.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Deprecations names the settings the configuration gives that nothing reads any more; the gateway
// logs each as a warning at start-up.
func (c *Config) Deprecations() []Problem {
	var ps []Problem
	if c.Events.RemovedRetention != nil {
		ps = append(ps, Problem{"events.retention", "is ignored and will be refused by a later version: nothing read it; " +
			"events.max_len bounds how far back a stream resumes. Remove it"})
	}
	return ps
}

// Development reports whether the configuration explicitly asked for development.
func (c *Config) Development() bool { return c.Env == EnvDevelopment }
