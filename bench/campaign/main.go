// Command campaign measures how long agents' replies take from their 202 to the provider while a
// campaign of templates is being sent (issue: replies never wait behind a campaign). It opens
// -conversations conversations on -reply-number (a template each, then the customer answers through
// the signed webhook, which opens the 24-hour window), measures replies alone, then starts -n
// template sends on the campaign numbers at -c concurrent requests and, while they run, posts a reply
// every -interval to those conversations in turn. Each reply's delay is the time from its 202 to the
// moment the fake Cloud API recorded it. It only talks to loopback addresses.
package main

import (
	"bytes"
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
	"github.com/chatgate/chatgate/internal/simulate"
)

type options struct {
	base, fake, secret, appSecret, replyNumber string
	agents, numbers                            []string
	n, conc, conversations, offset             int
	interval                                   time.Duration
}

func main() {
	var o options
	var agents, numbers string
	flag.StringVar(&o.base, "url", "", "the gateway's base URL, http://127.0.0.1:P")
	flag.StringVar(&o.fake, "fake", "", "the fake Cloud API's base URL")
	flag.StringVar(&o.secret, "secret", "", "JWT secret of the gateway")
	flag.StringVar(&o.appSecret, "app-secret", "", "WhatsApp app secret, to sign the customers' answers")
	flag.StringVar(&agents, "agents", "", "comma-separated agent ids")
	flag.StringVar(&numbers, "numbers", "100200300", "comma-separated phone number ids of the campaign")
	flag.StringVar(&o.replyNumber, "reply-number", "100200302", "phone number id of the replied conversations (not in -numbers)")
	flag.IntVar(&o.n, "n", 10000, "templates of the campaign (at most 100000)")
	flag.IntVar(&o.conc, "c", 32, "concurrent campaign requests")
	flag.IntVar(&o.conversations, "conversations", 20, "conversations that get replies")
	flag.IntVar(&o.offset, "offset", 0, "first customer number")
	flag.DurationVar(&o.interval, "interval", 20*time.Millisecond, "time between two replies")
	flag.Parse()
	for _, u := range []string{o.base, o.fake} {
		if !loopback(u) {
			fail(fmt.Errorf("-url and -fake must be loopback URLs"))
		}
	}
	o.n = min(o.n, 100000)
	o.agents, o.numbers = strings.Split(agents, ","), strings.Split(numbers, ",")
	run(o)
}

type conversation struct {
	id, token string
}

func run(o options) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.conc + 8, MaxConnsPerHost: o.conc + 8}}
	tokens := make([]string, len(o.agents))
	for i, a := range o.agents {
		tok, err := auth.Mint(o.secret, "chatgate", a, auth.RoleAgent, time.Hour, time.Now())
		if err != nil {
			fail(err)
		}
		tokens[i] = tok
		if code, raw := call(client, "PUT", o.base+"/v1/agents/me/channels/whatsapp", tok, `{"state":"online"}`, nil); code != 200 {
			fail(fmt.Errorf("log in %s: %d %s", a, code, raw))
		}
	}

	// The replied conversations: a template, then the customer's answer opens the window.
	base := accepted(client, o.fake)
	convs := make([]conversation, o.conversations)
	for i := range convs {
		phone := fmt.Sprintf("+5531%09d", o.offset+i)
		tok := tokens[i%len(tokens)]
		var ans struct {
			ConversationID string `json:"conversation_id"`
		}
		body := fmt.Sprintf(`{"channel":"whatsapp","to":%q,"phone_number_id":%q,"template":{"name":"order_update","language":"pt_BR","body_params":["Cliente","#1"]}}`, phone, o.replyNumber)
		if code, raw := call(client, "POST", o.base+"/v1/conversations", tok, body, &ans); code != 202 {
			fail(fmt.Errorf("start a replied conversation: %d %s", code, raw))
		}
		hook := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: o.replyNumber, From: phone, Name: "Cliente",
			Text: "quero falar com alguém", At: time.Now()})
		req, _ := http.NewRequest("POST", o.base+"/webhooks/whatsapp", bytes.NewReader(hook))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(hook, o.appSecret))
		resp, err := client.Do(req)
		if err != nil {
			fail(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			fail(fmt.Errorf("customer's answer: %d %s", resp.StatusCode, raw))
		}
		convs[i] = conversation{id: ans.ConversationID, token: tok}
	}
	waitAccepted(client, o.fake, base+len(convs))

	// Replies alone, then the same pace of replies during the campaign.
	quiet := newReplies()
	stop := make(chan struct{})
	go func() { time.Sleep(time.Duration(4*len(convs)) * o.interval); close(stop) }()
	quiet.post(client, o, convs, "q", stop)
	waitAccepted(client, o.fake, base+len(convs)+quiet.count())

	busy := newReplies()
	campaignDone := make(chan struct{})
	var campaignOK, campaignBad atomic.Int64
	start := time.Now()
	go func() {
		defer close(campaignDone)
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < o.conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= o.n {
						return
					}
					body := fmt.Sprintf(`{"channel":"whatsapp","to":"+5541%09d","phone_number_id":%q,`+
						`"template":{"name":"order_update","language":"pt_BR","body_params":["Cliente","#%d"]}}`,
						o.offset+i, o.numbers[i%len(o.numbers)], i)
					if code, raw := call(client, "POST", o.base+"/v1/conversations", tokens[i%len(tokens)], body, nil); code != 202 {
						if campaignBad.Add(1) <= 3 {
							fmt.Fprintf(os.Stderr, "campaign: %d %s\n", code, raw)
						}
						continue
					}
					campaignOK.Add(1)
				}
			}()
		}
		wg.Wait()
	}()
	busy.post(client, o, convs, "b", campaignDone)
	enqueued := time.Since(start)
	want := base + len(convs) + quiet.count() + int(campaignOK.Load()) + busy.count()
	waitAccepted(client, o.fake, want)
	drained := time.Since(start)

	arrived := providerTimes(client, o.fake, o.replyNumber)
	fmt.Printf("campaign: templates=%d errors=%d accepted_s=%.2f all_sent_s=%.2f sends_per_second=%.0f\n",
		campaignOK.Load(), campaignBad.Load(), enqueued.Seconds(), drained.Seconds(), float64(campaignOK.Load())/drained.Seconds())
	fmt.Printf("replies alone:          %s\n", quiet.report(arrived))
	fmt.Printf("replies during campaign: %s\n", busy.report(arrived))
}

