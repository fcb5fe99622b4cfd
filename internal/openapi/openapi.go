// Package openapi holds the OpenAPI 3.1 document of chatgate's own HTTP API and serves it as JSON.
// The document is written in YAML beside this file (easier to review) and converted once, at start.
package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"
)

// Path is where the document is served.
const Path = "/openapi.json"

//go:embed openapi.yaml
var source []byte

var (
	once     sync.Once
	document []byte
	etag     string
	buildErr error
)

// YAML is the document as written.
func YAML() []byte { return bytes.Clone(source) }

// JSON is the document as JSON, the form integrators' generators read.
func JSON() ([]byte, error) {
	once.Do(func() {
		var tree any
		if buildErr = yaml.Unmarshal(source, &tree); buildErr != nil {
			return
		}
		if document, buildErr = json.MarshalIndent(tree, "", "  "); buildErr != nil {
			return
		}
		sum := sha256.Sum256(document)
		etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	})
	if buildErr != nil {
		return nil, fmt.Errorf("openapi: the embedded document does not convert: %w", buildErr)
	}
	return document, nil
}

// Register serves the document at Path, open like /healthz, with an ETag so that clients may cache it.
func Register(app fiber.Router) error {
	body, err := JSON()
	if err != nil {
		return err
	}
	app.Get(Path, func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		c.Set(fiber.HeaderETag, etag)
		if c.Get(fiber.HeaderIfNoneMatch) == etag {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(body)
	})
	return nil
}
