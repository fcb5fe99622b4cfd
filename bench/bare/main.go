// Command bare serves a bare fiber handler that answers every POST with 200: the baseline the
// webhook intake is measured against (BENCHMARKS.md).
package main

import (
	"flag"
	"log"

	"github.com/gofiber/fiber/v2"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address")
	flag.Parse()
	app := fiber.New(fiber.Config{DisableStartupMessage: true, BodyLimit: 1 << 20})
	app.Post("/*", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	log.Fatal(app.Listen(*listen))
}
