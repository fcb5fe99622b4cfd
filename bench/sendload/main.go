// Command sendload drives the outbound benchmark: it sends N new-conversation requests (to a new
// customer each, or -per-customer to each) to chatgate's POST /v1/conversations or to the BullMQ comparison's POST /send, at a fixed
// concurrency, then waits until the fake Cloud API has accepted every one of them, and prints the
// throughput of the whole path. It only talks to loopback addresses.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
)

func main() {
	target := flag.String("url", "", "endpoint: http://127.0.0.1:P/v1/conversations (chatgate) or http://127.0.0.1:P/send (bullmq)")
	fake := flag.String("fake", "", "the fake Cloud API's base URL, to count accepted sends")
	n := flag.Int("n", 5000, "requests to send (at most 100000)")
	conc := flag.Int("c", 32, "concurrent requests")
	secret := flag.String("secret", "", "JWT secret: sign in the agents and log them in on WhatsApp first (chatgate)")
	issuer := flag.String("issuer", "chatgate", "JWT issuer the gateway expects")
	agents := flag.String("agents", "", "comma-separated agent ids to send as, round robin")
	numbers := flag.String("numbers", "100200300", "comma-separated phone number ids to send from, round robin")
	offset := flag.Int("offset", 0, "first customer number, so rounds do not reuse customers")
	perCustomer := flag.Int("per-customer", 1, "consecutive requests to the same customer (one conversation, sent in order by chatgate)")
	flag.Parse()

	for _, u := range []string{*target, *fake} {
		if !loopback(u) {
			fmt.Fprintln(os.Stderr, "sendload: -url and -fake must be loopback URLs")
			os.Exit(2)
		}
	}
	*n = min(*n, 100000)
	*perCustomer = max(*perCustomer, 1)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}}
	agentIDs := strings.Split(*agents, ",")
	numberIDs := strings.Split(*numbers, ",")
	tokens := make([]string, len(agentIDs))
	if *secret != "" {
		base := strings.TrimSuffix(*target, "/v1/conversations")
		for i, a := range agentIDs {
			tok, err := auth.Mint(*secret, *issuer, a, auth.RoleAgent, time.Hour, time.Now())
			if err != nil {
				fail(err)
			}
			tokens[i] = tok
			req, _ := http.NewRequest("PUT", base+"/v1/agents/me/channels/whatsapp", strings.NewReader(`{"state":"online"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != 200 {
				fail(fmt.Errorf("log in %s: %v %v", a, err, resp))
			}
			resp.Body.Close()
		}
	}
	baseline := accepted(client, *fake)

	var (
		next, ok, bad atomic.Int64
		mu            sync.Mutex
		latencies     = make([]time.Duration, 0, *n)
		wg            sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				// One customer's requests share the agent and the number: they join one conversation.
				c := i / *perCustomer
				body := fmt.Sprintf(`{"channel":"whatsapp","to":"+5521%09d","phone_number_id":%q,`+
					`"template":{"name":"order_update","language":"pt_BR","body_params":["Cliente","#%d"]}}`,
					*offset+c, numberIDs[c%len(numberIDs)], i)
				req, _ := http.NewRequest("POST", *target, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if tok := tokens[c%len(tokens)]; tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				if err != nil {
					bad.Add(1)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					if bad.Add(1) <= 3 {
						fmt.Fprintf(os.Stderr, "sendload: %d %s\n", resp.StatusCode, raw)
					}
					continue
				}
				ok.Add(1)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	enqueued := time.Since(start)
	want := baseline + int(ok.Load())
	deadline := time.Now().Add(3 * time.Minute)
	for accepted(client, *fake) < want {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("the provider accepted %d of %d sends within 3 minutes", accepted(client, *fake)-baseline, ok.Load()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	total := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	fmt.Printf("requests=%d accepted_202=%d errors=%d enqueue_s=%.2f http_p50_ms=%.2f http_p99_ms=%.2f sent_s=%.2f sends_per_second=%.0f\n",
		*n, ok.Load(), bad.Load(), enqueued.Seconds(), ms(pct(0.5)), ms(pct(0.99)), total.Seconds(), float64(ok.Load())/total.Seconds())
}

// accepted asks the fake how many sends it accepted so far.
func accepted(client *http.Client, fake string) int {
	resp, err := client.Get(fake + "/_fake/calls?phone_number_id=0")
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	var out struct {
		Accepted int `json:"accepted"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		fail(err)
	}
	return out.Accepted
}

func loopback(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sendload:", err)
	os.Exit(1)
}
