package reports

import (
	"bufio"
	"encoding/csv"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
)

var errQuery = httpx.ErrInvalidReportQuery

// Handler serves the reports API.
type Handler struct {
	svc *Service
}

// NewHandler builds the reports API.
func NewHandler(s *Service) *Handler { return &Handler{svc: s} }

// Register mounts the routes on an authenticated /v1 router. Supervisors read every agent; an agent
// reads only itself (its agent filter is itself).
func (h *Handler) Register(v1 fiber.Router) {
	v1.Get("/reports/presence", h.presence)
	v1.Get("/reports/presence/events", h.presenceEvents)
	v1.Get("/reports/presence/timeline", h.timeline)
	v1.Get("/reports/conversations", h.conversations)
	v1.Get("/reports/summary", h.summary)
}

// query reads the common parameters and applies the caller's permissions.
func (h *Handler) query(c *fiber.Ctx, paged bool) (Query, error) {
	from, to, err := h.svc.ParsePeriod(c.Query("from"), c.Query("to"))
	if err != nil {
		return Query{}, errQuery.WithMessage("%s", err.Error())
	}
	q := Query{From: from, To: to, Agent: c.Query("agent"), Queue: c.Query("queue"), Channel: c.Query("channel"), GroupBy: c.Query("group_by")}
	caller := auth.Caller(c)
	if !caller.Role.AtLeast(auth.RoleSupervisor) {
		if q.Agent != "" && q.Agent != caller.Agent {
			return Query{}, httpx.ErrForbidden
		}
		q.Agent = caller.Agent
	}
	q.Contacts = caller.Role.AtLeast(h.svc.contactRole)
	if err := h.svc.CheckFilters(q); err != nil {
		return Query{}, errQuery.WithMessage("%s", err.Error())
	}
	if paged && !isCSV(c) {
		q.Limit = 100
		if v := c.Query("limit"); v != "" {
			if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > 1000 {
				return Query{}, errQuery.WithMessage("%s", ErrBadPage.Error())
			}
		}
		if v := c.Query("offset"); v != "" {
			if q.Offset, err = strconv.Atoi(v); err != nil || q.Offset < 0 {
				return Query{}, errQuery.WithMessage("%s", ErrBadPage.Error())
			}
		}
	}
	return q, nil
}

func isCSV(c *fiber.Ctx) bool { return c.Query("format") == "csv" }

func (h *Handler) checkFormat(c *fiber.Ctx) error {
	if f := c.Query("format"); f != "" && f != "json" && f != "csv" {
		return errQuery.WithMessage("format must be json or csv")
	}
	return nil
}

func mapErr(err error) error {
	if errors.Is(err, ErrBadGroupBy) || errors.Is(err, ErrSummaryDays) || errors.Is(err, ErrSummaryFilter) {
		return errQuery.WithMessage("%s", err.Error())
	}
	return err
}

func (h *Handler) presence(c *fiber.Ctx) error {
	q, err := h.begin(c, false)
	if err != nil {
		return err
	}
	r, err := h.svc.Presence(c.UserContext(), q)
	if err != nil {
		return mapErr(err)
	}
	if !isCSV(c) {
		return c.JSON(r)
	}
	reasons := h.svc.reasonIDs()
	head := []string{"key", "logged_seconds", "online_seconds", "paused_seconds", "pauses", "wrap_up_seconds", "first_login", "last_logout"}
	for _, id := range reasons {
		head = append(head, "paused_seconds_"+id)
	}
	return h.csv(c, "presence", head, len(r.Groups), func(i int) []string {
		g := r.Groups[i]
		row := []string{g.Key, num(g.LoggedSeconds), num(g.OnlineSeconds), num(g.PausedSeconds), strconv.Itoa(g.Pauses),
			num(g.WrapUpSeconds), h.ts(g.FirstLogin), h.ts(g.LastLogout)}
		for _, id := range reasons {
			row = append(row, num(g.PausedBy[id]))
		}
		return row
	})
}

func (h *Handler) presenceEvents(c *fiber.Ctx) error {
	q, err := h.begin(c, true)
	if err != nil {
		return err
	}
	r, err := h.svc.PresenceEvents(c.UserContext(), q)
	if err != nil {
		return mapErr(err)
	}
	if !isCSV(c) {
		return c.JSON(r)
	}
	head := []string{"agent", "channel", "kind", "from", "to", "reason", "reason_label", "by", "cause", "at", "until", "duration_seconds", "ongoing"}
	return h.csv(c, "presence-events", head, len(r.Rows), func(i int) []string {
		e := r.Rows[i]
		return []string{e.Agent, e.Channel, e.Kind, e.From, e.To, e.Reason, e.ReasonLabel, e.By, e.Cause, h.ts(&e.At), h.ts(&e.Until),
			num(e.DurationSeconds), strconv.FormatBool(e.Ongoing)}
	})
}

