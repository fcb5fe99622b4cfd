// Package reports answers the contact center's reports for chat: presence (summary by agent,
// channel, day or reason; detailed events; each agent's day as a timeline) and conversations
// (the detailed listing; the summary and quantitative report by queue, agent, channel, day, hour or
// disposition). Every report has the same header (period, filters, time zone, generated at), a CSV
// form, and the same permissions: supervisors and administrators read everyone, an agent only
// itself.
//
// Nothing here writes. The rows are written where the state changes, in the same Lua scripts:
// conversations' rows by routing (routing/reportrow.go: one ZSET per UTC day of creation, member =
// the row, score = created ms, kept detail_retention past its day; and, in the same step, the daily
// aggregates: one HASH per day in the reports' zone, kept summary_retention, which the summary reads
// for periods beyond detail_retention), presence by the presence
// transition script (the per-agent history STREAM, entry ids in the gateway's ms). A report reads
// only the days of its period, so its cost follows the period, not the history kept.
package reports
