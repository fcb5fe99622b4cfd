package configs

import (
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func TestExampleIsValidAndRunnable(t *testing.T) {
	cfg, err := Parse(Example, noEnv)
	if err != nil {
		t.Fatalf("the example configuration is invalid: %v", err)
	}
	if !cfg.Redis.Embedded() {
		t.Error("the example must run on the embedded store")
	}
	if q, _ := cfg.Queue("sales"); q.Strategy != "longest_idle" || q.OfferTimeout != 30*time.Second {
		t.Errorf("queue sales: got strategy %q timeout %v, want longest_idle 30s", q.Strategy, q.OfferTimeout)
	}
	if a, ok := cfg.Agent("ana"); !ok || a.Channels["whatsapp"].Capacity != 3 {
		t.Errorf("agent ana: got %+v, want whatsapp capacity 3", a)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	raw := strings.Replace(string(Example), "listen:", "lisen: \":1\"\nlisten:", 1)
	_, err := Parse([]byte(raw), noEnv)
	if err == nil || !strings.Contains(err.Error(), "lisen") {
		t.Fatalf("got %v, want an error naming the unknown key lisen", err)
	}
}

func TestRemovedRetentionIsAcceptedAndReported(t *testing.T) {
	cfg, err := Parse(Example, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if ds := cfg.Deprecations(); len(ds) != 0 {
		t.Fatalf("the example: deprecations %v, want none", ds)
	}
	for _, value := range []string{"15m", "0s"} {
		raw := strings.Replace(string(Example), "events:\n", "events:\n  retention: "+value+"\n", 1)
		cfg, err := Parse([]byte(raw), noEnv)
		if err != nil {
			t.Fatalf("retention %s: %v, want it still accepted", value, err)
		}
		ds := cfg.Deprecations()
		if len(ds) != 1 || ds[0].Path != "events.retention" {
			t.Errorf("retention %s: deprecations %v, want events.retention", value, ds)
		}
	}
}

func TestEveryMistakeIsReportedWithItsPath(t *testing.T) {
	raw := `
listen: "not an address"
pause_reasons: []
queues:
  - id: sales
    channels: [whatsapp, WebChat]
    strategy: fastest
  - id: sales
    channels: [webchat]
agents:
  - id: "ana smith"
    queues: [nowhere]
    channels: { whatsapp: { capacity: 0 } }
whatsapp:
  numbers:
    - { phone_number_id: "abc", queue: missing }
webchat:
  sites:
    - { id: shop, queue: sales, secret: short }
`
	_, err := Parse([]byte(raw), noEnv)
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("got %T %v, want Problems", err, err)
	}
	text := ps.Error()
	for _, want := range []string{
		"listen:", "pause_reasons:", "queues[0].channels[1]:", "queues[0].strategy:", "queues[1]:",
		"agents[0].id:", "agents[0].channels[whatsapp].capacity:", "agents[0].queues[0]:",
		"whatsapp.numbers[0].phone_number_id:", "whatsapp.numbers[0].queue:", "webchat.sites[0].secret:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems do not mention %q:\n%s", want, text)
		}
	}
}

