package configs

import (
	"strings"
	"testing"
	"time"
)

func TestHoursInTheExampleShapeLoad(t *testing.T) {
	raw := strings.Replace(string(Example), "    offer_timeout: 30s\n", `    offer_timeout: 30s
    hours:
      time_zone: America/Sao_Paulo
      weekly: [{ days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00" }]
      exceptions: [{ date: "2026-12-25", closed: true }, { date: "2026-12-24", intervals: [{ from: "08:00", to: "12:00" }] }]
    closed_message: "Fechado"
    closed_action: close
    position_message: "Você é o {{position}}º"
    position_after: 1m
    position_every: 2m
`, 1)
	cfg, err := Parse([]byte(raw), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := cfg.Queue("sales")
	if q.Hours == nil || q.ClosedAction != "close" || q.PositionEvery != 2*time.Minute {
		t.Fatalf("queue: %+v", q)
	}
}

func TestBadHoursAreReportedWithTheirPath(t *testing.T) {
	for _, c := range []struct{ hours, want string }{
		{`{ time_zone: Mars/Olympus, weekly: [] }`, "not an IANA time zone"},
		{`{ time_zone: Local, weekly: [] }`, "not an IANA time zone"},
		{`{ time_zone: UTC, weekly: [{ days: [mon], from: "18:00", to: "08:00" }] }`, "must be after from"},
		{`{ time_zone: UTC, weekly: [{ days: [mon], from: "8h", to: "18:00" }] }`, "write HH:MM"},
		{`{ time_zone: UTC, weekly: [{ days: [mon], from: "24:00", to: "24:00" }] }`, "between 00:00 and 24:00"},
		{`{ time_zone: UTC, exceptions: [{ date: "25/12/2026", closed: true }] }`, "not YYYY-MM-DD"},
		{`{ time_zone: UTC, exceptions: [{ date: "2026-12-25" }] }`, "either closed: true or intervals"},
	} {
		raw := strings.Replace(string(Example), "    offer_timeout: 30s\n", "    offer_timeout: 30s\n    hours: "+c.hours+"\n", 1)
		_, err := Parse([]byte(raw), noEnv)
		if err == nil || !strings.Contains(err.Error(), "queues[0].hours") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want queues[0].hours … %s", c.hours, err, c.want)
		}
	}
	raw := strings.Replace(string(Example), "    offer_timeout: 30s\n", "    offer_timeout: 30s\n    closed_action: wait\n", 1)
	if _, err := Parse([]byte(raw), noEnv); err == nil || !strings.Contains(err.Error(), "queues[0].hours: is required") {
		t.Errorf("closed_action without hours: %v", err)
	}
}

func TestScheduleJoinsMidnightAndFollowsHistoricalDST(t *testing.T) {
	// São Paulo kept DST until 2019: on 4 November 2018 clocks jumped from 00:00 to 01:00.
	h := Hours{TimeZone: "America/Sao_Paulo", Weekly: []HoursInterval{
		{Days: []string{"sat"}, From: "20:00", To: "24:00"}, {Days: []string{"sun"}, From: "00:00", To: "02:00"},
		{Days: []string{"mon"}, From: "08:00", To: "09:00"}}}
	s, err := h.Compile()
	if err != nil {
		t.Fatal(err)
	}
	sat := time.Date(2018, 11, 3, 22, 0, 0, 0, s.Location())
	open, until := s.At(sat)
	// One opening from Saturday 20:00 to Sunday 02:00 (-02 after the jump): 04:00 UTC.
	if !open || !until.Equal(time.Date(2018, 11, 4, 4, 0, 0, 0, time.UTC)) {
		t.Fatalf("saturday night: open=%v until %v", open, until.UTC())
	}
	open, opens := s.At(until)
	if open || !opens.Equal(time.Date(2018, 11, 5, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("after closing: open=%v opens %v", open, opens.UTC())
	}
	if open, next := (&Schedule{loc: time.UTC, exceptions: map[string][]span{}}).At(sat); open || !next.IsZero() {
		t.Fatalf("never open: %v %v", open, next)
	}
}
