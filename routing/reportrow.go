package routing

import "time"

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
// A day key lives until its day ended plus the detail retention (EXPIRE, so nothing sweeps it). The
// conversation HASH supplies the counters: offers (offerLua), declines and timeouts (releaseScript),
// agents (acceptScript), first_offered_at (offerLua), and from other parts transfers,
// disposition and first_response_at (empty or zero when absent).
const reportLua = `
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
local function reportRow(P, conv, card, nowMs, reason, retentionS)
  local c = redis.call('HMGET', P .. 'conv:' .. conv, 'channel', 'queue', 'entry_point', 'agents', 'agent', 'contact_id',
    'contact_phone', 'contact_username', 'contact_name', 'opened_at', 'first_offered_at', 'first_response_at',
    'offers', 'declines', 'timeouts', 'transfers', 'disposition', 'closed_by')
  local k = redis.call('HMGET', P .. 'card:' .. card, 'created_at', 'accepted_at')
  local created = tonumber(k[1] or c[10] or nowMs)
  local day = math.floor(created / 86400000)
  local ttl = (day + 1) * 86400 + tonumber(retentionS) - math.floor(tonumber(nowMs) / 1000)
  if ttl <= 0 then return end
  local function rel(v)
    local n = tonumber(v or '')
    if not n or n == 0 then return '' end
    return string.format('%d', n - created)
  end
  local accepted = k[2] and k[2] ~= ''
  local agents = c[4] or ''
  if agents == '' and accepted then agents = c[5] or '' end
  local label = c[7] or ''
  if label == '' then label = c[8] or '' end
  if label == '' then label = c[9] or '' end
  local row = table.concat({'v1', conv, c[1] or '', c[2] or '', c[3] or '', reportClean(agents), c[6] or '',
    reportClean(string.sub(label, 1, 40)), string.format('%d', created), rel(c[11]), rel(k[2]), rel(c[12]), rel(nowMs),
    c[13] or '0', c[14] or '0', c[15] or '0', c[16] or '0', reportClean(string.sub(c[17] or '', 1, 40)),
    reportOutcome(reason, accepted), reportClean(c[18] or '')}, '|')
  local key = P .. 'rpt:conv:' .. string.format('%d', day)
  redis.call('ZADD', key, string.format('%d', created), row)
  redis.call('EXPIRE', key, string.format('%d', ttl))
end
`

// DefaultReportRetention keeps conversation rows when the configuration does not say.
const DefaultReportRetention = 35 * 24 * time.Hour

func (r *Router) reportRetentionSeconds() int64 {
	if r.reportRetention < time.Second {
		return int64(DefaultReportRetention / time.Second)
	}
	return int64(r.reportRetention / time.Second)
}
