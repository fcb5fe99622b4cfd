// Package presence is the agents' per-channel state machine (offline, online, paused with a reason),
// kept in Redis, with the shared-queue rule, counters, history and liveness.
//
// Every transition is one Lua script over the agent's state HASH, history STREAM, totals HASH and the
// tenant's last-seen ZSET, all passed in KEYS, so replicas toggling the same agent at once serialize in Redis. Channel groups
// (connected components of the agent's channel–queue graph) are computed once, with the rest of the
// topology (internal/topology), and given to NewStore.
//
// Decisions where the design leaves room:
//   - Pause and resume act on the whole group; login and logout act on one channel. Logging out one
//     channel of a paused group leaves the others paused; logging into a channel of a group that has a
//     paused channel lands in paused with that channel's reason. Pausing never logs a channel in.
//   - Pausing a paused group with another reason is a transition (the old reason's time is closed);
//     the same state and reason again is a no-op: no history entry, no counter reset, no listener call.
//   - Only the agent itself logs in (online on an offline channel), so nobody is made to receive cards
//     behind their back. A supervisor may log out, pause (with a reason) and resume any agent.
//   - Pause or resume of an offline channel is 409 channel_offline, as the issue asks: a pause is
//     ErrChannelOffline; "online" asked by anyone but the agent can only be a resume, so on an offline
//     channel it is ErrLoginDenied, answered 409 channel_offline too. For the agent itself "online" on an
//     offline channel is a login (200): the API has one verb for login and resume.
//   - Totals are accrued when a state is left and split at midnight UTC, into one HASH per agent whose
//     fields start with the Unix day (so the script needs no key it was not given); fields of days
//     older than the retention are pruned once a day. Totals adds the still-open span up to now. Spans whose end precedes their start (replica clocks a few ms apart) count as 0.
//   - History entries carry the gateway's clock in "at" (what History filters on); stream ids are the
//     Redis clock and only order the entries. Trimming is approximate (XTRIM MINID ~): entries live
//     at least the retention.
//   - Liveness: login (from offline) and Heartbeat refresh the last-seen score; Heartbeat never adds an
//     agent that is logged in nowhere. The reaper's LogoutAll re-checks the score in the script, so a
//     heartbeat that lands between the sweep's read and the logout wins, and two replicas' reapers log
//     an agent out once. Its history entries carry reason and cause "disconnected"; the channel's
//     stored state is offline with no reason.
//
// HTTP (NewHandler): GET /v1/pause-reasons, GET /v1/agents (supervisor), GET /v1/agents/{id}/presence,
// PUT /v1/agents/{id}/channels/{channel}, POST /v1/agents/{id}/heartbeat, and for reports
// GET /v1/agents/{id}/presence/history?from=&to= (RFC 3339) and /presence/totals?day=YYYY-MM-DD.
package presence
