package widget_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/simulate"
	webchathook "github.com/chatgate/chatgate/webhooks/webchat"
)

// BenchmarkWidgetMessage measures a visitor's message through the widget endpoint over loopback:
// visitor JWT → two Redis rate-limit scripts (IP, visitor) → normalize → routing's intake script →
// echo on the visitor's stream → 202. Each parallel client is its own visitor.
func BenchmarkWidgetMessage(b *testing.B) {
	e := newEnv(b, envOptions{ipRate: 1 << 30, visitorRate: 1 << 30})
	client := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.url, "http://"), MaxConns: 64}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tok, _ := e.session("shop", shopOrigin)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(e.url + "/webchat/v1/messages")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Origin", shopOrigin)
			req.SetBodyString(`{"text":"hello, is anyone there?"}`)
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 202 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}

// BenchmarkWebhookIntake measures the signed WebChat webhook over loopback: site lookup → timestamp
// window → HMAC over "<timestamp>.<body>" → normalize → routing's intake script → 200.
func BenchmarkWebhookIntake(b *testing.B) {
	e := newEnv(b, envOptions{})
	client := &fasthttp.HostClient{Addr: strings.TrimPrefix(e.url, "http://"), MaxConns: 64}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		for pb.Next() {
			n := seq.Add(1)
			body := simulate.WebChatBody(simulate.WebChatMessage{Site: "shop", VisitorID: fmt.Sprintf("v-%d", n%1000), ID: fmt.Sprintf("m-%d", n), Text: "hello"})
			ts, sig := simulate.SignWebChat(body, shopSecret, time.Now())
			req.Reset()
			req.SetRequestURI(e.url + "/webhooks/webchat")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set(webchathook.HeaderTimestamp, ts)
			req.Header.Set(webchathook.HeaderSignature, sig)
			req.SetBody(body)
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}
