package integrations

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/outbox"
	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/internal/topology"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/routing"
)

// The test binary runs as a gateway process of its own when asked (TestMain), so a test can kill it.
func TestMain(m *testing.M) {
	if os.Getenv("INTEG_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child runs the integrations of the test's Redis database until killed.
func child() int {
	db, _ := strconv.Atoi(os.Getenv("INTEG_DB"))
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(redistest.AddrEnv), DB: db})
	cfg := testConfig(hook("crm", os.Getenv("INTEG_URL"), crashHook))
	ks := keyspace.New("t")
	topo := topology.New(cfg)
	ps := presence.NewStore(client, ks, topo, presence.Options{HistoryRetention: time.Hour})
	r := routing.NewRouter(client, ks, topo, routing.Options{Pauser: ps})
	s, err := New(client, ks, r, cfg.Integrations, Options{Clock: clock.Real{}, MediaLinks: testMediaLinks, Lease: time.Second})
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}

func crashHook(w *configs.Webhook) { w.Events = []string{"conversation.opened"} }

// A process killed in the middle of a delivery: once its asynq lease has expired (moved back in
// time here rather than waited for), another process delivers the event again, with the same
// webhook-id.
func TestKilledWorkerRedeliversWithTheSameID(t *testing.T) {
	got := make(chan string, 4)
	rc := newReceiver(t, secretA, func(r received, n int) int {
		got <- r.id
		if n == 0 {
			time.Sleep(2 * time.Second) // the child is killed meanwhile; the answer goes nowhere
			return http.StatusOK
		}
		return http.StatusOK
	})
	client := redistest.Client(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INTEG_CHILD=1", "INTEG_URL="+rc.srv.URL, "INTEG_DB="+strconv.Itoa(client.Options().DB))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	e := newEnvOn(t, client, nil, hook("crm", rc.srv.URL, crashHook))
	ks := keyspace.New("t")
	testutil.Eventually(t, 20*time.Second, "the child process started", func() bool {
		return client.Exists(context.Background(), outbox.OnKey(ks)).Val() == 1
	})
	e.customer(t, "5511999990007", "text", "oi")
	var first string
	select {
	case first = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the child never delivered")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// the dead worker's lease, as if its 30 s and the recoverer's margin had passed
	lease := "asynq:{" + QueuePrefix + "crm}:lease"
	ids := client.ZRange(context.Background(), lease, 0, -1).Val()
	if len(ids) != 1 {
		t.Fatalf("leases of the killed worker: %v", ids)
	}
	client.ZAdd(context.Background(), lease, redis.Z{Score: 1, Member: ids[0]})
	e.start(t, nil) // another process: its asynq recoverer runs at start
	select {
	case again := <-got:
		if again != first {
			t.Fatalf("redelivered as %q, first %q", again, first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("never redelivered")
	}
	testutil.Eventually(t, 10*time.Second, "the hold released", func() bool {
		h, _ := HeldTotal(context.Background(), client, ks)
		return h.Conversations == 0
	})
}
