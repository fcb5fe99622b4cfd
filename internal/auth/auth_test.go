package auth

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http/httptest"
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
