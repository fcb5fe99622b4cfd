package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

// The production check names every development placeholder of the example and, for each, the exact
// variable that sets the real value; once they are set the same file passes.
func TestConfigCheckInProductionNamesEveryPlaceholderAndItsVariable(t *testing.T) {
	t.Setenv("CHATGATE_ENV", "production")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "../../configs/chatgate.yaml"}, &stdout, &stderr); code != exitInvalid {
		t.Fatalf("config check in production with the example's placeholders: exit %d, want %d\n%s", code, exitInvalid, stderr.String())
	}
	for _, want := range []string{
		"auth.jwt_secret: is a development placeholder (or empty); in production set CHATGATE_AUTH_JWT_SECRET",
		"whatsapp.app_secret: is a development placeholder (or empty); in production set CHATGATE_WHATSAPP_APP_SECRET",
		"whatsapp.verify_token: is a development placeholder (or empty); in production set CHATGATE_WHATSAPP_VERIFY_TOKEN",
		"whatsapp.numbers[0].access_token: is a development placeholder (or empty); in production set CHATGATE_WHATSAPP_NUMBERS_100200300_ACCESS_TOKEN",
		"webchat.sites[0].secret: is a development placeholder (or empty); in production set CHATGATE_WEBCHAT_SITES_SHOP_SECRET",
		"redis.url: is empty",
		"media.link_key: is a development placeholder (or empty); in production set CHATGATE_MEDIA_LINK_KEY",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("config check does not say %q:\n%s", want, stderr.String())
		}
	}
	for k, v := range map[string]string{
		"CHATGATE_AUTH_JWT_SECRET": "a-real-jwt-secret", "CHATGATE_WHATSAPP_APP_SECRET": "a-real-app-secret",
		"CHATGATE_WHATSAPP_VERIFY_TOKEN": "a-real-verify-token", "CHATGATE_WHATSAPP_NUMBERS_100200300_ACCESS_TOKEN": "EAAreal",
		"CHATGATE_WEBCHAT_SITES_SHOP_SECRET": "a-real-site-secret", "CHATGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
		"CHATGATE_MEDIA_LINK_KEY": "a-real-media-link-key-of-32-chars!",
	} {
		t.Setenv(k, v)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"config", "check", "../../configs/chatgate.yaml"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("config check in production with every variable set: exit %d\n%s", code, stderr.String())
	}
}

// A file that does not say env: development is production: the example without its env line is
// refused like production, and the problems say how to ask for development.
func TestConfigWithoutEnvIsProduction(t *testing.T) {
	raw := testutil.Fixture(t, "configs", "chatgate.yaml")
	withoutEnv := strings.Replace(string(raw), "env: development ", "                 ", 1)
	if withoutEnv == string(raw) {
		t.Fatal("the example has no env line to remove")
	}
	path := filepath.Join(t.TempDir(), "chatgate.yaml")
	if err := os.WriteFile(path, []byte(withoutEnv), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", path}, &bytes.Buffer{}, &stderr); code != exitInvalid {
		t.Fatalf("config check without env: exit %d, want %d\n%s", code, exitInvalid, stderr.String())
	}
	for _, want := range []string{"auth.jwt_secret: is a development placeholder", "env: is not set, so the gateway runs as production"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("config check without env does not say %q:\n%s", want, stderr.String())
		}
	}
}

func TestTokenRefusesUnconfiguredAgentsAndLongLifetimes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent", "nobody"}, `agent "nobody" is not configured`},
		{[]string{"--agent", "nobody", "--role", "agent"}, `agent "nobody" is not configured`},
		{[]string{"--agent", "ana", "--ttl", "48h"}, "outside 0…auth.max_token_ttl (24h0m0s)"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"token", "--config", "../../configs/chatgate.yaml"}, tc.args...)
		if code := run(context.Background(), args, &stdout, &stderr); code != exitInvalid || stdout.Len() != 0 {
			t.Errorf("%v: exit %d with %q, want %d and no token", tc.args, code, stdout.String(), exitInvalid)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr.String(), tc.want)
		}
	}
	// An operator's admin token need not name an agent.
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"token", "--config", "../../configs/chatgate.yaml", "--agent", "ops", "--role", "admin"}, &stdout, &bytes.Buffer{}); code != exitOK || stdout.Len() == 0 {
		t.Errorf("admin token for an operator: exit %d", code)
	}
}

// A plain `docker run` of the image uses the environment its Dockerfile sets on the configuration it
// copies in: that must be production, refusing the example's placeholders instead of serving a
// development sign-in to the world.
func TestTheImageDefaultsToProduction(t *testing.T) {
	raw := testutil.Fixture(t, "Dockerfile")
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	if env["CHATGATE_CONFIG"] != "/etc/chatgate/chatgate.yaml" || !strings.Contains(string(raw), "COPY configs/chatgate.yaml /etc/chatgate/chatgate.yaml") {
		t.Fatalf("the image no longer bakes the example at /etc/chatgate/chatgate.yaml; update this test (ENV %v)", env)
	}
	for k, v := range env {
		if k != "CHATGATE_CONFIG" {
			t.Setenv(k, v)
		}
	}
	t.Setenv("CHATGATE_CONFIG", "../../configs/chatgate.yaml") // where the image copies it from
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if code := run(ctx, []string{"serve", "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr); code != exitInvalid {
		t.Fatalf("the image's default start: exit %d, want %d (refused)\n%s", code, exitInvalid, stderr.String())
	}
	if !strings.Contains(stderr.String(), "in production set CHATGATE_AUTH_JWT_SECRET") {
		t.Errorf("the image's default start does not say what to set:\n%s", stderr.String())
	}
}
