// Package web serves the pages embedded in the binary: the agent console (/console/), the
// supervisors' wallboard (/wallboard/) and the operations view (/ops/), plain HTML, CSS and
// JavaScript with no build step. The pages talk only to
// the public API with a Bearer token, so they show exactly what an integrator's desktop would get.
package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
)

//go:embed static
var static embed.FS

// Options are what the pages and their endpoints need from the gateway.
type Options struct {
	// Config supplies env (the development token endpoint exists only outside production), the agents
	// offered by the sign-in picker and the token secret.
	Config *configs.Config
	// Verifier guards the /v1/ops endpoints.
	Verifier *auth.Verifier
	// Redis is the client asynq shares; the operations view inspects its queues through it.
	Redis redis.UniversalClient
	// Queues are the asynq queues always listed, even before their first task.
	Queues []string
}

// securityHeaders keeps the pages from running anything but their own scripts: every string from
// the network is inserted as text, and the policy makes an injected script inert all the same.
// Customers' images, audio and video are fetched with the agent's token and shown from blob: URLs.
func securityHeaders(c *fiber.Ctx) error {
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Cache-Control", "no-cache")
	return c.Next()
}

// Register mounts /console/, /wallboard/, /ops/, their shared assets, the development sign-in endpoints and the
// admin-only /v1/ops API.
func Register(app *fiber.App, o Options) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	registerDevSignIn(app, o.Config)
	for _, page := range []string{"console", "ops", "reports", "wallboard", "assets"} {
		page := page
		files := filesystem.New(filesystem.Config{Root: http.FS(root), PathPrefix: page, Index: "/index.html"})
		app.Use("/"+page, securityHeaders, func(c *fiber.Ctx) error {
			// The pages load their files by absolute paths; the bare "/console" still gets the
			// trailing slash so that the address bar shows the canonical URL.
			if c.Path() == "/"+page && page != "assets" {
				return c.Redirect("/"+page+"/", http.StatusMovedPermanently)
			}
			return files(c)
		})
	}
	newOps(o).register(app.Group("/v1/ops", o.Verifier.Middleware(), auth.Require(auth.RoleAdmin)))
}
