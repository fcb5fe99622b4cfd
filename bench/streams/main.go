// Command streams opens many agents' Server-Sent Event streams to a gateway on loopback (one stream
// per agent, agents a00000…), holds them, and reports the gateway's resident memory (from
// /proc/<pid>/status) and goroutines (go_goroutines on /metrics) before and while they are open. With
// -publish it then changes every agent's presence through the real API (PUT
// /v1/agents/{id}/channels/webchat, which publishes presence.changed to that agent's stream) and
// reports how many of those events arrived and their delay per stream, from the request being sent to
// the event being read. Bounded: it closes everything and exits by itself.
//
// Streams come from several loopback source addresses (127.0.0.2, 127.0.0.3, …), -per-source each,
// so the gateway's per-address stream bound (http.max_streams_per_ip) stays as shipped and no address
// runs out of ephemeral ports.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
)

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// AgentID is the id of the i-th agent of the bench's configuration (bench/streams.sh writes them).
func agentID(i int) string { return fmt.Sprintf("a%05d", i) }

type bench struct {
	base          *url.URL
	secret        string
	issuer        string
	adminToken    string
	publishClient *http.Client
}

func (b *bench) token(agent string, role auth.Role) string {
	t, err := auth.Mint(b.secret, b.issuer, agent, role, time.Hour, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "streams:", err)
		os.Exit(2)
	}
	return t
}

// goroutines reads go_goroutines from the gateway's /metrics.
func (b *bench) goroutines() int {
	req, _ := http.NewRequest(http.MethodGet, b.base.String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+b.adminToken)
	resp, err := b.publishClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// stream is one open stream and when its presence event was sent and read (Unix nanoseconds).
type stream struct {
	conn           net.Conn
	sent, received atomic.Int64
}

// open dials from source, asks for the agent's stream and waits for its header; then a goroutine
// reads it and notes when the first event with an id arrives.
func (b *bench) open(s *stream, source net.IP, agent string) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: source}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", b.base.Host)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /v1/agents/me/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
		b.base.Host, b.token(agent, auth.RoleAgent)); err != nil {
		c.Close()
		return err
	}
	r := bufio.NewReaderSize(c, 512)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		c.Close()
		return fmt.Errorf("status %q: %v", strings.TrimSpace(status), err)
	}
	_ = c.SetDeadline(time.Time{})
	s.conn = c
	go func() {
		for {
			line, err := r.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
			if bytes.HasPrefix(line, []byte("id: ")) && s.received.Load() == 0 {
				s.received.Store(time.Now().UnixNano())
			}
		}
	}()
	return nil
}

