package presence

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/redistest"
)

// BenchmarkToggleHTTP measures a toggle round trip through a real listener: HTTP → JWT → Lua on
// Redis → JSON response. Each iteration is a real transition (online and offline alternate).
func BenchmarkToggleHTTP(b *testing.B) {
	s := newTestStore(b, redistest.Client(b), clock.Real{})
	app := newTestAPI(b, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	defer app.Shutdown()
	tok := "Bearer " + token(b, "sam", auth.RoleAgent, time.Hour)
	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 64}
	bodies := [][]byte{[]byte(`{"state":"online"}`), []byte(`{"state":"offline"}`)}
	url := "http://" + ln.Addr().String() + "/v1/agents/me/channels/whatsapp"
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		i := 0
		for pb.Next() {
			req.Reset()
			req.SetRequestURI(url)
			req.Header.SetMethod("PUT")
			req.Header.Set("Authorization", tok)
			req.Header.SetContentType("application/json")
			req.SetBody(bodies[i%2])
			i++
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("toggle: %v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}
