package routing

import (
	"strconv"
	"strings"
	"time"
)

// reportLua writes a closed conversation's report row, in the script that closes it, so no report
// drifts from what happened. Every closing script calls reportRow with its close reason; the reason →
// outcome mapping lives in reportOutcome only (reports.Outcome* names the outcomes).
//
// Row key: cg:{t}:rpt:conv:<Unix day of creation, UTC>  ZSET  score = created ms, member = the row:
//
//	v1|id|channel|queue|entry point|agents (comma)|contact id|contact label|created ms|
//	first offered|accepted|first response|closed (each ms after created, "" when it never happened)|
//	offers|declines|timeouts|transfers|disposition|outcome|closed by
//
// A day key lives until its day ended plus the detail retention (EXPIRE, so nothing sweeps it).
//
// Daily aggregates, in the same step as the row (so none drifts from the rows):
// cg:{t}:rpt:agg:<local day of creation, days since 1970-01-01 in the reports' zone>  HASH, field
// "<dim>|<value>" for the groups the summary reads: "*|" (all), "q|queue", "a|agent" (each agent that
// accepted it; "a|" nobody), "c|channel", "d|disposition", "o|outcome", "h|hour" (local, 00–23). Its
// value packs the group's counters, comma separated (reports.parseAgg reads them):
//
//	1 conversations, 2–6 per outcome (handled, abandoned, closed_max_wait, closed_out_of_hours,
//	closed_idle), 7 accepted within the queue's service level, 8 wait sum ms, 9 handled count,
//	10 handle sum ms, 11 first responses, 12 first-response sum ms, then three histograms of
//	len(ReportBuckets) counts each (wait, handle, first response) by ReportBuckets' ranges.
//
// A day's aggregates live until the day ended plus the summary retention. The zone offset is the
// one in effect at creation: the caller passes the offset now, when that offset began and the one
// before (a conversation opened before the zone's previous change would count an hour off). The
// conversation HASH supplies the counters: offers (offerLua), declines and timeouts (releaseScript),
// agents (acceptScript), first_offered_at (offerLua), and from other parts transfers,
// disposition and first_response_at (empty or zero when absent).
var reportLua = strings.Replace(`
local function reportOutcome(reason, accepted)
  if reason == 'max_wait' then return 'closed_max_wait' end
  if reason == 'out_of_hours' then return 'closed_out_of_hours' end
  if reason == 'idle' then return 'closed_idle' end
  if accepted then return 'handled' end
  return 'abandoned'
end
local function reportClean(s)
  s = string.gsub(s or '', '[|\r\n]', ' ')
  return s
end
local reportBounds = {__BOUNDS__}
local function reportBucket(ms)
  local s = math.floor(ms / 1000)
  local b = 1
  for i = 2, #reportBounds do
    if s >= reportBounds[i] then b = i else break end
  end
  return b
end
local reportOutcomeSlot = {handled = 2, abandoned = 3, closed_max_wait = 4, closed_out_of_hours = 5, closed_idle = 6}
-- reportAggAdd adds one conversation to one group's packed counters (layout in reportrow.go).
local function reportAggAdd(key, field, outcome, inTime, wait, handle, frt)
  local a = {}
  local v = redis.call('HGET', key, field)
  if v then for x in string.gmatch(v, '[^,]+') do a[#a + 1] = tonumber(x) end end
  local nb = #reportBounds
  for i = #a + 1, 12 + 3 * nb do a[i] = 0 end
  a[1] = a[1] + 1
  local o = reportOutcomeSlot[outcome]
  if o then a[o] = a[o] + 1 end
  if inTime then a[7] = a[7] + 1 end
  a[8] = a[8] + wait
  a[12 + reportBucket(wait)] = a[12 + reportBucket(wait)] + 1
  if handle then
    a[9] = a[9] + 1
    a[10] = a[10] + handle
    a[12 + nb + reportBucket(handle)] = a[12 + nb + reportBucket(handle)] + 1
  end
  if frt then
    a[11] = a[11] + 1
    a[12] = a[12] + frt
    a[12 + 2 * nb + reportBucket(frt)] = a[12 + 2 * nb + reportBucket(frt)] + 1
  end
  -- integers print exactly up to 1e14 (%.14g): sums of ms stay far below
  redis.call('HSET', key, field, table.concat(a, ','))
end
-- agg: {summary retention s, the queue's service level ms, zone offset s now, start ms of the zone
-- period now, zone offset s before it}
local function reportRow(P, conv, card, nowMs, reason, retentionS, agg)
  local c = redis.call('HMGET', P .. 'conv:' .. conv, 'channel', 'queue', 'entry_point', 'agents', 'agent', 'contact_id',
    'contact_phone', 'contact_username', 'contact_name', 'opened_at', 'first_offered_at', 'first_response_at',
    'offers', 'declines', 'timeouts', 'transfers', 'disposition', 'closed_by')
  local k = redis.call('HMGET', P .. 'card:' .. card, 'created_at', 'accepted_at')
  local created = tonumber(k[1] or c[10] or nowMs)
  local nowS = math.floor(tonumber(nowMs) / 1000)
  local day = math.floor(created / 86400000)
  local ttl = (day + 1) * 86400 + tonumber(retentionS) - nowS
  local function rel(v)
    local n = tonumber(v or '')
    if not n or n == 0 then return '' end
    return string.format('%d', n - created)
  end
  local accepted = k[2] and k[2] ~= ''
  local agents = c[4] or ''
  if agents == '' and accepted then agents = c[5] or '' end
  local outcome = reportOutcome(reason, accepted)
  local disposition = reportClean(string.sub(c[17] or '', 1, 40))
  if ttl > 0 then
    local label = c[7] or ''
    if label == '' then label = c[8] or '' end
    if label == '' then label = c[9] or '' end
    local row = table.concat({'v1', conv, c[1] or '', c[2] or '', c[3] or '', reportClean(agents), c[6] or '',
      reportClean(string.sub(label, 1, 40)), string.format('%d', created), rel(c[11]), rel(k[2]), rel(c[12]), rel(nowMs),
      c[13] or '0', c[14] or '0', c[15] or '0', c[16] or '0', disposition,
      outcome, reportClean(c[18] or '')}, '|')
    local key = P .. 'rpt:conv:' .. string.format('%d', day)
    redis.call('ZADD', key, string.format('%d', created), row)
    redis.call('EXPIRE', key, string.format('%d', ttl))
  end
  if not agg then return end
  -- daily aggregates: the day and hour of creation in the reports' zone
  local off = tonumber(agg[3])
  if created < tonumber(agg[4]) then off = tonumber(agg[5]) end
  local localMs = created + off * 1000
  local lday = math.floor(localMs / 86400000)
  local attl = (lday + 1) * 86400 - off + tonumber(agg[1]) - nowS
  if attl <= 0 then return end
  local now = tonumber(nowMs)
  local acc = tonumber(k[2] or '')
  local wait, handle = now - created, nil
  if accepted and acc then wait = acc - created; handle = now - acc end
  local frt = tonumber(c[12] or '')
  if frt and frt ~= 0 then frt = frt - created else frt = nil end
  local inTime = accepted and wait <= tonumber(agg[2])
  local akey = P .. 'rpt:agg:' .. string.format('%d', lday)
  local groups = {'*|', 'q|' .. (c[2] or ''), 'c|' .. (c[1] or ''), 'd|' .. disposition, 'o|' .. outcome,
    'h|' .. string.format('%02d', math.floor((localMs % 86400000) / 3600000))}
  local ag = reportClean(agents)
  if ag == '' then groups[#groups + 1] = 'a|' end
  local seen = {}
  for a in string.gmatch(ag, '[^,]+') do
    if not seen[a] then seen[a] = true; groups[#groups + 1] = 'a|' .. a end
  end
  for _, g in ipairs(groups) do reportAggAdd(akey, g, outcome, inTime, wait, handle, frt) end
  redis.call('EXPIRE', akey, string.format('%d', attl))
end
`, "__BOUNDS__", reportBoundsLua(), 1)