// publish changes the agent's webchat presence (online, then offline on a second run) through the API.
func (b *bench) publish(agent, state string) error {
	req, _ := http.NewRequest(http.MethodPut, b.base.String()+"/v1/agents/me/channels/webchat", strings.NewReader(`{"state":"`+state+`"}`))
	req.Header.Set("Authorization", "Bearer "+b.token(agent, auth.RoleAgent))
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.publishClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func saveProfile(from, to string) error {
	resp, err := http.Get(from)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func main() {
	target := flag.String("url", "http://127.0.0.1:8080", "the gateway (loopback only)")
	secret := flag.String("secret", "dev-only-secret", "auth.jwt_secret of the gateway, to mint the agents' tokens")
	issuer := flag.String("issuer", "chatgate", "auth.issuer of the gateway")
	n := flag.Int("n", 10000, "streams to open, one per agent a00000… (at most 60000)")
	perSource := flag.Int("per-source", 250, "streams per loopback source address (keep it under http.max_streams_per_ip)")
	openers := flag.Int("openers", 64, "streams opened at once")
	pid := flag.Int("pid", 0, "the gateway's process id, for its memory")
	hold := flag.Duration("hold", 5*time.Second, "how long to hold the streams open before measuring (at most 1m)")
	doPublish := flag.Bool("publish", true, "change every agent's presence once and measure the events' delivery")
	publishers := flag.Int("publishers", 32, "concurrent presence requests (connections from 127.0.0.1)")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for events after the last request (at most 2m)")
	pprofURL := flag.String("pprof", "", "the gateway's pprof address (a -tags benchpprof build): heap (after a collection) and goroutine profiles are saved before and while the streams are open")
	profileDir := flag.String("profile-dir", ".", "where the profiles go")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Hostname() != "127.0.0.1" {
		fmt.Fprintln(os.Stderr, "streams: the URL must be http://127.0.0.1:port")
		os.Exit(2)
	}
	*n = min(*n, 60000)
	*hold = min(*hold, time.Minute)
	*wait = min(*wait, 2*time.Minute)
	if *perSource < 1 || (*n+*perSource-1) / *perSource > 250 {
		fmt.Fprintln(os.Stderr, "streams: at most 250 source addresses (127.0.0.2–127.0.0.251)")
		os.Exit(2)
	}
	b := &bench{base: u, secret: *secret, issuer: *issuer,
		publishClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *publishers, MaxConnsPerHost: *publishers}}}
	b.adminToken = b.token(agentID(0), auth.RoleAdmin)

	profiles := func(when string) {
		if *pprofURL == "" {
			return
		}
		// gc=1: the heap profile is taken right after a collection, so it holds what is live.
		for _, p := range []string{"heap?gc=1", "goroutine"} {
			name, _, _ := strings.Cut(p, "?")
			if err := saveProfile("http://"+*pprofURL+"/debug/pprof/"+p, fmt.Sprintf("%s/%s-%s-%d.pb.gz", *profileDir, name, when, *n)); err != nil {
				fmt.Fprintln(os.Stderr, "streams: profile:", err)
			}
		}
	}
	rssBefore, goBefore := rss(*pid), b.goroutines()
	profiles("before")
	streams := make([]stream, *n)
	var opened, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, *openers)
	start := time.Now()
	for i := range streams {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			source := net.IPv4(127, 0, 0, byte(2 + i / *perSource))
			if err := b.open(&streams[i], source, agentID(i)); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			opened.Add(1)
		}(i)
	}
	wg.Wait()
	openTime := time.Since(start)
	time.Sleep(*hold)
	rssOpen, goOpen := rss(*pid), b.goroutines()
	profiles("open")
	fmt.Printf("streams=%d opened=%d failed=%d open_time=%s sources=%d gateway_rss_before=%.1fMB gateway_rss_open=%.1fMB per_stream=%.1fKB goroutines_before=%d goroutines_open=%d per_stream=%.2f\n",
		*n, opened.Load(), failed.Load(), openTime.Round(time.Millisecond), (*n+*perSource-1) / *perSource,
		float64(rssBefore)/1e6, float64(rssOpen)/1e6, float64(rssOpen-rssBefore)/float64(max(opened.Load(), 1))/1e3,
		goBefore, goOpen, float64(goOpen-goBefore)/float64(max(opened.Load(), 1)))
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first_error=%q\n", e)
	}

	if *doPublish {
		var publishFailed atomic.Int64
		next := atomic.Int64{}
		pubStart := time.Now()
		var pwg sync.WaitGroup
		for range *publishers {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(streams) {
						return
					}
					if streams[i].conn == nil {
						continue
					}
					streams[i].sent.Store(time.Now().UnixNano())
					if err := b.publish(agentID(i), "online"); err != nil {
						publishFailed.Add(1)
						firstErr.CompareAndSwap(nil, "publish: "+err.Error())
					}
				}
			}()
		}
		pwg.Wait()
		pubTime := time.Since(pubStart)
		deadline := time.Now().Add(*wait)
		count := func() (arrived int64) {
			for i := range streams {
				if streams[i].received.Load() != 0 {
					arrived++
				}
			}
			return arrived
		}
		for count() < opened.Load()-publishFailed.Load() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		rssAfter, goAfter := rss(*pid), b.goroutines()
		var delays []time.Duration
		for i := range streams {
			if r := streams[i].received.Load(); r != 0 && streams[i].sent.Load() != 0 {
				delays = append(delays, time.Duration(r-streams[i].sent.Load()))
			}
		}
		slices.Sort(delays)
		fmt.Printf("published=%d failed=%d publish_time=%s rate=%.0f/s arrived=%d p50=%s p99=%s max=%s gateway_rss_after=%.1fMB goroutines_after=%d\n",
			opened.Load(), publishFailed.Load(), pubTime.Round(time.Millisecond), float64(opened.Load())/pubTime.Seconds(),
			len(delays), percentile(delays, 0.5).Round(time.Microsecond), percentile(delays, 0.99).Round(time.Microsecond),
			percentile(delays, 1).Round(time.Microsecond), float64(rssAfter)/1e6, goAfter)
		if e := firstErr.Load(); e != nil {
			fmt.Printf("first_error=%q\n", e)
		}
	}
	for i := range streams {
		if streams[i].conn != nil {
			streams[i].conn.Close()
		}
	}
}
