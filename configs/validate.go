package configs

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
)

var (
	safeIDPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	channelPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

	validateOnce sync.Once
	validate     *validator.Validate
)

// Validator returns the shared validator with chatgate's tags: safeid (ids that are safe inside Redis
// keys and URLs) and channel (lower-case channel names). YAML names are used in field paths.
func Validator() *validator.Validate {
	validateOnce.Do(func() {
		v := validator.New(validator.WithRequiredStructEnabled())
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			for _, tag := range []string{"yaml", "json"} {
				name := strings.Split(f.Tag.Get(tag), ",")[0]
				if name == "-" {
					return ""
				}
				if name != "" {
					return name
				}
			}
			return f.Name
		})
		_ = v.RegisterValidation("safeid", func(fl validator.FieldLevel) bool {
			return safeIDPattern.MatchString(fl.Field().String())
		})
		_ = v.RegisterValidation("channel", func(fl validator.FieldLevel) bool {
			return channelPattern.MatchString(fl.Field().String())
		})
		validate = v
	})
	return validate
}

// SafeID reports whether s may be used as an id inside Redis keys and URL paths.
func SafeID(s string) bool { return len(s) <= 128 && safeIDPattern.MatchString(s) }

// Validate returns every problem of the configuration: field rules first, then references between
// sections, then production safety.
func (c *Config) Validate() Problems {
	var ps Problems
	if err := Validator().Struct(c); err != nil {
		var ves validator.ValidationErrors
		if !errors.As(err, &ves) {
			return Problems{{Message: err.Error()}}
		}
		for _, fe := range ves {
			ps = append(ps, Problem{Path: fieldPath(fe.Namespace()), Message: FieldMessage(fe)})
		}
	}
	ps = append(ps, c.uniqueness()...)
	ps = append(ps, c.references()...)
	ps = append(ps, c.productionSafety()...)
	ps = append(ps, c.integrationsProblems(c.queueIDs())...)
	return ps
}

// fieldPath drops the root type name: Config.queues[0].id → queues[0].id.
func fieldPath(ns string) string {
	if i := strings.IndexByte(ns, '.'); i >= 0 {
		return ns[i+1:]
	}
	return ns
}

// FieldMessage turns one validator error into a sentence a person can act on.
func FieldMessage(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "min":
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return "needs at least " + fe.Param() + " entries"
		}
		if fe.Kind() == reflect.String {
			return "must be at least " + fe.Param() + " characters long"
		}
		return "must be at least " + fe.Param()
	case "max":
		if fe.Kind() == reflect.String {
			return "must be at most " + fe.Param() + " characters long"
		}
		return "must be at most " + fe.Param()
	case "gte":
		return "must be " + fe.Param() + " or more"
	case "lte":
		return "must be " + fe.Param() + " or less"
	case "oneof":
		return fmt.Sprintf("is %q; must be one of: %s", fmt.Sprint(fe.Value()), strings.ReplaceAll(fe.Param(), " ", ", "))
	case "unique":
		if fe.Param() != "" {
			return "has two entries with the same " + strings.ToLower(fe.Param())
		}
		return "has duplicate entries"
	case "safeid":
		return fmt.Sprintf("is %q; use letters, digits, '_', '-' and '.' only", fmt.Sprint(fe.Value()))
	case "channel":
		return fmt.Sprintf("is %q; a channel name is lower-case letters, digits and '_'", fmt.Sprint(fe.Value()))
	case "hostname_port":
		return fmt.Sprintf("is %q; must be host:port", fmt.Sprint(fe.Value()))
	case "url":
		return fmt.Sprintf("is %q; must be a URL", fmt.Sprint(fe.Value()))
	case "numeric":
		return "must be digits only"
	case "e164":
		return "must be an E.164 number such as +5511999990001"
	case "startswith":
		return "must start with " + fe.Param()
	}
	return "fails the " + fe.Tag() + " rule"
}

