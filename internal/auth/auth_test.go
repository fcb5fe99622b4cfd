package auth

import (
	"encoding/base64"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

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
