// Command offered measures webhook received → card.offered read on an agent's event stream, on a
// gateway on loopback: it logs agents in, opens their streams, posts signed WhatsApp notifications
// (each from a new customer, so each makes a card) at a fixed rate, and times each message from the
// moment its request is sent to the moment its card.offered event is read. Bounded in count and time;
// it only talks to the loopback URL given.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/simulate"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "offered: "+format+"\n", args...)
	os.Exit(1)
}

// cpuTime is a process's user+system CPU time, from /proc/<pid>/stat (0 when unreadable).
func cpuTime(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// afterPreview is what follows the first "preview":" of an event's JSON (nil when there is none).
func afterPreview(data []byte) []byte {
	const key = `"preview":"`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return nil
	}
	return data[i+len(key):]
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "gateway base URL (loopback only)")
	appSecret := flag.String("secret", "dev-only", "WhatsApp app secret for X-Hub-Signature-256")
	jwtSecret := flag.String("jwt-secret", "dev-only-secret", "auth.jwt_secret of the gateway")
	issuer := flag.String("issuer", "chatgate", "auth.issuer of the gateway")
	pnid := flag.String("phone-number-id", "100200300", "receiving phone number id (its queue must have the agents)")
	agents := flag.String("agents", "b%03d", "agent id pattern, numbered from 0")
	nAgents := flag.Int("n", 100, "agents to log in and stream (at most 1000)")
	rate := flag.Int("rate", 2000, "messages per second (at most 20000)")
	dur := flag.Duration("d", 10*time.Second, "sending time (at most 1m)")
	conc := flag.Int("c", 32, "concurrent webhook connections")
	pids := flag.String("pids", "", "name=pid,… of processes whose CPU time per message to report (the gateway, redis-server)")
	cpuProfile := flag.String("cpuprofile", "", "write this load generator's CPU profile over the sending time to the file")
	flag.Parse()
	procs := [][2]string{{"self", "self"}}
	for _, p := range strings.Split(*pids, ",") {
		if name, pid, ok := strings.Cut(p, "="); ok {
			procs = append(procs, [2]string{name, pid})
		}
	}

	u, err := url.Parse(*base)
	if err != nil || !(u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost") {
		fail("the URL must be on loopback")
	}
	*nAgents = min(max(*nAgents, 1), 1000)
	*rate = min(max(*rate, 1), 20000)
	*dur = min(*dur, time.Minute)
	total := int(float64(*rate) * dur.Seconds())
	sent := make([]atomic.Int64, total) // unix ns each request was sent
	got := make([]atomic.Int64, total)  // unix ns its card.offered was read
	tag := strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	prefix := "bench " + tag + " "

	// Log in and open every agent's stream; wait until each has its first byte.
	streamClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *nAgents, DisableCompression: true}}
	var ready sync.WaitGroup
	var received, foreign atomic.Int64
	for i := 0; i < *nAgents; i++ {
		agent := fmt.Sprintf(*agents, i)
		tok, err := auth.Mint(*jwtSecret, *issuer, agent, auth.RoleAgent, time.Hour, time.Now())
		if err != nil {
			fail("mint: %v", err)
		}
		req, _ := http.NewRequest("PUT", *base+"/v1/agents/me/channels/whatsapp", strings.NewReader(`{"state":"online"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := streamClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			fail("log in %s: %v %v", agent, err, resp)
		}
		resp.Body.Close()
		req, _ = http.NewRequest("GET", *base+"/v1/agents/me/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "text/event-stream")
		resp, err = streamClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			fail("stream %s: %v %v", agent, err, resp)
		}
		ready.Add(1)
		go func() {
			defer resp.Body.Close()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			first := true
			offered := false
			for {
				line, err := r.ReadSlice('\n')
				if first {
					first = false
					ready.Done()
				}
				if err != nil {
					return
				}
				switch {
				case bytes.HasPrefix(line, []byte("event: ")):
					offered = bytes.HasPrefix(line[7:], []byte("card.offered"))
				case offered && bytes.HasPrefix(line, []byte("data: ")):
					now := time.Now().UnixNano()
					offered = false
					// The card's preview is the message's text, "<prefix><k>": found in the JSON rather
					// than decoded, which cost this load generator more CPU than anything but its I/O.
					// ("preview" is a member of the card only, and a quote in a text is escaped.)
					num, ok := bytes.CutPrefix(afterPreview(line[6:]), []byte(prefix))
					end := bytes.IndexByte(num, '"')
					if !ok || end < 0 {
						foreign.Add(1)
						continue
					}
					n, err := strconv.Atoi(string(num[:end]))
					if err != nil || n < 0 || n >= total {
						foreign.Add(1)
						continue
					}
					got[n].CompareAndSwap(0, now)
					received.Add(1)
				}
			}
		}()
	}
	ready.Wait()

	// Send at a fixed rate: message k is due at start + k/rate, whichever worker sends it.
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: *conc, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	// The same bodies simulate.WhatsAppNotification builds, made at a fraction of its cost.
	notifications := simulate.NewTextNotifications(*pnid, "Bench")
	var next, non2xx, failed, late atomic.Int64
	var wg sync.WaitGroup
	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		cpu0[i] = cpuTime(p[1])
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail("cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("cpuprofile: %v", err)
		}
		defer f.Close()
	}
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			ids, signer := simulate.NewMessageIDs(rand.Uint64(), rand.Uint64()), simulate.NewWhatsAppSigner(*appSecret)
			var body, sig []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= total {
					return
				}
				due := start.Add(time.Duration(int64(k) * int64(time.Second) / int64(*rate)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				} else if d < -time.Millisecond {
					late.Add(1)
				}
				body = notifications.Append(body[:0], fmt.Sprintf("+5%s%08d", tag, k), ids.Next(), time.Now(), prefix+strconv.Itoa(k))
				sig = signer.Sign(sig[:0], body)
				req.Reset()
				req.SetRequestURI(*base + "/webhooks/whatsapp")
				req.Header.SetMethod("POST")
				req.Header.SetContentType("application/json")
				req.Header.SetBytesV("X-Hub-Signature-256", sig)
				req.SetBody(body)
				sent[k].Store(time.Now().UnixNano())
				err := client.Do(req, resp)
				switch {
				case err != nil:
					failed.Add(1)
				case resp.StatusCode()/100 != 2:
					non2xx.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for deadline := time.Now().Add(3 * time.Second); received.Load() < int64(total) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}

	pprof.StopCPUProfile()
	var cpu []string
	for i, p := range procs {
		cpu = append(cpu, fmt.Sprintf("%s=%.0fµs", p[0], float64((cpuTime(p[1])-cpu0[i]).Microseconds())/float64(total)))
	}
	lat := make([]time.Duration, 0, total)
	for k := range total {
		if g, s := got[k].Load(), sent[k].Load(); g != 0 && s != 0 {
			lat = append(lat, time.Duration(g-s))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*p)]
	}
	fmt.Printf("agents=%d rate=%d/s sent=%d in %s (%.0f/s, %d late >1ms) non2xx=%d errors=%d offered_read=%d missing=%d foreign=%d p50=%s p90=%s p99=%s max=%s\n",
		*nAgents, *rate, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), late.Load(), non2xx.Load(), failed.Load(),
		len(lat), total-len(lat), foreign.Load(), pct(0.5).Round(time.Microsecond), pct(0.9).Round(time.Microsecond),
		pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	fmt.Printf("  CPU per message: %s\n", strings.Join(cpu, " "))
}
