package reports

import (
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Conversation is one row of the listing: one closed conversation.
type Conversation struct {
	ID            string     `json:"id"`
	Channel       string     `json:"channel"`
	Queue         string     `json:"queue"`
	EntryPoint    string     `json:"entry_point"`
	Agents        []string   `json:"agents"`
	Contact       string     `json:"contact"`
	Created       time.Time  `json:"created_at"`
	FirstOffered  *time.Time `json:"first_offered_at"`
	Accepted      *time.Time `json:"accepted_at"`
	FirstResponse *time.Time `json:"first_response_at"`
	Closed        time.Time  `json:"closed_at"`
	// Wait: created to accepted (or to closed when nobody accepted it); Handle: accepted to closed;
	// FirstResponse: created to the agents' first answer. Seconds; nil when it does not apply.
	WaitSeconds          float64  `json:"wait_seconds"`
	HandleSeconds        *float64 `json:"handle_seconds"`
	FirstResponseSeconds *float64 `json:"first_response_seconds"`
	Offers               int      `json:"offers"`
	Declines             int      `json:"declines"`
	Timeouts             int      `json:"timeouts"`
	Transfers            int      `json:"transfers"`
	Disposition          string   `json:"disposition"`
	Outcome              string   `json:"outcome"`
	ClosedBy             string   `json:"closed_by"`

	contactID string
}

// parseRow reads routing's row (routing/reportrow.go); ok false for a row of an unknown version.
func parseRow(v string) (Conversation, bool) {
	f := strings.Split(v, "|")
	if len(f) != 20 || f[0] != "v1" {
		return Conversation{}, false
	}
	created, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return Conversation{}, false
	}
	at := func(s string) *time.Time {
		d, err := strconv.ParseInt(s, 10, 64)
		if s == "" || err != nil {
			return nil
		}
		t := time.UnixMilli(created + d).UTC()
		return &t
	}
	n := func(s string) int { i, _ := strconv.Atoi(s); return i }
	c := Conversation{ID: f[1], Channel: f[2], Queue: f[3], EntryPoint: f[4], contactID: f[6], Contact: f[7],
		Created: time.UnixMilli(created).UTC(), FirstOffered: at(f[9]), Accepted: at(f[10]), FirstResponse: at(f[11]),
		Offers: n(f[13]), Declines: n(f[14]), Timeouts: n(f[15]), Transfers: n(f[16]), Disposition: f[17], Outcome: f[18], ClosedBy: f[19]}
	c.Agents = []string{}
	if f[5] != "" {
		c.Agents = strings.Split(f[5], ",")
	}
	if cl := at(f[12]); cl != nil {
		c.Closed = *cl
	} else {
		c.Closed = c.Created
	}
	secs := func(a, b time.Time) float64 { return float64(b.Sub(a).Milliseconds()) / 1000 }
	if c.Accepted != nil {
		c.WaitSeconds = secs(c.Created, *c.Accepted)
		h := secs(*c.Accepted, c.Closed)
		c.HandleSeconds = &h
	} else {
		c.WaitSeconds = secs(c.Created, c.Closed)
	}
	if c.FirstResponse != nil {
		r := secs(c.Created, *c.FirstResponse)
		c.FirstResponseSeconds = &r
	}
	return c, true
}

// conversations reads the rows created in the period that pass the filters, oldest first.
func (s *Service) conversations(ctx context.Context, q Query) ([]Conversation, error) {
	days := utcDays(q.From, q.To)
	pipe := s.client.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(days))
	min, max := strconv.FormatInt(q.From.UnixMilli(), 10), "("+strconv.FormatInt(q.To.UnixMilli(), 10)
	for i, d := range days {
		cmds[i] = pipe.ZRangeByScore(ctx, s.rowKey(d), &redis.ZRangeBy{Min: min, Max: max})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, err
	}
	n := 0
	for _, cmd := range cmds {
		n += len(cmd.Val())
	}
	out := make([]Conversation, 0, n) // rows are large: growing the slice would copy them again and again
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			c, ok := parseRow(v)
			if !ok || (q.Queue != "" && c.Queue != q.Queue) || (q.Channel != "" && c.Channel != q.Channel) ||
				(q.Agent != "" && !slices.Contains(c.Agents, q.Agent)) {
				continue
			}
			out = append(out, c)
		}
	}
	// Days are read in order and each is sorted by score; ties keep the member order.
	return out, nil
}

