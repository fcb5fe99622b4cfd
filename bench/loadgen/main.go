// Command loadgen sends signed WhatsApp notifications (each with a new message id, from a set of
// customers) to a gateway on loopback at a fixed concurrency for a bounded time, and prints the
// throughput and latency percentiles. It only talks to the URL given, which must be loopback.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/simulate"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/webhooks/whatsapp", "webhook URL (loopback only)")
	secret := flag.String("secret", "dev-only", "app secret for X-Hub-Signature-256")
	pnid := flag.String("phone-number-id", "100200300", "receiving phone number id")
	conc := flag.Int("c", 32, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "duration (at most 5m)")
	rate := flag.Int("rate", 0, "target requests per second in total (0: as fast as possible)")
	customers := flag.Int("customers", 1000, "distinct customers the messages come from")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || !(u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1") {
		fmt.Fprintln(os.Stderr, "loadgen: the URL must be on loopback")
		os.Exit(2)
	}
	if *dur > 5*time.Minute {
		*dur = 5 * time.Minute
	}
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: *conc, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}

	var (
		sent, ok, non2xx, failed atomic.Int64
		mu                       sync.Mutex
		latencies                []time.Duration
		wg                       sync.WaitGroup
		seq                      atomic.Int64
	)
	deadline := time.Now().Add(*dur)
	// The same bodies simulate.WhatsAppNotification builds, made at a fraction of its cost: this
	// generator's CPU competes with the gateway's for the machine.
	notifications := simulate.NewTextNotifications(*pnid, "Load")
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(int64(time.Second) * int64(*conc) / int64(*rate))
	}
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			ids, signer := simulate.NewMessageIDs(rand.Uint64(), rand.Uint64()), simulate.NewWhatsAppSigner(*secret)
			var body, sig []byte
			next := time.Now()
			for time.Now().Before(deadline) {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				n := seq.Add(1)
				body = notifications.Append(body[:0], fmt.Sprintf("+55119%08d", n%int64(*customers)), ids.Next(), time.Now(), "load test message")
				sig = signer.Sign(sig[:0], body)
				req.Reset()
				req.SetRequestURI(*target)
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.Header.SetBytesV("X-Hub-Signature-256", sig)
				req.SetBody(body)
				t0 := time.Now()
				err := client.Do(req, resp)
				el := time.Since(t0)
				sent.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
				case resp.StatusCode()/100 == 2:
					ok.Add(1)
					local = append(local, el)
				default:
					non2xx.Add(1)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(float64(len(latencies)-1)*p)]
	}
	fmt.Printf("url=%s c=%d d=%s sent=%d 2xx=%d non2xx=%d errors=%d rps=%.0f p50=%s p99=%s\n",
		strings.TrimSpace(*target), *conc, elapsed.Round(time.Millisecond), sent.Load(), ok.Load(), non2xx.Load(), failed.Load(),
		float64(ok.Load())/elapsed.Seconds(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
}
