package auth

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/chatgate/chatgate/internal/httpx"
)

const secret = "test-secret-123"

func mint(t *testing.T, key, agent string, role Role, ttl time.Duration) string {
	t.Helper()
	tok, err := Mint(key, "chatgate", agent, role, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify(t *testing.T) {
	v := NewVerifier(secret, "old-secret-456", "chatgate")
	good := mint(t, secret, "ana", RoleAgent, time.Hour)
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"ana","role":"admin","iss":"chatgate","exp":9999999999}`)) + "."
	for _, tc := range []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"current secret", good, true},
		{"previous secret during rotation", mint(t, "old-secret-456", "ana", RoleAgent, time.Hour), true},
		{"unknown secret", mint(t, "someone-else", "ana", RoleAgent, time.Hour), false},
		{"expired", mint(t, secret, "ana", RoleAgent, -time.Minute), false},
		{"alg none", noneAlg, false},
		{"garbage", "not.a.token", false},
		{"tampered payload", good[:len(good)-3] + "abc", false},
	} {
		_, err := v.Verify(tc.token)
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: got err=%v, want ok=%v", tc.name, err, tc.wantOK)
		}
	}
	if _, err := NewVerifier(secret, "", "chatgate").Verify(mint(t, "old-secret-456", "ana", RoleAgent, time.Hour)); err == nil {
		t.Error("previous secret accepted after rotation ended")
	}
}

func TestSubjectAndRoles(t *testing.T) {
	v := NewVerifier(secret, "", "chatgate")
	app := fiber.New(fiber.Config{ErrorHandler: httpx.ErrorHandler(nil, nil)})
	app.Get("/agents/:id", v.Middleware(), func(c *fiber.Ctx) error {
		id, err := Subject(c, c.Params("id"))
		if err != nil {
			return err
		}
		return c.SendString(id)
	})
	app.Get("/ops", v.Middleware(), Require(RoleAdmin), func(c *fiber.Ctx) error { return c.SendString("ok") })
	agent := mint(t, secret, "ana", RoleAgent, time.Hour)
	super := mint(t, secret, "sue", RoleSupervisor, time.Hour)
	admin := mint(t, secret, "root", RoleAdmin, time.Hour)
	for _, tc := range []struct {
		path, token string
		status      int
		body        string
	}{
		{"/agents/me", agent, 200, "ana"},
		{"/agents/ana", agent, 200, "ana"},
		{"/agents/bruno", agent, 403, ""},
		{"/agents/bruno", super, 200, "bruno"},
		{"/agents/bruno", admin, 200, "bruno"},
		{"/agents/me", "", 401, ""},
		{"/ops", super, 403, ""},
		{"/ops", admin, 200, "ok"},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("GET %s: got %d %s, want %d %s", tc.path, resp.StatusCode, b, tc.status, tc.body)
		}
	}
}

// TestBearerSchemeIsCaseInsensitive: the scheme's name is case-insensitive (RFC 9110, 11.1), the
// token is not; anything but one Bearer token is a 401.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	v := NewVerifier(secret, "", "chatgate")
	app := fiber.New(fiber.Config{ErrorHandler: httpx.ErrorHandler(nil, nil)})
	app.Get("/me", v.Middleware(), func(c *fiber.Ctx) error { return c.SendString(Caller(c).Agent) })
	tok := mint(t, secret, "ana", RoleAgent, time.Hour)
	for _, tc := range []struct {
		header string
		status int
	}{
		{"Bearer " + tok, 200},
		{"bearer " + tok, 200},
		{"BEARER " + tok, 200},
		{"Bearer", 401},
		{"Bearer ", 401},
		{"Basic " + tok, 401},
		{"Bearertoken " + tok, 401},
		{"Bearer " + strings.ToUpper(tok), 401},
	} {
		req := httptest.NewRequest("GET", "/me", nil)
		req.Header.Set("Authorization", tc.header)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("Authorization %.20q…: got %d, want %d", tc.header, resp.StatusCode, tc.status)
		}
	}
}

// signed signs raw claims with the secret, so a test can put anything in them.
func signed(t *testing.T, claims string) string {
	t.Helper()
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(head+"."+body, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerifyIsStrictAboutDatesLifetimeAndAgents(t *testing.T) {
	v := NewVerifier(secret, "", "chatgate").WithMaxTTL(24 * time.Hour).WithAgents(func(a string) bool { return a == "ana" })
	now := time.Now().Unix()
	claims := func(format string, args ...any) string { return signed(t, fmt.Sprintf(format, args...)) }
	for _, tc := range []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"minted for a day", mint(t, secret, "ana", RoleAgent, 24*time.Hour), true},
		{"numeric dates", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":%d,"exp":%d}`, now, now+3600), true},
		{"exp as a string", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":%d,"exp":"%d"}`, now, now+3600), false},
		{"exp as a far string", claims(`{"sub":"ana","role":"agent","iss":"chatgate","exp":"9999999999"}`), false},
		{"iat as a string", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":"%d","exp":%d}`, now, now+3600), false},
		{"exp null", claims(`{"sub":"ana","role":"agent","iss":"chatgate","exp":null}`), false},
		{"no exp", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":%d}`, now), false},
		{"lives 25 hours", mint(t, secret, "ana", RoleAgent, 25*time.Hour), false},
		{"no iat, expires in a year", claims(`{"sub":"ana","role":"agent","iss":"chatgate","exp":%d}`, now+365*86400), false},
		{"no iat, expires in an hour", claims(`{"sub":"ana","role":"agent","iss":"chatgate","exp":%d}`, now+3600), true},
		{"issued in the future", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":%d,"exp":%d}`, now+600, now+3600), false},
		{"issued within the leeway", claims(`{"sub":"ana","role":"agent","iss":"chatgate","iat":%d,"exp":%d}`, now+2, now+3600), true},
		{"agent not configured", mint(t, secret, "nobody", RoleAgent, time.Hour), false},
		{"admin need not be an agent", mint(t, secret, "ops", RoleAdmin, time.Hour), true},
	} {
		_, err := v.Verify(tc.token)
		if (err == nil) != tc.wantOK {
			t.Errorf("%s: got err=%v, want ok=%v", tc.name, err, tc.wantOK)
		}
	}
}

// The verified-token cache: a token seen before is accepted without verifying it again, but never
// past its exp, never for an agent no longer configured, and a token that failed is never kept.
func TestVerifyCache(t *testing.T) {
	agents := map[string]bool{"ana": true, "bruno": true}
	v := NewVerifier(secret, "", "chatgate").WithAgents(func(a string) bool { return agents[a] })
	now := time.Now()
	v.now = func() time.Time { return now }
	app := fiber.New(fiber.Config{ErrorHandler: httpx.ErrorHandler(nil, nil)})
	app.Get("/me", v.Middleware(), func(c *fiber.Ctx) error { return c.SendString(Caller(c).Agent) })
	get := func(token string) (int, string) {
		t.Helper()
		req := httptest.NewRequest("GET", "/me", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	ana, err := Mint(secret, "chatgate", "ana", RoleAgent, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the first verifies and caches, the others hit the cache
		if code, body := get(ana); code != 200 || body != "ana" {
			t.Fatalf("request %d with a valid token: %d %s", i, code, body)
		}
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens, want 1", v.cache.len())
	}

	// The agent leaves the configuration: the cached token is refused, and accepted again on return.
	delete(agents, "ana")
	if code, _ := get(ana); code != 401 {
		t.Errorf("token of a removed agent: %d, want 401", code)
	}
	agents["ana"] = true
	if code, _ := get(ana); code != 200 {
		t.Errorf("token of an agent configured again: %d, want 200", code)
	}

	// A bad signature is refused every time and never kept, even after a valid token of the same claims.
	forged := ana[:len(ana)-4] + "AAAA"
	if forged == ana {
		forged = ana[:len(ana)-4] + "BBBB"
	}
	for i := 0; i < 2; i++ {
		if code, _ := get(forged); code != 401 {
			t.Errorf("forged token, request %d: %d, want 401", i, code)
		}
	}
	if _, ok := v.cache.get(forged, now); ok || v.cache.len() != 1 {
		t.Errorf("a forged token was cached (%d entries)", v.cache.len())
	}

	// Past exp and the leeway, the cached token is refused.
	now = now.Add(time.Minute + leeway + time.Second)
	if code, _ := get(ana); code != 401 {
		t.Errorf("expired cached token: %d, want 401", code)
	}
	if v.cache.len() != 0 {
		t.Errorf("expired token still cached")
	}
	// Inside the leeway after exp it is accepted, as without the cache, but not kept.
	late, _ := Mint(secret, "chatgate", "bruno", RoleAgent, time.Minute, now.Add(-time.Minute-time.Second))
	if code, _ := get(late); code != 200 {
		t.Errorf("token inside the leeway: %d, want 200", code)
	}
	if v.cache.len() != 0 {
		t.Errorf("a token past its exp was cached")
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	v := NewVerifier(secret, "", "chatgate")
	now := time.Now()
	v.now = func() time.Time { return now }
	first, _ := Mint(secret, "chatgate", "agent-0", RoleAgent, time.Hour, now)
	for i := 0; i < maxCachedTokens+100; i++ {
		tok := first
		if i > 0 {
			tok, _ = Mint(secret, "chatgate", fmt.Sprintf("agent-%d", i), RoleAgent, time.Hour, now)
		}
		p, err := v.Verify(tok)
		if err != nil || p.Agent != fmt.Sprintf("agent-%d", i) {
			t.Fatalf("token %d: %v %+v", i, err, p)
		}
		if n := v.cache.len(); n > maxCachedTokens {
			t.Fatalf("cache grew to %d entries, bound %d", n, maxCachedTokens)
		}
	}
	// An evicted token is simply verified again.
	if p, err := v.Verify(first); err != nil || p.Agent != "agent-0" {
		t.Errorf("first token after evictions: %v %+v", err, p)
	}
}
