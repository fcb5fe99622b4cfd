package webhooks_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
)

// BenchmarkIntake measures the whole intake path in process: signed request over loopback → verify →
// parse → one Lua script in Redis → 200. (bench/intake.sh measures the binary against a bare handler.)
func BenchmarkIntake(b *testing.B) {
	url, _ := server(b, redistest.Client(b))
	client := &fasthttp.HostClient{Addr: strings.TrimPrefix(url, "http://"), MaxConns: 64}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		for pb.Next() {
			n := seq.Add(1)
			body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: fmt.Sprintf("+55119%08d", n%1000), Text: "hello"})
			req.Reset()
			req.SetRequestURI(url + "/webhooks/whatsapp")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, appSecret))
			req.SetBody(body)
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}