// page reads one unfiltered page without reading the period's other rows: each day's count, then
// the page's slice of the days it falls in.
func (s *Service) page(ctx context.Context, q Query) ([]Conversation, int, error) {
	days := utcDays(q.From, q.To)
	lo, hi := strconv.FormatInt(q.From.UnixMilli(), 10), "("+strconv.FormatInt(q.To.UnixMilli(), 10)
	pipe := s.client.Pipeline()
	counts := make([]*redis.IntCmd, len(days))
	for i, d := range days {
		counts[i] = pipe.ZCount(ctx, s.rowKey(d), lo, hi)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, 0, err
	}
	total := 0
	for _, c := range counts {
		total += int(c.Val())
	}
	skip, want := q.Offset, q.Limit
	var cmds []*redis.StringSliceCmd
	pipe = s.client.Pipeline()
	for i, d := range days {
		n := int(counts[i].Val())
		if want == 0 {
			break
		}
		if skip >= n {
			skip -= n
			continue
		}
		take := min(n-skip, want)
		cmds = append(cmds, pipe.ZRangeByScore(ctx, s.rowKey(d), &redis.ZRangeBy{Min: lo, Max: hi, Offset: int64(skip), Count: int64(take)}))
		skip, want = 0, want-take
	}
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, 0, err
		}
	}
	var out []Conversation
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			if c, ok := parseRow(v); ok {
				out = append(out, c)
			}
		}
	}
	return out, total, nil
}

// ConversationsReport is the detailed listing, one page of it.
type ConversationsReport struct {
	Header Header         `json:"header"`
	Total  int            `json:"total"`
	Offset int            `json:"offset"`
	Limit  int            `json:"limit"`
	Rows   []Conversation `json:"rows"`
}

// Conversations answers the listing; all rows when q.Limit is 0 (CSV).
func (s *Service) Conversations(ctx context.Context, q Query) (ConversationsReport, error) {
	out := ConversationsReport{Header: s.header("conversations", q), Offset: q.Offset, Limit: q.Limit}
	var rows []Conversation
	var err error
	if q.Limit > 0 && q.Agent == "" && q.Queue == "" && q.Channel == "" {
		rows, out.Total, err = s.page(ctx, q)
	} else {
		rows, err = s.conversations(ctx, q)
		out.Total = len(rows)
		if q.Limit > 0 {
			lo := min(q.Offset, len(rows))
			rows = rows[lo:min(lo+q.Limit, len(rows))]
		}
	}
	if err != nil {
		return ConversationsReport{}, err
	}
	if !q.Contacts {
		// Only the rows answered are masked (the summary never shows contacts).
		rows = slices.Clone(rows)
		for i := range rows {
			rows[i].Contact = mask(rows[i].Contact)
		}
	}
	out.Rows = rows
	if out.Rows == nil {
		out.Rows = []Conversation{}
	}
	return out, nil
}