// uniqueness reports repeated ids; validator's unique tag would stop it diving into the entries, and
// every mistake should be reported at once.
func (c *Config) uniqueness() Problems {
	var ps Problems
	dup := func(path string, ids []string) {
		seen := map[string]bool{}
		for i, id := range ids {
			if seen[id] {
				ps = append(ps, Problem{fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%q is listed twice", id)})
			}
			seen[id] = true
		}
	}
	ids := func(n int, get func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = get(i)
		}
		return out
	}
	dup("pause_reasons", ids(len(c.PauseReasons), func(i int) string { return c.PauseReasons[i].ID }))
	dup("queues", ids(len(c.Queues), func(i int) string { return c.Queues[i].ID }))
	dup("agents", ids(len(c.Agents), func(i int) string { return c.Agents[i].ID }))
	dup("whatsapp.numbers", ids(len(c.WhatsApp.Numbers), func(i int) string { return c.WhatsApp.Numbers[i].PhoneNumberID }))
	dup("webchat.sites", ids(len(c.WebChat.Sites), func(i int) string { return c.WebChat.Sites[i].ID }))
	for i, q := range c.Queues {
		dup(fmt.Sprintf("queues[%d].channels", i), q.Channels)
	}
	for i, a := range c.Agents {
		dup(fmt.Sprintf("agents[%d].queues", i), a.Queues)
	}
	return ps
}

func (c *Config) references() Problems {
	var ps Problems
	queues := map[string]Queue{}
	for _, q := range c.Queues {
		queues[q.ID] = q
	}
	for i, a := range c.Agents {
		served := map[string]bool{}
		for j, qid := range a.Queues {
			q, ok := queues[qid]
			if !ok {
				ps = append(ps, Problem{fmt.Sprintf("agents[%d].queues[%d]", i, j), fmt.Sprintf("queue %q is not configured", qid)})
				continue
			}
			for _, ch := range q.Channels {
				served[ch] = true
			}
		}
		for _, ch := range sortedKeys(a.Channels) {
			if !served[ch] {
				ps = append(ps, Problem{fmt.Sprintf("agents[%d].channels.%s", i, ch), fmt.Sprintf("none of the agent's queues is attached to channel %q", ch)})
			}
		}
	}
	for i, n := range c.WhatsApp.Numbers {
		if q, ok := queues[n.Queue]; !ok {
			ps = append(ps, Problem{fmt.Sprintf("whatsapp.numbers[%d].queue", i), fmt.Sprintf("queue %q is not configured", n.Queue)})
		} else if !contains(q.Channels, "whatsapp") {
			ps = append(ps, Problem{fmt.Sprintf("whatsapp.numbers[%d].queue", i), fmt.Sprintf("queue %q is not attached to channel whatsapp", n.Queue)})
		}
	}
	seenTemplate := map[string]bool{}
	for i, t := range c.WhatsApp.Templates {
		key := t.Name + "/" + t.Language
		if seenTemplate[key] {
			ps = append(ps, Problem{fmt.Sprintf("whatsapp.templates[%d]", i), fmt.Sprintf("template %s in %s is listed twice", t.Name, t.Language)})
		}
		seenTemplate[key] = true
	}
	for i, s := range c.WebChat.Sites {
		if q, ok := queues[s.Queue]; !ok {
			ps = append(ps, Problem{fmt.Sprintf("webchat.sites[%d].queue", i), fmt.Sprintf("queue %q is not configured", s.Queue)})
		} else if !contains(q.Channels, "webchat") {
			ps = append(ps, Problem{fmt.Sprintf("webchat.sites[%d].queue", i), fmt.Sprintf("queue %q is not attached to channel webchat", s.Queue)})
		}
	}
	for i, q := range c.Queues {
		if (q.MaxWaitAction == "close" || q.MaxWaitAction == "overflow") && q.MaxWait == 0 {
			ps = append(ps, Problem{fmt.Sprintf("queues[%d].max_wait", i), "is required when max_wait_action is " + q.MaxWaitAction})
		}
		ps = append(ps, overflowProblems(i, q, queues)...)
		ps = append(ps, floorProblems(i, q)...)
		ps = append(ps, hoursProblems(i, q)...)
	}
	if c.ShutdownDelay > c.ShutdownGrace/2 {
		ps = append(ps, Problem{"shutdown_delay", fmt.Sprintf("is %v; must be at most half of shutdown_grace (%v), leaving time to drain", c.ShutdownDelay, c.ShutdownGrace)})
	}
	if c.Auth.MaxTokenTTL > 0 && c.Auth.DefaultTTL > c.Auth.MaxTokenTTL {
		ps = append(ps, Problem{"auth.default_ttl", fmt.Sprintf("is %v; must be at most auth.max_token_ttl (%v)", c.Auth.DefaultTTL, c.Auth.MaxTokenTTL)})
	}
	if len(c.Redis.Addrs) > 0 && c.Redis.URL != "" {
		ps = append(ps, Problem{"redis", "set either url or addrs, not both"})
	}
	return ps
}

// productionSafety refuses, in production, every development placeholder of the example file (and
// empty secrets); each problem names the variable that sets the real value.
func (c *Config) productionSafety() Problems {
	if c.Env != EnvProduction {
		return nil
	}
	var ps Problems
	check := func(path, secret, variable string) {
		if secret == "" || strings.Contains(secret, devSecretMarker) {
			ps = append(ps, Problem{path, "is a development placeholder (or empty); in production set " + variable})
		}
	}
	previous := func(path, secret, variable string) {
		if strings.Contains(secret, devSecretMarker) {
			ps = append(ps, Problem{path, "is a development placeholder; in production set " + variable + " or leave it empty"})
		}
	}
	check("auth.jwt_secret", c.Auth.JWTSecret, "CHATGATE_AUTH_JWT_SECRET")
	previous("auth.previous_jwt_secret", c.Auth.PreviousJWTSecret, "CHATGATE_AUTH_PREVIOUS_JWT_SECRET")
	check("whatsapp.app_secret", c.WhatsApp.AppSecret, "CHATGATE_WHATSAPP_APP_SECRET")
	previous("whatsapp.previous_app_secret", c.WhatsApp.PreviousAppSecret, "CHATGATE_WHATSAPP_PREVIOUS_APP_SECRET")
	check("whatsapp.verify_token", c.WhatsApp.VerifyToken, "CHATGATE_WHATSAPP_VERIFY_TOKEN")
	for i, n := range c.WhatsApp.Numbers {
		check(fmt.Sprintf("whatsapp.numbers[%d].access_token", i), n.AccessToken, NumberAccessTokenEnv(n.PhoneNumberID))
	}
	for i, s := range c.WebChat.Sites {
		check(fmt.Sprintf("webchat.sites[%d].secret", i), s.Secret, SiteSecretEnv(s.ID))
		previous(fmt.Sprintf("webchat.sites[%d].previous_secret", i), s.PreviousSecret, "CHATGATE_WEBCHAT_SITES_"+envName(s.ID)+"_PREVIOUS_SECRET")
	}
	check("media.link_key", c.Media.LinkKey, "CHATGATE_MEDIA_LINK_KEY")
	if c.Redis.Embedded() {
		ps = append(ps, Problem{"redis.url", "is empty: the embedded store keeps nothing and serves one process only; in production set CHATGATE_REDIS_URL (or CHATGATE_REDIS_ADDRS)"})
	}
	return ps
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// overflowProblems: max_wait_action overflow needs an overflow_queue, another configured queue that
// serves every channel of this one (a card keeps its channel); an overflow_queue without that action
// would be silently unused.
func overflowProblems(i int, q Queue, queues map[string]Queue) Problems {
	path := fmt.Sprintf("queues[%d].overflow_queue", i)
	if q.MaxWaitAction != "overflow" {
		if q.OverflowQueue != "" {
			return Problems{{path, "is only used with max_wait_action overflow"}}
		}
		return nil
	}
	if q.OverflowQueue == "" {
		return Problems{{path, "is required when max_wait_action is overflow"}}
	}
	if q.OverflowQueue == q.ID {
		return Problems{{path, "must name another queue"}}
	}
	target, ok := queues[q.OverflowQueue]
	if !ok {
		return Problems{{path, fmt.Sprintf("queue %q is not configured", q.OverflowQueue)}}
	}
	var ps Problems
	for _, ch := range q.Channels {
		if !contains(target.Channels, ch) {
			ps = append(ps, Problem{path, fmt.Sprintf("queue %q is not attached to channel %s", q.OverflowQueue, ch)})
		}
	}
	return ps
}

// floorProblems: disposition ids are unique within a queue; require_disposition needs some to pick
// from; first_response_action means nothing without first_response_timeout.
func floorProblems(i int, q Queue) Problems {
	var ps Problems
	seen := map[string]bool{}
	for j, d := range q.Dispositions {
		if seen[d.ID] {
			ps = append(ps, Problem{fmt.Sprintf("queues[%d].dispositions[%d].id", i, j), fmt.Sprintf("%q is listed twice", d.ID)})
		}
		seen[d.ID] = true
	}
	if q.RequireDisposition && len(q.Dispositions) == 0 {
		ps = append(ps, Problem{fmt.Sprintf("queues[%d].require_disposition", i), "needs dispositions to choose from"})
	}
	if q.FirstResponseAction == "requeue" && q.FirstResponseTimeout == 0 {
		ps = append(ps, Problem{fmt.Sprintf("queues[%d].first_response_action", i), "is only used with first_response_timeout"})
	}
	return ps
}

func (c *Config) queueIDs() map[string]bool {
	out := make(map[string]bool, len(c.Queues))
	for _, q := range c.Queues {
		out[q.ID] = true
	}
	return out
}
