package presence

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/redistest"
)

// TestConcurrentTogglesAcrossReplicas drives the same agents at random through two stores (two
// replicas): the agents' own toggles, a supervisor's pauses, resumes and logouts, the reaper's
// LogoutAll and heartbeats. Afterwards no group is half paused or paused with two reasons, each
// history replays to the stored state, the totals equal what the history's spans add up to (no
// counter lost), and the last-seen set holds exactly the agents logged in somewhere.
func TestConcurrentTogglesAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	// Each replica has its own client (own connection pool) on the same database, as two processes would.
	other := redis.NewClient(&redis.Options{Addr: client.Options().Addr, DB: client.Options().DB})
	t.Cleanup(func() { _ = other.Close() })
	stores := []*Store{newTestStore(t, client, clock.Real{}), newTestStore(t, other, clock.Real{})}
	channels := map[string][]string{"ana": {"whatsapp", "webchat"}, "sam": {"whatsapp", "webchat"}, "cid": {"a", "b", "c"}}
	ids := []string{"ana", "sam", "cid"}
	wants := []State{Online, Online, Offline, Paused, Paused}
	reasons := []string{"lunch", "training"}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			s := stores[g%2]
			for i := 0; i < 150; i++ {
				agent := ids[rnd.Intn(len(ids))]
				ch := channels[agent][rnd.Intn(len(channels[agent]))]
				var err error
				switch op := rnd.Intn(20); {
				case op == 0:
					_, err = s.LogoutAll(ctx, agent, BySystem, CauseDisconnected)
				case op == 1:
					err = s.Heartbeat(ctx, agent)
				case op < 5: // a supervisor: may pause, resume and log out, not log in
					_, err = s.Set(ctx, agent, ch, wants[rnd.Intn(len(wants))], reasons[rnd.Intn(2)], "sue", CauseToggle)
				default:
					_, err = s.Set(ctx, agent, ch, wants[rnd.Intn(len(wants))], reasons[rnd.Intn(2)], agent, CauseToggle)
				}
				if err != nil && !errors.Is(err, ErrChannelOffline) && !errors.Is(err, ErrLoginDenied) {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()

	for _, agent := range ids {
		stored := states(t, stores[0], agent)
		for _, ch := range channels[agent] {
			for _, other := range stores[0].Group(agent, ch) {
				a, b := stored[ch], stored[other]
				if strings.HasPrefix(a, "paused") && b == "online" {
					t.Errorf("%s: group half paused: %s=%s %s=%s", agent, ch, a, other, b)
				}
				if strings.HasPrefix(a, "paused") && strings.HasPrefix(b, "paused") && a != b {
					t.Errorf("%s: one group paused with two reasons: %s=%s %s=%s", agent, ch, a, other, b)
				}
			}
		}
		hist, err := stores[0].History(ctx, agent, time.Unix(0, 0), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) == 0 {
			t.Fatalf("%s: no history after the run", agent)
		}
		replayed, totals := replay(t, agent, channels[agent], hist)
		for ch, v := range replayed {
			if stored[ch] != v {
				t.Errorf("%s %s: history replays to %q, stored %q", agent, ch, v, stored[ch])
			}
		}
		if got := storedTotals(t, client, stores[0], agent); fmt.Sprint(got) != fmt.Sprint(totals) {
			t.Errorf("%s totals: stored %v, history adds up to %v", agent, got, totals)
		}
		logged := false
		for _, v := range replayed {
			logged = logged || v != "offline"
		}
		_, err = client.ZScore(ctx, stores[0].keys.seen(), agent).Result()
		if inSeen := err == nil; inSeen != logged {
			t.Errorf("%s: in the last-seen set %v, logged in somewhere %v", agent, inSeen, logged)
		}
	}
}

// replay folds a history into the state it leads to ("online", "paused:lunch", …) and into the
// totals the transition script should have accrued: totals key suffix (Unix day) → field → ms.
func replay(t *testing.T, agent string, channels []string, hist []Change) (map[string]string, map[string]map[string]int64) {
	t.Helper()
	type chanState struct {
		state  State
		reason string
		since  int64
		known  bool
	}
	cur := map[string]*chanState{}
	for _, ch := range channels {
		cur[ch] = &chanState{state: Offline}
	}
	totals := map[string]map[string]int64{}
	for _, c := range hist {
		st, ok := cur[c.Channel]
		if !ok {
			t.Fatalf("%s history names channel %q the agent does not have", agent, c.Channel)
		}
		if st.state != c.From {
			t.Errorf("%s history entry %+v starts from %q, but the replay is at %q", agent, c, c.From, st.state)
		}
		at := c.At.UnixMilli()
		if st.state != Offline && st.known {
			field := c.Channel + ":online"
			if st.state == Paused {
				field = c.Channel + ":paused:" + st.reason
			}
			for s := st.since; s < at; { // split at UTC midnight, as the script does
				day := s / 86400000
				end := min((day+1)*86400000, at)
				key := strconv.FormatInt(day, 10)
				if totals[key] == nil {
					totals[key] = map[string]int64{}
				}
				totals[key][field] += end - s
				s = end
			}
		}
		reason := c.Reason
		if c.To != Paused {
			reason = "" // a logout's reason (disconnected) is history only, not the channel's state
		}
		*st = chanState{state: c.To, reason: reason, since: at, known: true}
	}
	out := map[string]string{}
	for ch, st := range cur {
		out[ch] = string(st.state)
		if st.reason != "" {
			out[ch] += ":" + st.reason
		}
	}
	return out, totals
}

// storedTotals reads the agent's totals HASH: Unix day → field → ms (the prune marker left out).
func storedTotals(t *testing.T, client *redis.Client, s *Store, agent string) map[string]map[string]int64 {
	t.Helper()
	h, err := client.HGetAll(context.Background(), s.keys.totals(agent)).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for f, v := range h {
		if f == "pruned" {
			continue
		}
		day, field, ok := strings.Cut(f, ":")
		ms, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("totals field %s = %q is not <day>:<field> → ms", f, v)
		}
		if out[day] == nil {
			out[day] = map[string]int64{}
		}
		out[day][field] = ms
	}
	return out
}
