package web

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/httpx"
	"github.com/chatgate/chatgate/internal/keyspace"
	"github.com/chatgate/chatgate/routing"
)

var (
	errQueueNotFound = httpx.ErrQueueNotFound
	errTaskNotFound  = httpx.ErrTaskNotFound
	errTaskState     = httpx.ErrTaskState
	errBadTaskList   = httpx.ErrInvalidState.WithMessage(`state must be "retry" or "archived"`)
	errBadTaskID     = httpx.ErrBadID.WithMessage("task ids are letters, digits and . _ : -")
	taskIDPattern    = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,200}$`)
)

// ops is the admin API behind /ops/: asynq's queues, tasks and servers through its Inspector on the
// shared Redis client. Task payloads are never shown: they hold customers' numbers and texts.
type ops struct {
	inspector *asynq.Inspector
	always    []string
	redis     redis.UniversalClient
	keys      keyspace.Space
}

func newOps(o Options) *ops {
	return &ops{inspector: asynq.NewInspectorFromRedisClient(o.Redis), always: o.Queues, redis: o.Redis,
		keys: keyspace.New(o.Config.Tenant)}
}

func (o *ops) register(r fiber.Router) {
	r.Get("/queues", o.queues)
	r.Get("/queues/:queue/tasks", o.tasks)
	r.Post("/queues/:queue/tasks/:id/run", o.run)
	r.Delete("/queues/:queue/tasks/:id", o.delete)
	r.Get("/servers", o.servers)
	r.Get("/retention", o.retention)
}

// retention says how many closed conversations are kept past their retention because the
// integration outlet has not acknowledged their events, and since when the oldest is held.
func (o *ops) retention(c *fiber.Ctx) error {
	st, err := routing.ReadRetention(c.UserContext(), o.redis, o.keys)
	if err != nil {
		return err
	}
	out := fiber.Map{"held": st.Held, "at": time.Now().UTC()}
	if st.OldestHold != nil {
		out["oldest_hold"] = st.OldestHold
		out["oldest_hold_seconds"] = time.Since(*st.OldestHold).Seconds()
	}
	return c.JSON(out)
}

// queueJSON is one asynq queue: sizes by task state, and today's processed and failed counts.
type queueJSON struct {
	Queue          string  `json:"queue"`
	Size           int     `json:"size"`
	Pending        int     `json:"pending"`
	Active         int     `json:"active"`
	Scheduled      int     `json:"scheduled"`
	Retry          int     `json:"retry"`
	Archived       int     `json:"archived"`
	Completed      int     `json:"completed"`
	ProcessedToday int     `json:"processed_today"`
	FailedToday    int     `json:"failed_today"`
	ProcessedTotal int     `json:"processed_total"`
	FailedTotal    int     `json:"failed_total"`
	LatencySeconds float64 `json:"latency_seconds"`
	Paused         bool    `json:"paused"`
	MemoryBytes    int64   `json:"memory_bytes"`
	// History is processed and failed per UTC day, today first.
	History []dayJSON `json:"history"`
}

type dayJSON struct {
	Date      string `json:"date"`
	Processed int    `json:"processed"`
	Failed    int    `json:"failed"`
}

// historyDays is how many days of processed/failed counts the queue list carries.
const historyDays = 7

// names lists the configured queues and any other queue asynq knows of, sorted.
func (o *ops) names() ([]string, map[string]bool, error) {
	existing, err := o.inspector.Queues()
	if err != nil {
		return nil, nil, err
	}
	exists := map[string]bool{}
	for _, q := range existing {
		exists[q] = true
	}
	all := map[string]bool{}
	for _, q := range o.always {
		all[q] = true
	}
	for _, q := range existing {
		all[q] = true
	}
	names := make([]string, 0, len(all))
	for q := range all {
		names = append(names, q)
	}
	sort.Strings(names)
	return names, exists, nil
}

func (o *ops) queues(c *fiber.Ctx) error {
	names, exists, err := o.names()
	if err != nil {
		return err
	}
	out := make([]queueJSON, 0, len(names))
	for _, q := range names {
		if !exists[q] {
			// A configured queue that has never held a task: asynq does not know it yet.
			out = append(out, queueJSON{Queue: q, History: []dayJSON{}})
			continue
		}
		info, err := o.inspector.GetQueueInfo(q)
		if err != nil {
			return err
		}
		days, err := o.inspector.History(q, historyDays)
		if err != nil {
			return err
		}
		history := make([]dayJSON, 0, len(days))
		for _, d := range days {
			history = append(history, dayJSON{Date: d.Date.UTC().Format("2006-01-02"), Processed: d.Processed, Failed: d.Failed})
		}
		out = append(out, queueJSON{History: history, Queue: q, Size: info.Size, Pending: info.Pending, Active: info.Active,
			Scheduled: info.Scheduled, Retry: info.Retry, Archived: info.Archived, Completed: info.Completed,
			ProcessedToday: info.Processed, FailedToday: info.Failed, ProcessedTotal: info.ProcessedTotal,
			FailedTotal: info.FailedTotal, LatencySeconds: info.Latency.Seconds(), Paused: info.Paused,
			MemoryBytes: info.MemoryUsage})
	}
	return c.JSON(fiber.Map{"queues": out, "at": time.Now().UTC()})
}

// taskJSON is a task waiting for a retry or archived, without its payload.
type taskJSON struct {
	ID            string     `json:"id"`
	Queue         string     `json:"queue"`
	Type          string     `json:"type"`
	State         string     `json:"state"`
	Retried       int        `json:"retried"`
	MaxRetry      int        `json:"max_retry"`
	LastError     string     `json:"last_error,omitempty"`
	LastFailedAt  *time.Time `json:"last_failed_at,omitempty"`
	NextProcessAt *time.Time `json:"next_process_at,omitempty"`
	PayloadBytes  int        `json:"payload_bytes"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// queueParam returns the path's queue after checking asynq or the configuration knows it.
