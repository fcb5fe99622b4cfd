package configs

import (
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones inside the binary: business hours must not depend on the image's zoneinfo
)

// Hours are a queue's business hours: weekly intervals in an IANA time zone, and exceptions by date
// (a holiday closed all day, or a day with its own intervals). Times are wall-clock times in the
// zone, so a DST change moves the opening with the clocks, as the customers' day does.
type Hours struct {
	TimeZone   string           `yaml:"time_zone" json:"time_zone" validate:"required,max=64"`
	Weekly     []HoursInterval  `yaml:"weekly" json:"weekly" validate:"dive"`
	Exceptions []HoursException `yaml:"exceptions" json:"exceptions,omitempty" validate:"dive"`
}

// HoursInterval is one opening on the given weekdays (mon … sun), from HH:MM to HH:MM (to may be
// 24:00; an interval that crosses midnight is written as two).
type HoursInterval struct {
	Days []string `yaml:"days" json:"days" validate:"required,min=1,dive,oneof=mon tue wed thu fri sat sun"`
	From string   `yaml:"from" json:"from" validate:"required"`
	To   string   `yaml:"to" json:"to" validate:"required"`
}

// HoursException replaces the weekly intervals on one date (YYYY-MM-DD in the zone): Closed for a
// holiday, or its own intervals (only From/To of each are read).
type HoursException struct {
	Date      string         `yaml:"date" json:"date" validate:"required"`
	Closed    bool           `yaml:"closed" json:"closed,omitempty"`
	Intervals []TimeInterval `yaml:"intervals" json:"intervals,omitempty" validate:"dive"`
}

// TimeInterval is HH:MM to HH:MM on one day.
type TimeInterval struct {
	From string `yaml:"from" json:"from" validate:"required"`
	To   string `yaml:"to" json:"to" validate:"required"`
}

// Schedule is compiled Hours: ask it whether a moment is open.
type Schedule struct {
	loc        *time.Location
	weekly     [7][]span // by time.Weekday
	exceptions map[string][]span
}

type span struct{ from, to int } // minutes since local midnight, to ≤ 1440

func sortSpans(l []span) { slices.SortFunc(l, func(a, b span) int { return a.from - b.from }) }

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func parseClock(s string, allow24 bool) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("is %q; write HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)) {
		return 0, fmt.Errorf("is %q; write HH:MM between 00:00 and 24:00", s)
	}
	return h*60 + m, nil
}

func parseSpan(from, to string) (span, error) {
	f, err := parseClock(from, false)
	if err != nil {
		return span{}, fmt.Errorf("from %w", err)
	}
	t, err := parseClock(to, true)
	if err != nil {
		return span{}, fmt.Errorf("to %w", err)
	}
	if t <= f {
		return span{}, fmt.Errorf("to (%s) must be after from (%s); split an interval that crosses midnight in two", to, from)
	}
	return span{f, t}, nil
}