func TestEnvironmentOverridesSecrets(t *testing.T) {
	env := map[string]string{
		"CHATGATE_AUTH_JWT_SECRET":                         "from-env-secret",
		"CHATGATE_WHATSAPP_APP_SECRET":                     "app-from-env",
		"CHATGATE_WHATSAPP_NUMBERS_100200300_ACCESS_TOKEN": "token-from-env",
		"CHATGATE_WEBCHAT_SITES_SHOP_SECRET":               "shop-from-env",
		"CHATGATE_LISTEN":                                  "127.0.0.1:9999",
		"CHATGATE_REDIS_URL":                               "redis://127.0.0.1:6390/2",
	}
	cfg, err := Parse(Example, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	n, _ := cfg.Number("100200300")
	s, _ := cfg.Site("shop")
	for _, c := range []struct{ name, got, want string }{
		{"jwt secret", cfg.Auth.JWTSecret, "from-env-secret"},
		{"app secret", cfg.WhatsApp.AppSecret, "app-from-env"},
		{"number token", n.AccessToken, "token-from-env"},
		{"site secret", s.Secret, "shop-from-env"},
		{"listen", cfg.Listen, "127.0.0.1:9999"},
		{"redis url", cfg.Redis.URL, "redis://127.0.0.1:6390/2"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestProductionRefusesDevelopmentSecrets(t *testing.T) {
	_, err := Parse(Example, func(k string) (string, bool) {
		if k == "CHATGATE_ENV" {
			return "production", true
		}
		return "", false
	})
	if err == nil {
		t.Fatal("production with the example's secrets was accepted")
	}
	for _, want := range []string{"auth.jwt_secret", "whatsapp.app_secret", "whatsapp.verify_token", "whatsapp.numbers[0].access_token", "webchat.sites[0].secret", "redis.url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("production problems do not mention %s:\n%v", want, err)
		}
	}
	env := map[string]string{
		"CHATGATE_ENV": "production", "CHATGATE_AUTH_JWT_SECRET": "a-real-secret-1", "CHATGATE_WHATSAPP_APP_SECRET": "real-app",
		"CHATGATE_WHATSAPP_VERIFY_TOKEN": "real-verify", "CHATGATE_WEBCHAT_SITES_SHOP_SECRET": "real-shop-secret",
		"CHATGATE_REDIS_URL": "redis://127.0.0.1:6379/0", "CHATGATE_WHATSAPP_NUMBERS_100200300_ACCESS_TOKEN": "EAAreal",
		"CHATGATE_MEDIA_LINK_KEY": "a-real-media-link-key-of-32-chars!",
	}
	if _, err := Parse(Example, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("production with real secrets: %v", err)
	}
}

func TestAgentChannelMustBeServedByItsQueues(t *testing.T) {
	raw := strings.Replace(string(Example), "channels: { webchat: { capacity: 6 } }", "channels: { webchat: { capacity: 6 }, whatsapp: { capacity: 1 } }", 1)
	_, err := Parse([]byte(raw), noEnv)
	if err == nil || !strings.Contains(err.Error(), "agents[2].channels.whatsapp") {
		t.Fatalf("got %v, want a problem at agents[2].channels.whatsapp", err)
	}
}

func TestReofferAfterDefaultsToOneMinute(t *testing.T) {
	raw := strings.Replace(string(Example), "    reoffer_after: 1m ", "    # reoffer_after: 1m ", 1)
	cfg, err := Parse([]byte(raw), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := cfg.Queue("sales"); q.ReofferAfter != time.Minute {
		t.Errorf("reoffer_after unset: %v, want 1m", q.ReofferAfter)
	}
	if q, _ := cfg.Queue("support"); q.ReofferAfter != DefaultReofferAfter {
		t.Errorf("support: reoffer_after %v, want the default", q.ReofferAfter)
	}
	raw = strings.Replace(string(Example), "reoffer_after: 1m", "reoffer_after: -5s", 1)
	if _, err := Parse([]byte(raw), noEnv); err == nil || !strings.Contains(err.Error(), "queues[0].reoffer_after") {
		t.Fatalf("negative reoffer_after: %v, want a problem at queues[0].reoffer_after", err)
	}
}

func TestOverflowQueueMustServeTheChannels(t *testing.T) {
	for _, tc := range []struct{ action, overflow, want string }{
		{"overflow", "support", `queues[0].overflow_queue: queue "support" is not attached to channel whatsapp`},
		{"overflow", "sales", "queues[0].overflow_queue: must name another queue"},
		{"overflow", "nowhere", `queues[0].overflow_queue: queue "nowhere" is not configured`},
		{"overflow", "", "queues[0].overflow_queue: is required when max_wait_action is overflow"},
		{"keep", "support", "queues[0].overflow_queue: is only used with max_wait_action overflow"},
	} {
		raw := strings.Replace(string(Example), "    max_wait_action: keep ", "    max_wait_action: "+tc.action+" ", 1)
		if tc.overflow != "" {
			raw = strings.Replace(raw, "    # overflow_queue: support", "    overflow_queue: "+tc.overflow, 1)
		}
		_, err := Parse([]byte(raw), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s to %q: %v; want %q", tc.action, tc.overflow, err, tc.want)
		}
	}
	// support → sales is fine: sales serves webchat.
	raw := strings.Replace(string(Example), "    strategy: least_busy\n", "    strategy: least_busy\n    max_wait: 10m\n    max_wait_action: overflow\n    overflow_queue: sales\n", 1)
	cfg, err := Parse([]byte(raw), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := cfg.Queue("support"); q.OverflowQueue != "sales" || q.MaxWaitAction != "overflow" {
		t.Errorf("support: %+v", q)
	}
}

func TestProxySettingsGoTogether(t *testing.T) {
	withHTTP := func(lines string) error {
		raw := strings.Replace(string(Example), "  idle_timeout: 60s\n", "  idle_timeout: 60s\n"+lines, 1)
		_, err := Parse([]byte(raw), noEnv)
		return err
	}
	for _, tc := range []struct {
		name, lines, wantPath string
	}{
		{"header without trusted proxies would let any client choose its address", "  proxy_header: X-Real-IP\n", "http.proxy_header"},
		{"trusted proxies without a header", "  trusted_proxies: [\"10.0.0.0/8\"]\n", "http.proxy_header"},
		{"not an address", "  trusted_proxies: [\"10.0.0.0/33\", \"lb.internal\"]\n  proxy_header: X-Real-IP\n", "http.trusted_proxies[0]"},
	} {
		err := withHTTP(tc.lines)
		if err == nil || !strings.Contains(err.Error(), tc.wantPath) {
			t.Errorf("%s: got %v, want an error at %s", tc.name, err, tc.wantPath)
		}
	}
	if err := withHTTP("  trusted_proxies: [\"10.0.0.0/8\", \"127.0.0.1\"]\n  proxy_header: X-Real-IP\n"); err != nil {
		t.Fatalf("valid proxy settings refused: %v", err)
	}
}

// Decoding problems used to end the load before validation, so a file with an unknown key reported
// only that key, without a path. Every problem is reported together now, each with its path.
func TestDecodingAndValidationProblemsAreReportedTogether(t *testing.T) {
	raw := `listen: ":8080"
env: development
auth: { jwt_secret: "short" }
pause_reasons: [{ id: lunch, label: Lunch }]
queues:
  - id: sales
    channels: [whatsapp]
    strategy: fastest
    bogus: 1
    offer_timeout: soon
  - { id: support, channels: webchat }
agents:
  - { id: ana, queues: [sales], channels: { whatsapp: { capacity: 0, colour: red } } }
`
	_, err := Parse([]byte(raw), noEnv)
	ps, ok := err.(Problems)
	if !ok {
		t.Fatalf("got %T %v, want Problems", err, err)
	}
	got := map[string]string{}
	for _, p := range ps {
		got[p.Path] = p.Message
	}
	for path, want := range map[string]string{
		"queues[0].bogus":                       "unknown key (line 9)",
		"agents[0].channels[whatsapp].colour":   "unknown key (line 13)",
		"queues[1].channels":                    `is "webchat"; want a list (line 11)`,
		"queues[0].offer_timeout":               `is "soon"; want a duration such as 30s (line 10)`,
		"auth.jwt_secret":                       "must be at least 8 characters long",
		"queues[0].strategy":                    `is "fastest"; must be one of: longest_idle, least_busy, round_robin`,
		"agents[0].channels[whatsapp].capacity": "must be 1 or more",
	} {
		if got[path] != want {
			t.Errorf("%s: got %q, want %q\nall problems:\n%s", path, got[path], want, ps.Error())
		}
	}
	// queues[1].channels did not decode, so validation's "is required" there would only repeat it.
	if len(ps) != 7 {
		t.Errorf("got %d problems, want 7:\n%s", len(ps), ps.Error())
	}
}

func TestUnparsableYAMLIsOneProblem(t *testing.T) {
	_, err := Parse([]byte("queues:\n  - id: a\n   bad indent: [\n"), noEnv)
	ps, ok := err.(Problems)
	if !ok || len(ps) != 1 || !strings.Contains(ps[0].Message, "line") {
		t.Fatalf("got %v, want one problem naming the line", err)
	}
}

func TestShutdownDelayLeavesTimeToDrain(t *testing.T) {
	raw := strings.Replace(string(Example), "shutdown_delay: 0s", "shutdown_delay: 10s", 1)
	_, err := Parse([]byte(raw), noEnv)
	if err == nil || !strings.Contains(err.Error(), "shutdown_delay: is 10s; must be at most half of shutdown_grace (15s)") {
		t.Fatalf("got %v, want a problem at shutdown_delay", err)
	}
}

// Pause reasons may carry a label per console language beside the default label; a language the
// console does not speak, or an empty label, is refused with its path, and label alone stays valid.
func TestPauseReasonLabelsPerLanguage(t *testing.T) {
	cfg, err := Parse(Example, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := cfg.PauseReason("lunch"); r.Label != "Lunch" || r.Labels["pt-BR"] != "Almoço" || r.Labels["en"] != "Lunch" {
		t.Errorf("lunch: got %+v, want label Lunch and labels pt-BR Almoço, en Lunch", r)
	}
	only := strings.Replace(string(Example), `labels: { pt-BR: "Almoço", en: "Lunch" } `, "", 1)
	if cfg, err := Parse([]byte(only), noEnv); err != nil {
		t.Errorf("a reason with label only was refused: %v", err)
	} else if r, _ := cfg.PauseReason("lunch"); r.Label != "Lunch" || len(r.Labels) != 0 {
		t.Errorf("lunch with label only: got %+v", r)
	}
	for _, bad := range []string{`labels: { fr: "Déjeuner" }`, `labels: { pt-BR: "" }`} {
		raw := strings.Replace(string(Example), `labels: { pt-BR: "Almoço", en: "Lunch" }`, bad, 1)
		_, err := Parse([]byte(raw), noEnv)
		if err == nil || !strings.Contains(err.Error(), "pause_reasons[0].labels") {
			t.Errorf("%s: got %v, want a problem at pause_reasons[0].labels", bad, err)
		}
	}
}