// replies records when each reply was answered 202, by its text.
type replies struct {
	mu       sync.Mutex
	answered map[string]time.Time
	bad      int
}

func newReplies() *replies { return &replies{answered: map[string]time.Time{}} }

func (r *replies) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.answered)
}

// post sends a reply every interval, to the conversations in turn, until stop is closed. Each reply
// runs on its own goroutine, so a slow answer does not delay the next.
func (r *replies) post(client *http.Client, o options, convs []conversation, tag string, stop <-chan struct{}) {
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	var wg sync.WaitGroup
	for k := 0; ; k++ {
		select {
		case <-stop:
			wg.Wait()
			return
		case <-tick.C:
		}
		c := convs[k%len(convs)]
		text := fmt.Sprintf("reply %s-%d", tag, k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw := call(client, "POST", o.base+"/v1/conversations/"+c.id+"/messages", c.token, fmt.Sprintf(`{"text":%q}`, text), nil)
			at := time.Now()
			r.mu.Lock()
			defer r.mu.Unlock()
			if code != 202 {
				if r.bad++; r.bad <= 3 {
					fmt.Fprintf(os.Stderr, "reply: %d %s\n", code, raw)
				}
				return
			}
			r.answered[text] = at
		}()
	}
}

// report gives the replies' delays from 202 to the provider.
func (r *replies) report(arrived map[string]time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d []time.Duration
	for text, at := range r.answered {
		if got, ok := arrived[text]; ok {
			d = append(d, got.Sub(at))
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	return fmt.Sprintf("replies=%d errors=%d at_provider=%d p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f",
		len(r.answered), r.bad, len(d), pct(0.5), pct(0.9), pct(0.99), pct(1))
}

// providerTimes is when the fake recorded each text sent from number, by its body.
func providerTimes(client *http.Client, fake, number string) map[string]time.Time {
	resp, err := client.Get(fake + "/_fake/calls?phone_number_id=" + url.QueryEscape(number))
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	var out struct {
		Calls []struct {
			Type string          `json:"type"`
			Body json.RawMessage `json:"body"`
			At   time.Time       `json:"at"`
		} `json:"calls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		fail(err)
	}
	times := map[string]time.Time{}
	for _, c := range out.Calls {
		var b struct {
			Text struct {
				Body string `json:"body"`
			} `json:"text"`
		}
		if c.Type == "text" && json.Unmarshal(c.Body, &b) == nil {
			times[b.Text.Body] = c.At
		}
	}
	return times
}

func call(client *http.Client, method, target, token, body string, out any) (int, string) {
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, string(raw)
}

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

func waitAccepted(client *http.Client, fake string, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for accepted(client, fake) < want {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("the provider accepted %d of %d sends within 5 minutes", accepted(client, fake), want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loopback(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "campaign:", err)
	os.Exit(1)
}
