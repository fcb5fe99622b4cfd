package tasks

// asynq's keys of one queue (its layout since v0.22, unchanged in v0.26), all under the queue's hash
// tag, so a script over them touches one slot:
//
//	asynq:{<queue>}:active   LIST  ids of the tasks being processed
//	asynq:{<queue>}:lease    ZSET  id → lease expiry (s); a live worker extends it, never creates it
//	asynq:{<queue>}:pending  LIST  ids ready to run (workers pop from the right)
//	asynq:{<queue>}:t:<id>   HASH  the task (msg, state, …)
func asynqActiveKey(queue string) string  { return "asynq:{" + queue + "}:active" }
func asynqLeaseKey(queue string) string   { return "asynq:{" + queue + "}:lease" }
func asynqPendingKey(queue string) string { return "asynq:{" + queue + "}:pending" }
func asynqTaskPrefix(queue string) string { return "asynq:{" + queue + "}:t:" }

// asynqQueuePrefix starts every key of the queue; asynq:{<queue>}:<state> is the ZSET of the tasks
// in a waiting state (scheduled, retry, archived, completed).
func asynqQueuePrefix(queue string) string { return "asynq:{" + queue + "}:" }