func (h *Handler) timeline(c *fiber.Ctx) error {
	q, err := h.begin(c, false)
	if err != nil {
		return err
	}
	r, err := h.svc.Timeline(c.UserContext(), q)
	if err != nil {
		return mapErr(err)
	}
	if !isCSV(c) {
		return c.JSON(r)
	}
	type seg struct {
		agent string
		s     Segment
	}
	var all []seg
	for _, a := range r.Agents {
		for _, s := range a.Segments {
			all = append(all, seg{a.Agent, s})
		}
	}
	return h.csv(c, "presence-timeline", []string{"agent", "state", "reason", "start", "end", "duration_seconds"}, len(all), func(i int) []string {
		s := all[i]
		return []string{s.agent, s.s.State, s.s.Reason, h.ts(&s.s.Start), h.ts(&s.s.End), num(secs(s.s.End.Sub(s.s.Start)))}
	})
}

func (h *Handler) conversations(c *fiber.Ctx) error {
	q, err := h.begin(c, true)
	if err != nil {
		return err
	}
	r, err := h.svc.Conversations(c.UserContext(), q)
	if err != nil {
		return mapErr(err)
	}
	if !isCSV(c) {
		return c.JSON(r)
	}
	head := []string{"id", "channel", "queue", "entry_point", "agents", "contact", "created_at", "first_offered_at", "accepted_at",
		"first_response_at", "closed_at", "wait_seconds", "handle_seconds", "first_response_seconds", "offers", "declines",
		"timeouts", "transfers", "disposition", "outcome", "closed_by"}
	return h.csv(c, "conversations", head, len(r.Rows), func(i int) []string {
		v := r.Rows[i]
		return []string{v.ID, v.Channel, v.Queue, v.EntryPoint, strings.Join(v.Agents, " "), v.Contact, h.ts(&v.Created),
			h.ts(v.FirstOffered), h.ts(v.Accepted), h.ts(v.FirstResponse), h.ts(&v.Closed), num(v.WaitSeconds), optNum(v.HandleSeconds),
			optNum(v.FirstResponseSeconds), strconv.Itoa(v.Offers), strconv.Itoa(v.Declines), strconv.Itoa(v.Timeouts),
			strconv.Itoa(v.Transfers), v.Disposition, v.Outcome, v.ClosedBy}
	})
}

func (h *Handler) summary(c *fiber.Ctx) error {
	q, err := h.begin(c, false)
	if err != nil {
		return err
	}
	r, err := h.svc.Summary(c.UserContext(), q)
	if err != nil {
		return mapErr(err)
	}
	if !isCSV(c) {
		return c.JSON(r)
	}
	head := []string{"key", "total"}
	for _, o := range Outcomes {
		head = append(head, o, o+"_percent")
	}
	for _, m := range []string{"wait", "handle", "first_response"} {
		head = append(head, m+"_avg_seconds", m+"_p50_seconds", m+"_p90_seconds")
	}
	head = append(head, "answered_in_time", "service_level_percent")
	groups := append(r.Groups, r.Total)
	return h.csv(c, "summary", head, len(groups), func(i int) []string {
		g := groups[i]
		row := []string{g.Key, strconv.Itoa(g.Total)}
		for _, o := range Outcomes {
			row = append(row, strconv.Itoa(g.Outcomes[o]), num(g.Percent[o]))
		}
		for _, s := range []Stat{g.Wait, g.Handle, g.FirstResponse} {
			row = append(row, num(s.Avg), num(s.P50), num(s.P90))
		}
		return append(row, strconv.Itoa(g.AnsweredInTime), num(g.ServiceLevel))
	})
}

func (h *Handler) begin(c *fiber.Ctx, paged bool) (Query, error) {
	if err := h.checkFormat(c); err != nil {
		return Query{}, err
	}
	return h.query(c, paged)
}

// csv streams rows as UTF-8 with a byte-order mark (spreadsheets then read accents right), one
// header row. The rows are already read, so a failure cannot cut the file half-way.
func (h *Handler) csv(c *fiber.Ctx, name string, head []string, n int, row func(int) []string) error {
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="chatgate-`+name+`-`+h.svc.clock.Now().In(h.svc.loc).Format("20060102-150405")+`.csv"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		_, _ = w.WriteString("\ufeff")
		cw := csv.NewWriter(w)
		_ = cw.Write(head)
		for i := 0; i < n; i++ {
			_ = cw.Write(row(i))
			if i%1000 == 999 {
				cw.Flush()
				if w.Flush() != nil {
					return
				}
			}
		}
		cw.Flush()
	})
	return nil
}

func (h *Handler) ts(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.In(h.svc.loc).Format(time.RFC3339)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func optNum(v *float64) string {
	if v == nil {
		return ""
	}
	return num(*v)
}

func (s *Service) reasonIDs() []string {
	out := make([]string, 0, len(s.topo.PauseReasons))
	for _, r := range s.topo.PauseReasons {
		out = append(out, r.ID)
	}
	return out
}
