package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/testutil"
)

// Scenario: Redis (no persistence) is killed and started again empty under two replicas. Capacities
// and candidate sets, written from the configuration, are gone with everything else. Without a
// gateway restart, a customer writes (a webhook after the restart), an agent logs in again, and the
// waiting card is offered to it within 5 s; both replicas noticed the reset, rebuilt, and say so on
// /readyz and in their logs.
func TestRedisRestartedEmptyRoutingHeals(t *testing.T) {
	if *onCluster {
		t.Skip("restarts a single redis-server; -e2e.cluster runs the scenarios that do not")
	}
	t.Parallel()
	e := newEnv(t, options{agents: 2})
	r1, r2 := e.replicas[0].url(), e.replicas[1].url()
	e.mustOnline(r1, "whatsapp", agentID(1))
	if r, err := e.postWhatsApp(r1, whatsAppMessage(customer(1), "wamid.reset.before", "antes")); err != nil || r.status != 200 {
		t.Fatalf("webhook before the reset: %d %v", r.status, err)
	}
	if !testutil.Within(5*time.Second, func() bool { return len(offeredCards(t, e, r1, agentID(1))) == 1 }) {
		t.Fatal("no card offered before the reset")
	}

	// The scenario's timing: the reset comes long after start, when what the gateway writes once at
	// start (and its first sweep) is done; nothing it could wait on says "long after".
	time.Sleep(2 * time.Second)
	e.redis.Stop(t) // SIGKILL, and no persistence: it comes back empty
	e.redis.Start(t)
	if n := len(e.keys("*")); n != 0 {
		t.Fatalf("Redis kept %d keys over the restart; the scenario needs it empty", n)
	}

	// A customer writes; like Meta, the provider retries until it gets a 2xx.
	if !testutil.Within(10*time.Second, func() bool {
		r, err := e.postWhatsApp(r1, whatsAppMessage(customer(2), "wamid.reset.after", "depois"))
		return err == nil && r.status == 200
	}) {
		t.Fatal("webhook after the restart not accepted within 10 s")
	}
	// The agent's presence went with Redis: it logs in again, on the other replica.
	login := time.Now()
	if !testutil.Within(5*time.Second, func() bool {
		r, err := e.setPresence(r2, agentID(1), "whatsapp", "online")
		return err == nil && r.status == 200
	}) {
		t.Fatal("login after the restart not accepted within 5 s")
	}
	var offered []string
	if !testutil.Within(5*time.Second, func() bool { offered = offeredCards(t, e, r2, agentID(1)); return len(offered) == 1 }) {
		t.Fatalf("the waiting card was not offered within 5 s of the login (cards: %v; capacity key present: %v)",
			offered, len(e.keys("cap:"+agentID(1))) == 1)
	}
	healed := time.Since(login)
	if healed > 5*time.Second {
		t.Errorf("offered %v after the login, want within 5 s", healed)
	}

	// Every replica noticed the reset and rebuilt; /readyz and the log say so.
	for _, p := range e.replicas {
		var st struct {
			Status string `json:"status"`
			Store  struct {
				Resets     int       `json:"resets"`
				Reason     string    `json:"reason"`
				ResetAt    time.Time `json:"store_reset_at"`
				RebuiltAt  time.Time `json:"rebuilt_at"`
				Rebuilding bool      `json:"rebuilding"`
			} `json:"store"`
		}
		ok := testutil.Within(3*time.Second, func() bool {
			r, err := e.do("GET", p.url()+"/readyz", nil, nil)
			return err == nil && r.status == 200 && json.Unmarshal(r.body, &st) == nil && !st.Store.RebuiltAt.IsZero()
		})
		if !ok || st.Store.Resets < 1 || st.Store.Rebuilding || st.Store.RebuiltAt.Before(st.Store.ResetAt) ||
			(st.Store.Reason != "marker_missing" && st.Store.Reason != "marker_changed" && st.Store.Reason != "run_id_changed") {
			t.Errorf("%s /readyz after the reset: %+v, want a reset with its reason, rebuilt", p.name, st)
		}
		logged := testutil.Within(2*time.Second, func() bool { // the output is copied from the child's pipe
			logs := p.logs.String()
			return strings.Contains(logs, "redis lost or replaced its state") && strings.Contains(logs, "rebuilt after redis reset")
		})
		if !logged {
			t.Errorf("%s did not log the reset and the rebuild", p.name)
		}
		if !p.alive() {
			t.Errorf("%s exited", p.name)
		}
	}
	figures(t, "redis restarted empty, routing healed", 1, 1, 1, 0, 0, "offered "+healed.Round(time.Millisecond).String()+" after the login")
}

// offeredCards lists the ids of the cards offered to an agent (read through the API).
func offeredCards(t *testing.T, e *env, base, agent string) []string {
	r, err := e.do("GET", base+"/v1/agents/"+agent+"/cards", nil, bearer(t, agent, "agent"))
	if err != nil || r.status != 200 {
		return nil
	}
	var out struct {
		Cards []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"cards"`
	}
	if json.Unmarshal(r.body, &out) != nil {
		return nil
	}
	var ids []string
	for _, c := range out.Cards {
		if c.State == "offered" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
