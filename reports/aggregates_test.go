package reports_test

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/presence"
	"github.com/chatgate/chatgate/reports"
	"github.com/chatgate/chatgate/routing"
)

// bucketOf is the aggregates' histogram bucket of a time in seconds.
func bucketOf(s float64) int {
	return sort.SearchInts(routing.ReportBuckets, int(s)+1) - 1
}

// TestSummaryFromAggregates: closed conversations write daily aggregates with their rows; once the
// period is older than detail_retention (rows deleted here) the summary reads them and matches the
// figures worked out by hand, and the rows' summary of the same day: counts, averages and service
// level exactly, p50/p90 inside the exact value's bucket.
func TestSummaryFromAggregates(t *testing.T) {
	d := newDay(t)
	d.at(local(25, 8, 0, 0))
	d.set("ana", "whatsapp", presence.Online, "")
	// c1 08:10, accepted +20 s, first answer +40 s, disposition sale, closed 08:20 (handle 580).
	d.at(local(25, 8, 10, 0))
	c1 := d.customer("c1")
	d.at(local(25, 8, 10, 20))
	d.accept(c1.ID, "ana")
	d.client.HSet(d.ctx, d.ks.Key("conv", c1.ConversationID), "first_response_at", local(25, 8, 10, 40).UnixMilli(), "disposition", "sale")
	d.at(local(25, 8, 20, 0))
	d.close(c1.ID, "ana", false)
	// c2 09:00, accepted +90 s (late for the 60 s service level), closed 30 min later (handle 1800).
	d.at(local(25, 9, 0, 0))
	c2 := d.customer("c2")
	d.at(local(25, 9, 1, 30))
	d.accept(c2.ID, "ana")
	d.at(local(25, 9, 31, 30))
	d.close(c2.ID, "ana", false)
	// ana pauses: c3 10:05 is closed by a supervisor at 10:07 (abandoned, wait 120); c4 10:10 is
	// closed by max_wait at 10:20:01 (wait 601).
	d.at(local(25, 10, 0, 0))
	d.set("ana", "whatsapp", presence.Paused, "break")
	d.at(local(25, 10, 5, 0))
	c3 := d.customer("c3")
	d.at(local(25, 10, 7, 0))
	d.close(c3.ID, "sue", true)
	d.at(local(25, 10, 10, 0))
	d.customer("c4")
	d.at(local(25, 10, 20, 1))
	if n, err := d.router.SweepMaxWait(d.ctx); err != nil || n != 1 {
		t.Fatalf("max wait: %d %v", n, err)
	}
	d.at(local(25, 11, 0, 0))
	d.set("ana", "whatsapp", presence.Online, "")
	// c5 23:59:30 (the next UTC day), accepted 00:00:30 (wait 60, in time), closed 00:10:30: the 25th, hour 23.
	d.at(local(25, 23, 59, 30))
	c5 := d.customer("c5")
	d.at(local(26, 0, 0, 30))
	d.accept(c5.ID, "ana")
	d.at(local(26, 0, 10, 30))
	d.close(c5.ID, "ana", false)
	// c6 00:05 on the 26th.
	d.at(local(26, 0, 15, 0))
	c6 := d.customer("c6")
	d.at(local(26, 0, 15, 10))
	d.accept(c6.ID, "ana")
	d.at(local(26, 0, 20, 0))
	d.close(c6.ID, "ana", false)

	// The aggregates of the 25th (local day 20417) expire 400 days after the day ended.
	aggKey := d.ks.Key("rpt", "agg", fmt.Sprint(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).Unix()/86400))
	if ttl := d.client.TTL(d.ctx, aggKey).Val(); ttl > 400*24*time.Hour || ttl < 400*24*time.Hour-time.Hour {
		t.Errorf("aggregates' TTL %v, want 400 days less the 20 min since the day ended", ttl)
	}

	const period = "from=2026-11-25&to=2026-11-25"
	groupBys := []string{"queue", "agent", "channel", "day", "hour", "disposition", "outcome"}
	summary := func(q string) reports.SummaryReport {
		t.Helper()
		var r reports.SummaryReport
		if s := d.get("/v1/reports/summary?"+q, "sue", auth.RoleSupervisor, &r); s != 200 {
			t.Fatalf("%s: status %d", q, s)
		}
		return r
	}
	d.at(local(26, 9, 0, 0))
	exact := map[string]reports.SummaryReport{}
	for _, g := range groupBys {
		exact[g] = summary(period + "&group_by=" + g)
		if exact[g].Source != reports.SourceRows {
			t.Fatalf("within detail_retention the summary reads rows, got %q", exact[g].Source)
		}
	}
	// 51 days later the rows are gone (deleted here: Redis expires them by its own clock).
	d.at(time.Date(2027, 1, 15, 12, 0, 0, 0, saoPaulo))
	rowKeys, _ := d.client.Keys(d.ctx, d.ks.Key("rpt", "conv", "*")).Result()
	if len(rowKeys) == 0 {
		t.Fatal("no rows written")
	}
	d.client.Del(d.ctx, rowKeys...)

	r := summary(period + "&group_by=queue")
	if r.Source != reports.SourceAggregates || len(r.Groups) != 1 || r.Groups[0].Key != "sales" {
		t.Fatalf("aggregates: %s %+v", r.Source, r.Groups)
	}
	// By hand: waits 20 90 120 601 60 (sum 891, avg 178.2); buckets [15,30) [60,120)×2 [120,180)
	// [600,900): p50 (3rd) the second of [60,120) → 60+60×1.5/2 = 105 (exact 90); p90 (5th) in
	// [600,900) → 750 (exact 601). Handles 580 1800 600 (avg 993.333): p50 (2nd) in [600,900) → 750,
	// p90 (3rd) in [1800,3600) → 2700. First response 40 → [30,60) → 45. In time: c1, c5 → 2 of 5.
	g := r.Groups[0]
	if g.Total != 5 || g.Outcomes["handled"] != 3 || g.Outcomes["abandoned"] != 1 || g.Outcomes["closed_max_wait"] != 1 ||
		g.Percent["handled"] != 60 || g.Percent["abandoned"] != 20 || g.AnsweredInTime != 2 || g.ServiceLevel != 40 {
		t.Errorf("counts: %+v", g)
	}
	if g.Wait != (reports.Stat{Count: 5, Avg: 178.2, P50: 105, P90: 750}) || g.Handle != (reports.Stat{Count: 3, Avg: 993.333, P50: 750, P90: 2700}) ||
		g.FirstResponse != (reports.Stat{Count: 1, Avg: 40, P50: 45, P90: 45}) {
		t.Errorf("times: wait %+v handle %+v first response %+v", g.Wait, g.Handle, g.FirstResponse)
	}
	if r.Total.Total != 5 || !slices.Equal(r.WaitHistogram, []int{0, 1, 0, 2, 1, 0, 1, 0}) {
		t.Errorf("total %d, wait histogram %v", r.Total.Total, r.WaitHistogram)
	}
	// Every grouping against the rows' summary of the same day.
	for _, gb := range groupBys {
		agg, ex := summary(period+"&group_by="+gb), exact[gb]
		if !slices.Equal(agg.WaitHistogram, ex.WaitHistogram) {
			t.Errorf("%s: wait histogram %v, rows %v", gb, agg.WaitHistogram, ex.WaitHistogram)
		}
		if len(agg.Groups) != len(ex.Groups) {
			t.Fatalf("%s: %d groups, rows %d: %+v", gb, len(agg.Groups), len(ex.Groups), agg.Groups)
		}
		for i, a := range append(agg.Groups, agg.Total) {
			e := append(ex.Groups, ex.Total)[i]
			if a.Key != e.Key || a.Total != e.Total || fmt.Sprint(a.Outcomes) != fmt.Sprint(e.Outcomes) || fmt.Sprint(a.Percent) != fmt.Sprint(e.Percent) ||
				a.AnsweredInTime != e.AnsweredInTime || a.ServiceLevel != e.ServiceLevel {
				t.Errorf("%s %q: counts %+v, rows %+v", gb, a.Key, a, e)
			}
			for _, st := range [][2]reports.Stat{{a.Wait, e.Wait}, {a.Handle, e.Handle}, {a.FirstResponse, e.FirstResponse}} {
				if st[0].Count != st[1].Count || st[0].Avg != st[1].Avg || bucketOf(st[0].P50) != bucketOf(st[1].P50) || bucketOf(st[0].P90) != bucketOf(st[1].P90) {
					t.Errorf("%s %q: stat %+v, rows %+v", gb, a.Key, st[0], st[1])
				}
			}
		}
	}
	// The hours and the next day are decided in the reports' zone.
	if h := summary(period + "&group_by=hour"); len(h.Groups) != 4 || h.Groups[3].Key != "23" || h.Groups[3].Total != 1 {
		t.Errorf("hours: %+v", h.Groups)
	}
	if n := summary("from=2026-11-26&group_by=agent"); len(n.Groups) != 1 || n.Groups[0].Key != "ana" || n.Total.Total != 1 || n.Total.Handle.Avg != 290 {
		t.Errorf("the 26th: %+v", n)
	}
	// One filter on the grouped dimension (or by day) is answered; an agent reads its own.
	var own reports.SummaryReport
	d.get("/v1/reports/summary?from=2026-11-25&to=2026-11-26&group_by=day", "ana", auth.RoleAgent, &own)
	if own.Source != reports.SourceAggregates || len(own.Groups) != 2 || own.Groups[0].Total != 3 || own.Groups[1].Total != 1 || own.Total.Total != 4 {
		t.Errorf("ana's own by day: %+v", own)
	}
	if a := summary(period + "&group_by=agent&agent=ana"); len(a.Groups) != 1 || a.Total.Total != 3 || a.Total.Handle.Avg != 993.333 {
		t.Errorf("ana: %+v", a)
	}
	for _, q := range []string{period + "&group_by=queue&agent=ana", period + "&queue=sales&channel=whatsapp&group_by=day",
		"from=2026-11-25T10:00:00-03:00&to=2026-11-26T00:00:00-03:00"} {
		if s, body := d.raw("/v1/reports/summary?"+q, "sue", auth.RoleSupervisor); s != 400 {
			t.Errorf("%s: %d %s", q, s, body)
		}
	}
}
