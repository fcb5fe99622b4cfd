package integrations

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
)

// TestIdleSubscriptionsWaitOnRedis: each subscription's workers, idle, wait on Redis for a task
// instead of asking every 20 ms (each ask runs asynq's dequeue script, hence one RPOPLPUSH: three
// subscriptions polling would run about 150 a second), and the service still shuts down at once.
// The Redis is the test's own, so no other test's commands are counted.
func TestIdleSubscriptionsWaitOnRedis(t *testing.T) {
	rs := redistest.StartServer(t)
	client := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = client.Close() })
	rc := newReceiver(t, secretA, nil)
	e := newEnvOn(t, client, nil, hook("a", rc.srv.URL), hook("b", rc.srv.URL), hook("c", rc.srv.URL))
	s := e.start(t, nil)
	time.Sleep(300 * time.Millisecond)
	calls := func() (pops, waits int) {
		info, err := client.Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, _ := strings.Cut(strings.TrimSpace(line), ":calls=")
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			switch name {
			case "cmdstat_rpoplpush": // inside asynq's dequeue script
				pops = n
			case "cmdstat_blmove":
				waits = n
			}
		}
		return pops, waits
	}
	p0, w0 := calls()
	time.Sleep(2 * time.Second)
	p1, w1 := calls()
	t.Logf("3 idle subscriptions over 2 s: %d dequeues, %d waits", p1-p0, w1-w0)
	if p1-p0 > 30 {
		t.Errorf("idle subscriptions asked for tasks %d times in 2 s; waiting, each asks about once a second", p1-p0)
	}
	if w1-w0 == 0 {
		t.Error("idle subscriptions never waited on Redis")
	}
	at := time.Now()
	s.Shutdown()
	if d := time.Since(at); d > time.Second {
		t.Errorf("shutdown with idle subscriptions took %v", d)
	}
}
