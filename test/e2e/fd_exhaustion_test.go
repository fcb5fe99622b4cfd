package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/testutil"
)

// startCmd starts cmd as one of the environment's processes, reading the configuration file config.
func (e *env) startCmd(name string, cmd *exec.Cmd, config string) *process {
	e.t.Helper()
	cmd.Env = append(cleanEnv(), "CHATGATE_CONFIG="+config)
	p := &process{name: name, cmd: cmd, logs: &tail{max: 256 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

// startLimited starts `chatgate serve` under `ulimit -n noFile`, which sets the soft and the hard
// limit, so the gateway cannot raise it.
func (e *env) startLimited(name, addr string, noFile int) *process {
	e.t.Helper()
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, noFile), binary, "serve", "--listen", addr)
	p := e.startCmd(name, cmd, e.config)
	p.addr = addr
	e.waitHTTP(p.url()+"/readyz", 200)
	return p
}

var openStreamsMetric = regexp.MustCompile(`(?m)^chatgate_open_streams (\d+)$`)

// openStreams reads the process's chatgate_open_streams gauge.
func (e *env) openStreams(p *process) int {
	r, err := e.do("GET", p.url()+"/metrics", nil, bearer(e.t, "ops", auth.RoleAdmin))
	if err != nil || r.status != 200 {
		return -1
	}
	m := openStreamsMetric.FindSubmatch(r.body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// attackTally counts what the attack's connections got.
type attackTally struct {
	accepted, tooMany, full, closed, other atomic.Int32
	slowestRefusal                         atomic.Int64 // nanoseconds
	mu                                     sync.Mutex
	held                                   []net.Conn
}

func (a *attackTally) hold(c net.Conn) {
	a.mu.Lock()
	a.held = append(a.held, c)
	a.mu.Unlock()
}

func (a *attackTally) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.held {
		c.Close()
	}
	a.held = nil
}

func (a *attackTally) String() string {
	return fmt.Sprintf("streams held=%d refused 429=%d 503=%d closed/reset=%d other=%d slowest refusal=%v",
		a.accepted.Load(), a.tooMany.Load(), a.full.Load(), a.closed.Load(), a.other.Load(), time.Duration(a.slowestRefusal.Load()).Round(time.Millisecond))
}

// openVisitorStream asks for a visitor's event stream on a raw connection and keeps it when it is
// granted; a refusal must come at once, with its JSON error, on a connection the server closes.
func (a *attackTally) openVisitorStream(addr, token string) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		a.closed.Add(1)
		return
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(c, "GET /webchat/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\nAuthorization: Bearer "+token+"\r\n\r\n")
	if err != nil {
		c.Close()
		a.closed.Add(1)
		return
	}
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		a.closed.Add(1)
		return
	}
	switch code := strings.Fields(status)[1]; code {
	case "200":
		_ = c.SetDeadline(time.Time{})
		a.accepted.Add(1)
		a.hold(c)
		return
	case "429", "503":
		rest, _ := io.ReadAll(r) // ends when the server closes the connection
		c.Close()
		if !strings.Contains(string(rest), `"error":{"code":"too_many_streams`) && !strings.Contains(string(rest), `"code":"stream_capacity_reached"`) {
			a.other.Add(1)
			return
		}
		if code == "429" {
			a.tooMany.Add(1)
		} else {
			a.full.Add(1)
		}
		for took := int64(time.Since(start)); ; {
			prev := a.slowestRefusal.Load()
			if took <= prev || a.slowestRefusal.CompareAndSwap(prev, took) {
				break
			}
		}
	default:
		c.Close()
		a.other.Add(1)
	}
}

