package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration, located by its YAML path.
type Problem struct {
	Path    string
	Message string
}

// DefaultReofferAfter is how long a refused card waits before it may go to the same agent again.
const DefaultReofferAfter = time.Minute

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every mistake found in one configuration; Load returns all of them together.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// Load reads a YAML file strictly (unknown keys are errors), applies defaults and CHATGATE_*
// environment overrides, and validates the result.
func Load(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(raw, os.LookupEnv)
}

// Parse is Load on bytes with an injectable environment. Decoding problems (unknown keys, values of
// the wrong type) and validation problems are reported together, each with its path; a validation
// problem at or under a value that could not be decoded is left out, as it would only repeat it.
func Parse(raw []byte, env func(string) (string, bool)) (Config, error) {
	var cfg Config
	ps, badPaths, fatal := decodeStrict(raw, &cfg)
	if fatal {
		return Config{}, ps
	}
	cfg.applyEnv(env)
	cfg.applyIntegrationsEnv(env)
	envGiven := cfg.Env != ""
	cfg.applyDefaults()
	cfg.applyIntegrationsDefaults()
	for _, p := range cfg.Validate() {
		if !under(p.Path, badPaths) {
			ps = append(ps, p)
		}
	}
	if !envGiven && len(ps) > 0 {
		ps = append(ps, Problem{"env", "is not set, so the gateway runs as production; for a development setup set env: development (or CHATGATE_ENV=development)"})
	}
	if len(ps) > 0 {
		return cfg, ps
	}
	return cfg, nil
}

func under(path string, prefixes []string) bool {
	for _, pre := range prefixes {
		if path == pre || strings.HasPrefix(path, pre+".") || strings.HasPrefix(path, pre+"[") {
			return true
		}
	}
	return false
}

func (c *Config) applyEnv(env func(string) (string, bool)) {
	set := func(dst *string, name string) {
		if v, ok := env(name); ok {
			*dst = v
		}
	}
	set(&c.Listen, "CHATGATE_LISTEN")
	set(&c.Env, "CHATGATE_ENV")
	set(&c.Redis.URL, "CHATGATE_REDIS_URL")
	set(&c.Redis.Password, "CHATGATE_REDIS_PASSWORD")
	set(&c.Auth.JWTSecret, "CHATGATE_AUTH_JWT_SECRET")
	set(&c.Auth.PreviousJWTSecret, "CHATGATE_AUTH_PREVIOUS_JWT_SECRET")
	set(&c.WhatsApp.AppSecret, "CHATGATE_WHATSAPP_APP_SECRET")
	set(&c.WhatsApp.PreviousAppSecret, "CHATGATE_WHATSAPP_PREVIOUS_APP_SECRET")
	set(&c.WhatsApp.VerifyToken, "CHATGATE_WHATSAPP_VERIFY_TOKEN")
	set(&c.WhatsApp.APIBaseURL, "CHATGATE_WHATSAPP_API_BASE_URL")
	set(&c.Media.LinkKey, "CHATGATE_MEDIA_LINK_KEY")
	set(&c.Media.CacheDir, "CHATGATE_MEDIA_CACHE_DIR")
	if v, ok := env("CHATGATE_REDIS_ADDRS"); ok && v != "" {
		c.Redis.Addrs = strings.Split(v, ",")
	}
	for i := range c.WhatsApp.Numbers {
		n := &c.WhatsApp.Numbers[i]
		set(&n.AccessToken, NumberAccessTokenEnv(n.PhoneNumberID))
	}
	for i := range c.WebChat.Sites {
		s := &c.WebChat.Sites[i]
		set(&s.Secret, SiteSecretEnv(s.ID))
		set(&s.PreviousSecret, "CHATGATE_WEBCHAT_SITES_"+envName(s.ID)+"_PREVIOUS_SECRET")
	}
}

// NumberAccessTokenEnv names the variable that overrides a number's access token:
// CHATGATE_WHATSAPP_NUMBERS_<PHONE_NUMBER_ID>_ACCESS_TOKEN.
func NumberAccessTokenEnv(phoneNumberID string) string {
	return "CHATGATE_WHATSAPP_NUMBERS_" + envName(phoneNumberID) + "_ACCESS_TOKEN"
}

