package configs

import (
	"strings"
	"testing"
	"time"
)

// The example's dispositions load with their labels; the floor's settings are checked: a
// disposition listed twice, a label in a language the console does not speak, require_disposition
// without dispositions, first_response_action without a timeout, and a wrap-up over 24h.
func TestFloorSettings(t *testing.T) {
	cfg, err := Parse(Example, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	q := cfg.Queues[0]
	if d, ok := q.Disposition("resolved"); !ok || d.Label != "Resolved" || d.Labels["pt-BR"] != "Resolvido" {
		t.Errorf("resolved: %+v %v", d, ok)
	}
	if q.FirstResponseAction != "notify" || q.WrapUp != 0 || q.RequireDisposition {
		t.Errorf("defaults: action %q, wrap_up %v, require %v", q.FirstResponseAction, q.WrapUp, q.RequireDisposition)
	}
	on := strings.Replace(string(Example), "    # require_disposition: true", "    require_disposition: true", 1)
	on = strings.Replace(on, "    # wrap_up: 30s", "    wrap_up: 30s", 1)
	on = strings.Replace(on, "    # first_response_timeout: 2m", "    first_response_timeout: 2m", 1)
	if cfg, err := Parse([]byte(on), noEnv); err != nil {
		t.Fatalf("the example's floor settings turned on: %v", err)
	} else if q := cfg.Queues[0]; !q.RequireDisposition || q.WrapUp != 30*time.Second || q.FirstResponseTimeout != 2*time.Minute {
		t.Errorf("turned on: %+v", q)
	}
	bad := map[string][2]string{
		"twice":       {`id: sale,      label: "Sale made"`, `id: resolved,  label: "Sale made"`},
		"language":    {`labels: { pt-BR: "Resolvido", en: "Resolved" }`, `labels: { fr: "Résolu" }`},
		"empty label": {`label: "Resolved",`, `label: "",`},
		"wrap-up":     {"    # wrap_up: 30s", "    wrap_up: 25h"},
		"action":      {"    # first_response_action: notify", "    first_response_action: requeue"},
		"unknown act": {"    # first_response_action: notify", "    first_response_action: shout\n    first_response_timeout: 1m"},
	}
	want := map[string]string{"twice": "queues[0].dispositions[1].id", "language": "queues[0].dispositions[0].labels",
		"empty label": "queues[0].dispositions[0].label", "wrap-up": "queues[0].wrap_up", "action": "queues[0].first_response_action",
		"unknown act": "queues[0].first_response_action"}
	for name, r := range bad {
		raw := strings.Replace(string(Example), r[0], r[1], 1)
		if raw == string(Example) {
			t.Fatalf("%s: the example has no %q", name, r[0])
		}
		if _, err := Parse([]byte(raw), noEnv); err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: got %v, want a problem at %s", name, err, want[name])
		}
	}
	// require_disposition with no dispositions to choose from.
	lines := strings.Split(strings.Replace(string(Example), "    # require_disposition: true", "    require_disposition: true", 1), "\n")
	kept := lines[:0]
	for _, l := range lines {
		if !strings.HasPrefix(l, "      - { id: resolved,") && !strings.HasPrefix(l, "      - { id: sale,") &&
			!strings.HasPrefix(l, "      - { id: no_reply,") && !strings.HasPrefix(l, "    dispositions:") {
			kept = append(kept, l)
		}
	}
	if _, err := Parse([]byte(strings.Join(kept, "\n")), noEnv); err == nil || !strings.Contains(err.Error(), "queues[0].require_disposition") {
		t.Errorf("require_disposition without dispositions: got %v", err)
	}
}