// ReportBuckets are the aggregates' histogram bounds in seconds: bucket i counts [b[i], b[i+1]), the
// last is open. They include reports.WaitBuckets' bounds, so the wait distribution is exact.
var ReportBuckets = []int{0, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200}

func reportBoundsLua() string {
	b := make([]string, len(ReportBuckets))
	for i, v := range ReportBuckets {
		b[i] = strconv.Itoa(v)
	}
	return strings.Join(b, ", ")
}

// DefaultReportSummaryRetention keeps the daily aggregates when the configuration does not say.
const DefaultReportSummaryRetention = 400 * 24 * time.Hour

// reportAgg are the aggregates' arguments of a closing script (reportLua's agg): sl is the queue's
// service level.
func (r *Router) reportAgg(now time.Time, sl time.Duration) []any {
	ret := r.reportSummaryRetention
	if ret < time.Second {
		ret = DefaultReportSummaryRetention
	}
	loc := r.reportLocation
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	_, off := t.Zone()
	start, _ := t.ZoneBounds()
	startMs, prev := int64(0), off
	if !start.IsZero() {
		startMs = start.UnixMilli()
		_, prev = start.Add(-time.Second).In(loc).Zone()
	}
	return []any{int64(ret / time.Second), sl.Milliseconds(), off, startMs, prev}
}

// DefaultReportRetention keeps conversation rows when the configuration does not say.
const DefaultReportRetention = 35 * 24 * time.Hour

func (r *Router) reportRetentionSeconds() int64 {
	if r.reportRetention < time.Second {
		return int64(DefaultReportRetention / time.Second)
	}
	return int64(r.reportRetention / time.Second)
}