// Compile checks the hours and builds their schedule; the error names what is wrong.
func (h Hours) Compile() (*Schedule, error) {
	loc, err := time.LoadLocation(h.TimeZone)
	if err != nil || h.TimeZone == "" || strings.EqualFold(h.TimeZone, "local") {
		return nil, fmt.Errorf("time_zone %q is not an IANA time zone (e.g. America/Sao_Paulo)", h.TimeZone)
	}
	s := &Schedule{loc: loc, exceptions: map[string][]span{}}
	for i, iv := range h.Weekly {
		sp, err := parseSpan(iv.From, iv.To)
		if err != nil {
			return nil, fmt.Errorf("weekly[%d]: %w", i, err)
		}
		for _, d := range iv.Days {
			wd, ok := weekdays[d]
			if !ok {
				return nil, fmt.Errorf("weekly[%d]: day %q is not one of mon tue wed thu fri sat sun", i, d)
			}
			s.weekly[wd] = append(s.weekly[wd], sp)
		}
	}
	for wd := range s.weekly {
		sortSpans(s.weekly[wd])
	}
	for i, ex := range h.Exceptions {
		if _, err := time.Parse("2006-01-02", ex.Date); err != nil {
			return nil, fmt.Errorf("exceptions[%d]: date %q is not YYYY-MM-DD", i, ex.Date)
		}
		if _, dup := s.exceptions[ex.Date]; dup {
			return nil, fmt.Errorf("exceptions[%d]: date %s is given twice", i, ex.Date)
		}
		if ex.Closed == (len(ex.Intervals) > 0) {
			return nil, fmt.Errorf("exceptions[%d]: give either closed: true or intervals", i)
		}
		spans := []span{}
		for j, iv := range ex.Intervals {
			sp, err := parseSpan(iv.From, iv.To)
			if err != nil {
				return nil, fmt.Errorf("exceptions[%d].intervals[%d]: %w", i, j, err)
			}
			spans = append(spans, sp)
		}
		sortSpans(spans)
		s.exceptions[ex.Date] = spans
	}
	return s, nil
}

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// spans returns the absolute intervals of the local date (y, m, d). time.Date resolves wall times a
// DST change skips or repeats the way Go documents (a skipped 00:00 becomes 01:00).
func (s *Schedule) spans(y int, m time.Month, d int) [][2]time.Time {
	day := time.Date(y, m, d, 12, 0, 0, 0, s.loc)
	list, ok := s.exceptions[day.Format("2006-01-02")]
	if !ok {
		list = s.weekly[day.Weekday()]
	}
	out := make([][2]time.Time, 0, len(list))
	for _, sp := range list {
		out = append(out, [2]time.Time{time.Date(y, m, d, sp.from/60, sp.from%60, 0, 0, s.loc),
			time.Date(y, m, d, sp.to/60, sp.to%60, 0, 0, s.loc)})
	}
	return out
}

// horizon bounds how far ahead the schedule looks for the next change (a year and a week).
const horizon = 373

// At reports whether t is within business hours and when that changes: the moment it closes when
// open, the moment it opens when closed (zero when it never opens within a year). Adjacent intervals
// (fri 18:00–24:00 then sat 00:00–06:00) make one opening.
func (s *Schedule) At(t time.Time) (open bool, change time.Time) {
	y, m, d := t.In(s.loc).Date()
	var cur [2]time.Time
	open = false
	for i := -1; i <= horizon; i++ {
		if open && time.Date(y, m, d+i, 0, 0, 0, 0, s.loc).After(cur[1]) {
			return true, cur[1]
		}
		for _, iv := range s.spans(y, m, d+i) {
			switch {
			case open && !iv[0].After(cur[1]): // touches or overlaps the open stretch: it goes on
				if iv[1].After(cur[1]) {
					cur[1] = iv[1]
				}
			case open:
				return true, cur[1]
			case !t.Before(iv[0]) && t.Before(iv[1]):
				open, cur = true, iv
			case iv[0].After(t):
				return false, iv[0]
			}
		}
	}
	if open {
		return true, cur[1]
	}
	return false, time.Time{}
}

// hoursProblems checks a queue's business hours and position messages.
func hoursProblems(i int, q Queue) Problems {
	var ps Problems
	path := func(f string) string { return fmt.Sprintf("queues[%d].%s", i, f) }
	if q.Hours != nil {
		if _, err := q.Hours.Compile(); err != nil {
			ps = append(ps, Problem{path("hours"), err.Error()})
		}
	} else if q.ClosedMessage != "" || q.ClosedAction != "" {
		ps = append(ps, Problem{path("hours"), "is required with closed_message or closed_action"})
	}
	if q.PositionMessage != "" && q.PositionEvery > 0 && q.PositionEvery < time.Minute {
		ps = append(ps, Problem{path("position_every"), "must be 1m or more: customers read each message"})
	}
	if q.PositionMessage == "" && (q.PositionAfter > 0 || q.PositionEvery > 0) {
		ps = append(ps, Problem{path("position_message"), "is required with position_after or position_every"})
	}
	return ps
}
