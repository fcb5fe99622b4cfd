package reports

import (
	"errors"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // reports.timezone resolves in images without a zone database

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/clock"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/internal/topology"
)

// Outcomes of a conversation (routing/reportrow.go's reportOutcome writes them).
const (
	OutcomeHandled          = "handled"
	OutcomeAbandoned        = "abandoned"
	OutcomeClosedMaxWait    = "closed_max_wait"
	OutcomeClosedOutOfHours = "closed_out_of_hours"
	OutcomeClosedIdle       = "closed_idle"
)

// Outcomes lists every outcome in the order reports show them.
var Outcomes = []string{OutcomeHandled, OutcomeAbandoned, OutcomeClosedMaxWait, OutcomeClosedOutOfHours, OutcomeClosedIdle}

// MaxPeriod bounds one report's period (the summary retention bounds what it can find anyway).
const MaxPeriod = 400 * 24 * time.Hour

// Options configure the service.
type Options struct {
	Clock    clock.Clock
	Location *time.Location // reports.timezone; nil: UTC
	// ContactRole is the lowest role that sees contacts unmasked (default admin).
	ContactRole auth.Role
	// DetailRetention is how long conversation rows are kept (reports.detail_retention; 0: 35 days):
	// a summary reaching further back reads the daily aggregates.
	DetailRetention time.Duration
}

// Service answers reports from Redis.
type Service struct {
	client      redis.UniversalClient
	ks          keyspace.Space
	clock       clock.Clock
	loc         *time.Location
	contactRole auth.Role
	detail      time.Duration
	topo        *topology.Topology
	queues      map[string]configs.Queue
	reasons     map[string]string
}

// New builds the service.
func New(client redis.UniversalClient, ks keyspace.Space, topo *topology.Topology, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.DetailRetention < time.Second {
		opts.DetailRetention = 35 * 24 * time.Hour
	}
	if opts.ContactRole == "" {
		opts.ContactRole = auth.RoleAdmin
	}
	s := &Service{client: client, ks: ks, clock: opts.Clock, loc: opts.Location, contactRole: opts.ContactRole, detail: opts.DetailRetention, topo: topo,
		queues: map[string]configs.Queue{}, reasons: map[string]string{}}
	for _, q := range topo.Queues {
		s.queues[q.ID] = q
	}
	for _, r := range topo.PauseReasons {
		s.reasons[r.ID] = r.Label
	}
	return s
}

// Location is the reports' time zone.
func (s *Service) Location() *time.Location { return s.loc }

// Query is what every report is asked: the period [From, To), the filters, the grouping and a page.
type Query struct {
	From, To time.Time
	Agent    string
	Queue    string
	Channel  string
	GroupBy  string
	Offset   int
	Limit    int
	// Contacts: the caller may see contacts unmasked.
	Contacts bool
}

// Header is the same on every report.
type Header struct {
	Report      string            `json:"report"`
	From        string            `json:"from"`
	To          string            `json:"to"`
	Timezone    string            `json:"timezone"`
	Filters     map[string]string `json:"filters"`
	GeneratedAt string            `json:"generated_at"`
}

func (s *Service) header(report string, q Query) Header {
	f := map[string]string{}
	for k, v := range map[string]string{"agent": q.Agent, "queue": q.Queue, "channel": q.Channel, "group_by": q.GroupBy} {
		if v != "" {
			f[k] = v
		}
	}
	return Header{Report: report, From: q.From.In(s.loc).Format(time.RFC3339), To: q.To.In(s.loc).Format(time.RFC3339),
		Timezone: s.loc.String(), Filters: f, GeneratedAt: s.clock.Now().In(s.loc).Format(time.RFC3339)}
}

// Errors of a query; the HTTP layer maps them to 400.
var (
	ErrBadPeriod  = errors.New("from and to must be dates (YYYY-MM-DD, in the reports' time zone) or RFC 3339 times, from before to, at most 400 days apart")
	ErrBadGroupBy = errors.New("unknown group_by")
	ErrBadFilter  = errors.New("unknown agent, queue or channel")
	ErrBadPage    = errors.New("offset and limit must be whole numbers, limit 1 to 1000")
	// The summary beyond the detail retention reads daily aggregates: whole days, and at most one
	// filter, on the dimension grouped by (or grouped by day).
	ErrSummaryDays   = errors.New("a summary reaching back beyond reports.detail_retention counts whole days: give from and to as dates")
	ErrSummaryFilter = errors.New("a summary reaching back beyond reports.detail_retention takes at most one of agent, queue and channel, and is then grouped by that or by day")
)

// ParsePeriod reads from and to: a date is a whole day in the reports' time zone (to included), a
// time is exact. Both empty: today.
func (s *Service) ParsePeriod(from, to string) (time.Time, time.Time, error) {
	now := s.clock.Now().In(s.loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, s.loc)
	f, t := today, today.AddDate(0, 0, 1)
	var err error
	if from != "" {
		if f, err = s.parseTime(from, false); err != nil {
			return f, t, err
		}
	}
	if to != "" {
		if t, err = s.parseTime(to, true); err != nil {
			return f, t, err
		}
	} else if from != "" {
		t = time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, s.loc).AddDate(0, 0, 1)
	}
	if !f.Before(t) || t.Sub(f) > MaxPeriod {
		return f, t, ErrBadPeriod
	}
	return f, t, nil
}

func (s *Service) parseTime(v string, end bool) (time.Time, error) {
	if d, err := time.ParseInLocation("2006-01-02", v, s.loc); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, ErrBadPeriod
	}
	return t, nil
}

// CheckFilters refuses an agent, queue or channel the configuration does not know.
func (s *Service) CheckFilters(q Query) error {
	if _, ok := s.topo.Agent(q.Agent); q.Agent != "" && !ok {
		return ErrBadFilter
	}
	if _, ok := s.queues[q.Queue]; q.Queue != "" && !ok {
		return ErrBadFilter
	}
	if q.Channel != "" {
		found := false
		for _, qu := range s.topo.Queues {
			for _, ch := range qu.Channels {
				found = found || ch == q.Channel
			}
		}
		if !found {
			return ErrBadFilter
		}
	}
	return nil
}

// utcDays are the Unix days (UTC) the period touches: the row keys to read.
func utcDays(from, to time.Time) []int64 {
	var out []int64
	for d := from.UnixMilli() / 86400000; d <= (to.UnixMilli()-1)/86400000; d++ {
		out = append(out, d)
	}
	return out
}

func (s *Service) rowKey(day int64) string {
	return s.ks.Key("rpt", "conv", strconv.FormatInt(day, 10))
}

// day and hour labels in the reports' time zone.
func (s *Service) dayOf(t time.Time) string  { return t.In(s.loc).Format("2006-01-02") }
func (s *Service) hourOf(t time.Time) string { return t.In(s.loc).Format("15") }

// mask hides all but the last four characters of a contact (a leading + stays).
func mask(v string) string {
	r := []rune(v)
	if len(r) <= 4 {
		return strings.Repeat("•", len(r))
	}
	start := 0
	if r[0] == '+' {
		start = 1
	}
	for i := start; i < len(r)-4; i++ {
		r[i] = '•'
	}
	return string(r)
}