func (o *ops) queueParam(c *fiber.Ctx) (string, bool, error) {
	q := c.Params("queue")
	names, exists, err := o.names()
	if err != nil {
		return "", false, err
	}
	for _, n := range names {
		if n == q {
			return n, exists[n], nil
		}
	}
	return "", false, errQueueNotFound
}

// taskIDParam reads the task id, percent-decoded: outbound task ids are "msg:<id>" and clients
// (the ops page's encodeURIComponent) send the colon as %3A.
func taskIDParam(c *fiber.Ctx) (string, error) {
	id, err := url.PathUnescape(c.Params("id"))
	if err != nil || !taskIDPattern.MatchString(id) {
		return "", errBadTaskID
	}
	return strings.Clone(id), nil
}

// tasks is GET /v1/ops/queues/{queue}/tasks?state=retry|archived (the 100 most recent).
func (o *ops) tasks(c *fiber.Ctx) error {
	q, exists, err := o.queueParam(c)
	if err != nil {
		return err
	}
	state := c.Query("state", "archived")
	list := o.inspector.ListArchivedTasks
	switch state {
	case "archived":
	case "retry":
		list = o.inspector.ListRetryTasks
	default:
		return errBadTaskList
	}
	out := []taskJSON{}
	if exists {
		infos, err := list(q, asynq.PageSize(100))
		if err != nil {
			return err
		}
		for _, t := range infos {
			out = append(out, taskJSON{ID: t.ID, Queue: t.Queue, Type: t.Type, State: t.State.String(), Retried: t.Retried,
				MaxRetry: t.MaxRetry, LastError: t.LastErr, LastFailedAt: optTime(t.LastFailedAt),
				NextProcessAt: optTime(t.NextProcessAt), PayloadBytes: len(t.Payload)})
		}
	}
	return c.JSON(fiber.Map{"queue": q, "state": state, "tasks": out})
}

// taskError maps the Inspector's errors to the catalogue.
func taskError(err error) error {
	switch {
	case errors.Is(err, asynq.ErrQueueNotFound):
		return errQueueNotFound
	case errors.Is(err, asynq.ErrTaskNotFound):
		return errTaskNotFound
	}
	// Any other refusal of a known task is its state (a running task, or running a pending one).
	return errTaskState.Wrap(err)
}

// run is POST /v1/ops/queues/{queue}/tasks/{id}/run: a retry or archived task goes back to pending.
func (o *ops) run(c *fiber.Ctx) error {
	return o.taskAction(c, o.inspector.RunTask)
}

// delete is DELETE /v1/ops/queues/{queue}/tasks/{id}.
func (o *ops) delete(c *fiber.Ctx) error {
	return o.taskAction(c, o.inspector.DeleteTask)
}

func (o *ops) taskAction(c *fiber.Ctx, action func(queue, id string) error) error {
	q, exists, err := o.queueParam(c)
	if err != nil {
		return err
	}
	id, err := taskIDParam(c)
	if err != nil {
		return err
	}
	if !exists {
		return errTaskNotFound
	}
	// The task's state is read first so that a Redis outage is a 503, not a "wrong state" 409.
	if _, err := o.inspector.GetTaskInfo(q, id); err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return taskError(err)
		}
		return err
	}
	if err := action(q, id); err != nil {
		return taskError(err)
	}
	return c.JSON(fiber.Map{"queue": q, "id": id, "done": true})
}

// serverJSON is one connected asynq server (a gateway or worker process) and its busy workers.
type serverJSON struct {
	ID          string         `json:"id"`
	Host        string         `json:"host"`
	PID         int            `json:"pid"`
	Concurrency int            `json:"concurrency"`
	Queues      map[string]int `json:"queues"`
	Status      string         `json:"status"`
	Started     time.Time      `json:"started"`
	Active      []workerJSON   `json:"active_workers"`
}

type workerJSON struct {
	TaskID   string    `json:"task_id"`
	TaskType string    `json:"task_type"`
	Queue    string    `json:"queue"`
	Started  time.Time `json:"started"`
}

func (o *ops) servers(c *fiber.Ctx) error {
	infos, err := o.inspector.Servers()
	if err != nil {
		return err
	}
	out := make([]serverJSON, 0, len(infos))
	for _, s := range infos {
		sj := serverJSON{ID: s.ID, Host: s.Host, PID: s.PID, Concurrency: s.Concurrency, Queues: s.Queues,
			Status: s.Status, Started: s.Started.UTC(), Active: []workerJSON{}}
		for _, w := range s.ActiveWorkers {
			sj.Active = append(sj.Active, workerJSON{TaskID: w.TaskID, TaskType: w.TaskType, Queue: w.Queue, Started: w.Started.UTC()})
		}
		out = append(out, sj)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return c.JSON(fiber.Map{"servers": out})
}