// Fault scenario: descriptor exhaustion by anonymous clients. A gateway under `ulimit -n 900` is
// attacked without any account: 40 widget sessions with 8 event streams each, then 1,000 idle
// connections on top. The streams beyond the per-address bound are refused at once (429, JSON), the
// idle connections drive accept into "too many open files", and the process stays up: an agent's
// stream opened before the attack receives a card during it, and once the attack ends the gateway
// serves new connections again.
func TestAnonymousStreamsCannotExhaustDescriptors(t *testing.T) {
	t.Parallel()
	const noFile, sessions, streamsPerSession, idle = 900, 40, 8, 1000
	e := newEnv(t, options{replicas: 1, agents: 1, offerTimeout: 10 * time.Minute})
	helper := e.replicas[0]
	target := e.startLimited("limited", freeAddr(t), noFile)
	if !testutil.Within(3*time.Second, func() bool { return strings.Contains(target.logs.String(), fmt.Sprintf(`"soft":%d`, noFile)) }) {
		t.Errorf("the start-up log does not give the open-files limit of %d:\n%s", noFile, target.logs.String())
	}

	// a01's stream, on the process under attack, opened before the attack.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agent := e.newStreamReader(agentID(1))
	streamEnded := make(chan error, 1)
	go func() { streamEnded <- agent.follow(ctx, target.url()) }()
	if !testutil.Within(5*time.Second, func() bool { return e.openStreams(target) == 1 }) {
		t.Fatalf("a01's stream did not open on the target (open streams: %d)", e.openStreams(target))
	}
	e.mustOnline(target.url(), "whatsapp", agentID(1))

	attack := &attackTally{}
	defer attack.release()
	attackStart := time.Now()
	var wg sync.WaitGroup
	sessionStatuses := map[int]int{}
	for i := 0; i < sessions; i++ {
		r, err := e.do("POST", target.url()+"/webchat/v1/sessions", []byte(`{"site":"shop"}`), map[string]string{"Origin": "http://127.0.0.1"})
		if err != nil {
			attack.closed.Add(1)
			continue
		}
		sessionStatuses[r.status]++
		var s struct {
			Token string `json:"token"`
		}
		if r.status != 201 || json.Unmarshal(r.body, &s) != nil {
			continue
		}
		for j := 0; j < streamsPerSession; j++ {
			wg.Add(1)
			go func() { defer wg.Done(); attack.openVisitorStream(target.addr, s.Token) }()
		}
	}
	wg.Wait()
	streamsPhase := time.Since(attackStart)
	t.Logf("sessions %v; visitor streams: %s, in %v", sessionStatuses, attack, streamsPhase.Round(time.Millisecond))
	if sessionStatuses[201] != sessions {
		t.Errorf("sessions: %v, want %d created", sessionStatuses, sessions)
	}
	// One address may hold http.max_streams_per_ip (256) streams, a01's included.
	if n := attack.accepted.Load(); n > 255 || n < 200 {
		t.Errorf("the attack holds %d streams; want at most 255 (256 per address, a01's is one) and not far fewer", n)
	}
	if attack.tooMany.Load() == 0 {
		t.Errorf("no visitor stream was refused with 429: %s", attack)
	}
	if attack.other.Load() > 0 {
		t.Errorf("refusals without their JSON error: %s", attack)
	}
	if slowest := time.Duration(attack.slowestRefusal.Load()); slowest > 2*time.Second {
		t.Errorf("the slowest refusal took %v; a refusal must come at once", slowest)
	}

	// Idle connections on top, until accept runs out of descriptors.
	dialFailures := 0
	for i := 0; i < idle; i++ {
		c, err := net.DialTimeout("tcp", target.addr, 2*time.Second)
		if err != nil {
			dialFailures++
			continue
		}
		attack.hold(c)
	}
	if !testutil.Within(5*time.Second, func() bool { return strings.Contains(target.logs.String(), "accept failed") }) {
		t.Errorf("accept never failed: the attack did not exhaust the descriptors, the scenario did not bite")
	}

	// During the attack a customer writes; a01's stream, open before it, receives the card.
	if r, err := e.postWhatsApp(helper.url(), whatsAppMessage(customer(1), "wamid.fd.during", "during the attack")); err != nil || r.status != 200 {
		t.Fatalf("webhook to the other replica during the attack: %d %v", r.status, err)
	}
	offered := func() bool {
		agent.mu.Lock()
		defer agent.mu.Unlock()
		for _, ev := range agent.order {
			if ev.typ == "card.offered" {
				return true
			}
		}
		return false
	}
	if !testutil.Within(10*time.Second, offered) {
		t.Errorf("a01's stream received no card.offered during the attack")
	}
	if !target.alive() {
		t.Fatalf("the gateway exited under the attack:\n%s", target.logs.String())
	}
	attackTook := time.Since(attackStart)
	attack.release()

	// After the attack the process serves new connections again, a01's stream still open.
	if !testutil.Within(20*time.Second, func() bool {
		r, err := e.do("GET", target.url()+"/healthz", nil, nil)
		return err == nil && r.status == 200
	}) {
		t.Fatal("the gateway did not serve again within 20 s of the attack ending")
	}
	select {
	case err := <-streamEnded:
		t.Errorf("a01's stream ended: %v", err)
	default:
	}
	if !testutil.Within(10*time.Second, func() bool { return e.openStreams(target) == 1 }) {
		t.Errorf("open streams after the attack: %d, want a01's alone", e.openStreams(target))
	}
	if !target.alive() {
		t.Fatal("the gateway exited after the attack")
	}
	t.Logf("ulimit -n %d: %d sessions × %d streams, then %d idle connections (%d dials failed); %s; attack held %v; a01's stream got its card; serving again afterwards",
		noFile, sessions, streamsPerSession, idle, dialFailures, attack, attackTook.Round(time.Millisecond))
}