// SiteSecretEnv names the variable that overrides a WebChat site's secret: CHATGATE_WEBCHAT_SITES_<ID>_SECRET,
// the id upper-cased with '-' and '.' as '_'.
func SiteSecretEnv(siteID string) string {
	return "CHATGATE_WEBCHAT_SITES_" + envName(siteID) + "_SECRET"
}

// envName turns an id into the part of an environment variable name: shop-br → SHOP_BR.
func envName(id string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(id))
}

func (c *Config) applyDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Env == "" {
		c.Env = EnvProduction
	}
	if c.Tenant == "" {
		c.Tenant = "default"
	}
	def(&c.ShutdownGrace, 15*time.Second)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	defInt(&c.HTTP.BodyLimit, 1<<20)
	defInt(&c.HTTP.WhatsAppBodyLimit, 4<<20)
	defInt(&c.HTTP.HeaderLimit, 8<<10)
	def(&c.HTTP.ReadTimeout, 10*time.Second)
	def(&c.HTTP.WriteTimeout, 10*time.Second)
	def(&c.HTTP.IdleTimeout, 60*time.Second)
	defInt(&c.HTTP.MaxConnections, 262144)
	defInt(&c.HTTP.MaxStreamsPerIP, 256)
	def(&c.Auth.DefaultTTL, 12*time.Hour)
	def(&c.Auth.MaxTokenTTL, 24*time.Hour)
	if c.Auth.Issuer == "" {
		c.Auth.Issuer = "chatgate"
	}
	def(&c.Presence.DisconnectGrace, 60*time.Second)
	def(&c.Presence.ReaperInterval, 5*time.Second)
	def(&c.Presence.HistoryRetention, 90*24*time.Hour)
	if c.Reports.Timezone == "" {
		c.Reports.Timezone = "America/Sao_Paulo"
	}
	def(&c.Reports.DetailRetention, 35*24*time.Hour)
	def(&c.Reports.SummaryRetention, 400*24*time.Hour)
	def(&c.Retention.ClosedConversations, 7*24*time.Hour)
	if c.Events.MaxLen == 0 {
		c.Events.MaxLen = 1000
	}
	def(&c.Events.KeepAlive, 15*time.Second)
	defInt(&c.Outbound.Concurrency, 20)
	defInt(&c.Outbound.MaxRetry, 10)
	def(&c.Outbound.RecipientInterval, time.Second)
	def(&c.Outbound.SendTimeout, 15*time.Second)
	def(&c.Outbound.RetryBase, 2*time.Second)
	def(&c.Outbound.RetryMax, 5*time.Minute)
	for i := range c.Queues {
		q := &c.Queues[i]
		if q.Strategy == "" {
			q.Strategy = "longest_idle"
		}
		def(&q.OfferTimeout, 30*time.Second)
		def(&q.ReofferAfter, DefaultReofferAfter)
		def(&q.ServiceLevel, 60*time.Second)
		if q.MaxWaitAction == "" {
			q.MaxWaitAction = "keep"
		}
		if q.FirstResponseAction == "" {
			q.FirstResponseAction = "notify"
		}
	}
	if c.WhatsApp.APIBaseURL == "" {
		c.WhatsApp.APIBaseURL = "https://graph.facebook.com"
	}
	if c.WhatsApp.APIVersion == "" {
		c.WhatsApp.APIVersion = "v21.0"
	}
	for i := range c.WhatsApp.Numbers {
		defInt(&c.WhatsApp.Numbers[i].RatePerSecond, 80)
	}
	def(&c.WebChat.TimestampTolerance, 5*time.Minute)
	def(&c.WebChat.VisitorTokenTTL, 2*time.Hour)
	defInt(&c.WebChat.MaxMessageLength, 4096)
	defInt(&c.WebChat.MaxAttachments, 5)
	defInt(&c.WebChat.VisitorRate, 30)
	defInt(&c.WebChat.IPRate, 120)
	if c.Media.CacheDir == "" {
		c.Media.CacheDir = filepath.Join(os.TempDir(), "chatgate-media")
	}
	if c.Media.CacheMaxBytes == 0 {
		c.Media.CacheMaxBytes = 256 << 20
	}
	defInt(&c.Media.UploadLimit, 101<<20)
	def(&c.Media.LinkTTL, 24*time.Hour)
}
