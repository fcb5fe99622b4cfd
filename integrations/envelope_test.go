package integrations

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// envelope is json.Marshal(Event{…}), byte for byte: receivers' bodies did not change.
func TestEnvelopeIsTheEventMarshalled(t *testing.T) {
	data, _ := json.Marshal(map[string]any{"text": "a <b> & \u2028 é", "n": 1.5, "list": []any{"x", nil}})
	for _, c := range []struct {
		id, typ string
		at      time.Time
	}{
		{"evt_1796308287965-0", "message.received", time.UnixMilli(1796308287965).UTC()},
		{"evt_<&>\"", "card.offered", time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)},
		{"evt_1-1", "presence.changed", time.Date(2026, 12, 3, 20, 0, 0, 123456789, time.FixedZone("x", -3*3600))},
	} {
		want, err := json.Marshal(Event{ID: c.id, Type: c.typ, Timestamp: c.at, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		got, err := envelope(c.id, c.typ, c.at, data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("envelope\n got %s\nwant %s", got, want)
		}
	}
}