// Stat is the average and percentiles of a time, in seconds, over Count conversations it applies to.
type Stat struct {
	Count int     `json:"count"`
	Avg   float64 `json:"avg"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
}

// SummaryGroup is one line of the summary report.
type SummaryGroup struct {
	Key      string             `json:"key"`
	Total    int                `json:"total"`
	Outcomes map[string]int     `json:"outcomes"`
	Percent  map[string]float64 `json:"percent"`
	Wait     Stat               `json:"wait"`
	Handle   Stat               `json:"handle"`
	// FirstResponse is measured from creation to the agents' first answer.
	FirstResponse Stat `json:"first_response"`
	// AnsweredInTime: accepted within the queue's service_level; ServiceLevel is their share of Total (%).
	AnsweredInTime int     `json:"answered_in_time"`
	ServiceLevel   float64 `json:"service_level"`
}

// SummaryReport is the summary and quantitative report: one group per key, and the whole period.
type SummaryReport struct {
	Header Header         `json:"header"`
	Groups []SummaryGroup `json:"groups"`
	Total  SummaryGroup   `json:"total"`
	// Source: "rows" when the period is within the detail retention (exact), else "aggregates" (the
	// daily aggregates; p50 and p90 are estimated inside their histogram bucket).
	Source string `json:"source"`
	// WaitHistogram counts conversations by wait (seconds) in WaitBuckets' ranges [b[i], b[i+1]), the last open.
	WaitBuckets   []int `json:"wait_buckets"`
	WaitHistogram []int `json:"wait_histogram"`
}

// GroupsConversations are the group_by values of the summary.
var GroupsConversations = []string{"queue", "agent", "channel", "day", "hour", "disposition", "outcome"}

// WaitBuckets are the wait-time distribution's bounds in seconds.
var WaitBuckets = []int{0, 15, 30, 60, 120, 300, 600, 1800}

// Summary answers the summary report grouped by q.GroupBy.
func (s *Service) Summary(ctx context.Context, q Query) (SummaryReport, error) {
	if q.GroupBy == "" {
		q.GroupBy = "queue"
	}
	if !slices.Contains(GroupsConversations, q.GroupBy) {
		return SummaryReport{}, ErrBadGroupBy
	}
	// Rows created since now − detail retention all exist (a day's rows expire with its last).
	if q.From.Before(s.clock.Now().Add(-s.detail)) {
		return s.summaryAggregates(ctx, q)
	}
	rows, err := s.conversations(ctx, q)
	if err != nil {
		return SummaryReport{}, err
	}
	groups := map[string]*acc{}
	var order []string
	total := &acc{}
	hist := make([]int, len(WaitBuckets))
	for i := range rows {
		c := &rows[i]
		for _, k := range s.keysOf(c, q) {
			a, ok := groups[k]
			if !ok {
				a = &acc{}
				groups[k] = a
				order = append(order, k)
			}
			a.add(c, s.queues[c.Queue].ServiceLevel)
		}
		total.add(c, s.queues[c.Queue].ServiceLevel)
		b := sort.SearchInts(WaitBuckets, int(math.Floor(c.WaitSeconds))+1) - 1
		hist[max(b, 0)]++
	}
	sort.Strings(order)
	out := SummaryReport{Header: s.header("summary", q), Groups: make([]SummaryGroup, 0, len(order)), Total: total.group("total"),
		Source: SourceRows, WaitBuckets: WaitBuckets, WaitHistogram: hist}
	for _, k := range order {
		out.Groups = append(out.Groups, groups[k].group(k))
	}
	return out, nil
}

// keysOf are the groups a conversation counts in: every agent that accepted it for group_by agent
// ("" when nobody did); its creation's day or hour in the reports' time zone.
func (s *Service) keysOf(c *Conversation, q Query) []string {
	switch q.GroupBy {
	case "agent":
		if q.Agent != "" {
			return []string{q.Agent}
		}
		if len(c.Agents) == 0 {
			return []string{""}
		}
		// Once per agent, as the daily aggregates count it (an agent it came back to is listed twice).
		out := make([]string, 0, len(c.Agents))
		for _, a := range c.Agents {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
		return out
	case "channel":
		return []string{c.Channel}
	case "day":
		return []string{s.dayOf(c.Created)}
	case "hour":
		return []string{s.hourOf(c.Created)}
	case "disposition":
		return []string{c.Disposition}
	case "outcome":
		return []string{c.Outcome}
	}
	return []string{c.Queue}
}

type acc struct {
	n                    int
	outcomes             map[string]int
	wait, handle, answer []float64
	inTime               int
}

func (a *acc) add(c *Conversation, sl time.Duration) {
	if a.outcomes == nil {
		a.outcomes = map[string]int{}
	}
	a.n++
	a.outcomes[c.Outcome]++
	a.wait = append(a.wait, c.WaitSeconds)
	if c.HandleSeconds != nil {
		a.handle = append(a.handle, *c.HandleSeconds)
	}
	if c.FirstResponseSeconds != nil {
		a.answer = append(a.answer, *c.FirstResponseSeconds)
	}
	if c.Accepted != nil && c.WaitSeconds <= sl.Seconds() {
		a.inTime++
	}
}

func (a *acc) group(key string) SummaryGroup {
	g := SummaryGroup{Key: key, Total: a.n, Outcomes: map[string]int{}, Percent: map[string]float64{},
		Wait: stat(a.wait), Handle: stat(a.handle), FirstResponse: stat(a.answer), AnsweredInTime: a.inTime}
	for _, o := range Outcomes {
		g.Outcomes[o] = a.outcomes[o]
		g.Percent[o] = pct(a.outcomes[o], a.n)
	}
	g.ServiceLevel = pct(a.inTime, a.n)
	return g
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return math.Round(float64(n)*10000/float64(of)) / 100
}

// stat: average, and nearest-rank percentiles.
func stat(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	rank := func(p float64) float64 { return s[max(int(math.Ceil(p*float64(len(s))))-1, 0)] }
	return Stat{Count: len(s), Avg: math.Round(sum/float64(len(s))*1000) / 1000, P50: rank(0.5), P90: rank(0.9)}
}
