package httpx

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// fasthttp reuses a connection's request buffers: a label kept from one request must not change
// with the next one on the same connection (the method read in place would turn GET into PUT).
func TestRequestMetricLabelsOutliveTheRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := NewApp(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg})
	ok := func(c *fiber.Ctx) error { return c.SendString("ok") }
	app.Get("/a", ok)
	app.Put("/a", ok)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}} // one kept-alive connection
	for _, method := range []string{"GET", "PUT"} {
		req, _ := http.NewRequest(method, "http://"+ln.Addr().String()+"/a", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "chatgate_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					seen[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if seen["GET"] != 1 || seen["PUT"] != 1 || len(seen) != 2 {
		t.Fatalf("requests by method: %v, want one GET and one PUT", seen)
	}
}
