package webhooks

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
)

// TestSendReceiptIsJSON: the hand-written receipt is byte for byte what c.JSON wrote.
func TestSendReceiptIsJSON(t *testing.T) {
	for _, r := range []receipt{
		{Status: "ok"},
		{Status: "ok", Recorded: 1},
		{Status: "ok", Recorded: 3, Duplicates: 12, Statuses: 7},
		{Status: "ok", Recorded: 1, Duplicates: 2, Statuses: 3, Pending: 40},
	} {
		app := fiber.New()
		app.Post("/", func(c *fiber.Ctx) error { return sendReceipt(c, r) })
		resp, err := app.Test(httptest.NewRequest("POST", "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		want, _ := json.Marshal(r)
		if string(got) != string(want) || resp.Header.Get("Content-Type") != fiber.MIMEApplicationJSON {
			t.Errorf("got %s (%s), want %s (%s)", got, resp.Header.Get("Content-Type"), want, fiber.MIMEApplicationJSON)
		}
	}
}
