package reports

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/routing"
)

// Summary sources: the rows (exact), or the daily aggregates (percentiles are bucket estimates).
const (
	SourceRows       = "rows"
	SourceAggregates = "aggregates"
)

// aggDims: the aggregates' group of each group_by (routing/reportrow.go writes them).
var aggDims = map[string]string{"queue": "q", "agent": "a", "channel": "c", "disposition": "d", "outcome": "o", "hour": "h"}

// aggAcc sums packed aggregates (routing/reportrow.go's layout).
type aggAcc struct {
	n, inTime                   int64
	outcomes                    [5]int64
	waitSum, handleN, handleSum int64
	frtN, frtSum                int64
	hist                        [3][]int64 // wait, handle, first response by routing.ReportBuckets
}

func (a *aggAcc) add(v string) {
	f := strings.Split(v, ",")
	get := func(i int) int64 {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return n
	}
	a.n += get(0)
	for i := range a.outcomes {
		a.outcomes[i] += get(1 + i)
	}
	a.inTime += get(6)
	a.waitSum += get(7)
	a.handleN += get(8)
	a.handleSum += get(9)
	a.frtN += get(10)
	a.frtSum += get(11)
	nb := len(routing.ReportBuckets)
	for h := range a.hist {
		if a.hist[h] == nil {
			a.hist[h] = make([]int64, nb)
		}
		for i := 0; i < nb; i++ {
			a.hist[h][i] += get(12 + h*nb + i)
		}
	}
}

func (a *aggAcc) group(key string) SummaryGroup {
	g := SummaryGroup{Key: key, Total: int(a.n), Outcomes: map[string]int{}, Percent: map[string]float64{},
		Wait: aggStat(a.n, a.waitSum, a.hist[0]), Handle: aggStat(a.handleN, a.handleSum, a.hist[1]),
		FirstResponse: aggStat(a.frtN, a.frtSum, a.hist[2]), AnsweredInTime: int(a.inTime)}
	for i, o := range Outcomes {
		g.Outcomes[o] = int(a.outcomes[i])
		g.Percent[o] = pct(int(a.outcomes[i]), int(a.n))
	}
	g.ServiceLevel = pct(int(a.inTime), int(a.n))
	return g
}

// aggStat: the exact average, and nearest-rank percentiles estimated inside their bucket (linearly
// by rank, each count at the middle of its share, so the estimate stays inside [lo, hi); the open
// last bucket answers its lower bound).
func aggStat(n, sumMs int64, hist []int64) Stat {
	if n == 0 {
		return Stat{}
	}
	est := func(p float64) float64 {
		rank := max(int64(math.Ceil(p*float64(n))), 1)
		var cum int64
		for i, c := range hist {
			if c == 0 || cum+c < rank {
				cum += c
				continue
			}
			lo := float64(routing.ReportBuckets[i])
			if i == len(hist)-1 {
				return lo
			}
			hi := float64(routing.ReportBuckets[i+1])
			return math.Round((lo+(hi-lo)*(float64(rank-cum)-0.5)/float64(c))*1000) / 1000
		}
		return 0
	}
	return Stat{Count: int(n), Avg: math.Round(float64(sumMs)/float64(n)) / 1000, P50: est(0.5), P90: est(0.9)}
}

// summaryAggregates answers the summary from the daily aggregates of the whole local days [From, To).
func (s *Service) summaryAggregates(ctx context.Context, q Query) (SummaryReport, error) {
	from, to := q.From.In(s.loc), q.To.In(s.loc)
	midnight := func(t time.Time) bool {
		return t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
	}
	if !midnight(from) || !midnight(to) {
		return SummaryReport{}, ErrSummaryDays
	}
	filters := 0
	totalField := "*|"
	var fdim, fval string
	for dim, v := range map[string]string{"a": q.Agent, "q": q.Queue, "c": q.Channel} {
		if v != "" {
			filters++
			fdim, fval, totalField = dim, v, dim+"|"+v
		}
	}
	gdim := aggDims[q.GroupBy]
	if filters > 1 || (filters == 1 && q.GroupBy != "day" && gdim != fdim) {
		return SummaryReport{}, ErrSummaryFilter
	}
	type dayKey struct {
		label string
		cmd   *redis.MapStringStringCmd
	}
	var days []dayKey
	pipe := s.client.Pipeline()
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		y, m, dd := d.Date()
		n := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix() / 86400
		days = append(days, dayKey{d.Format("2006-01-02"), pipe.HGetAll(ctx, s.ks.Key("rpt", "agg", strconv.FormatInt(n, 10)))})
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return SummaryReport{}, err
	}
	total := &aggAcc{}
	groups := map[string]*aggAcc{}
	at := func(k string) *aggAcc {
		a, ok := groups[k]
		if !ok {
			a = &aggAcc{}
			groups[k] = a
		}
		return a
	}
	prefix := gdim + "|"
	for _, d := range days {
		for field, v := range d.cmd.Val() {
			if field == totalField {
				total.add(v)
				if q.GroupBy == "day" {
					at(d.label).add(v)
				}
			}
			if q.GroupBy != "day" && strings.HasPrefix(field, prefix) {
				if k := field[len(prefix):]; filters == 0 || k == fval {
					at(k).add(v)
				}
			}
		}
	}
	order := make([]string, 0, len(groups))
	for k := range groups {
		order = append(order, k)
	}
	sort.Strings(order)
	out := SummaryReport{Header: s.header("summary", q), Groups: make([]SummaryGroup, 0, len(order)), Total: total.group("total"),
		Source: SourceAggregates, WaitBuckets: WaitBuckets, WaitHistogram: make([]int, len(WaitBuckets))}
	for _, k := range order {
		out.Groups = append(out.Groups, groups[k].group(k))
	}
	// ReportBuckets' bounds include WaitBuckets': each of its buckets falls in one of these.
	for i, c := range total.hist[0] {
		out.WaitHistogram[sort.SearchInts(WaitBuckets, routing.ReportBuckets[i]+1)-1] += int(c)
	}
	return out, nil
}
