package routing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPendingStatusesAreBounded: statuses for provider ids no send has recorded are kept with a
// TTL; once pendingStatusesMax ids wait, the one that waited longest gives way, and an expired
// entry leaves the index on the next write.
func TestPendingStatusesAreBounded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "longest_idle")
	now := e.clock.Now().UnixMilli()
	index := e.router.keys.pendingIndex()
	pipe := e.client.Pipeline()
	for i := 0; i < pendingStatusesMax; i++ {
		list := e.router.keys.pendingStatuses("whatsapp", fmt.Sprintf("wamid.OLD%05d", i))
		pipe.RPush(ctx, list, `{"s":"read"}`)
		pipe.ZAdd(ctx, index, redis.Z{Score: float64(now + int64(time.Minute/time.Millisecond) + int64(i)), Member: list})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	_, outcome, err := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.NEW", StatusUpdate{State: "delivered"})
	if err != nil || outcome != StatusPending {
		t.Fatalf("a status for an unknown id: %s %v, want pending", outcome, err)
	}
	if n := e.client.ZCard(ctx, index).Val(); n != pendingStatusesMax {
		t.Errorf("ids waiting: %d, want the bound %d", n, pendingStatusesMax)
	}
	oldest := e.router.keys.pendingStatuses("whatsapp", "wamid.OLD00000")
	if e.client.Exists(ctx, oldest).Val() != 0 || e.client.ZScore(ctx, index, oldest).Err() == nil {
		t.Error("the id that waited longest is still kept")
	}
	newList := e.router.keys.pendingStatuses("whatsapp", "wamid.NEW")
	if ttl := e.client.TTL(ctx, newList).Val(); ttl <= 0 || ttl > pendingStatusTTL {
		t.Errorf("new entry's TTL: %v, want up to %v", ttl, pendingStatusTTL)
	}
	// Past their expiry the others leave the index on the next status kept.
	e.clock.Advance(pendingStatusTTL + time.Minute)
	if _, outcome, _ := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.LATER", StatusUpdate{State: "read"}); outcome != StatusPending {
		t.Fatalf("later status: %s, want pending", outcome)
	}
	if n := e.client.ZCard(ctx, index).Val(); n != 1 {
		t.Errorf("ids waiting after the TTL: %d, want only the new one", n)
	}
	// An unknown status is never kept.
	if _, outcome, _ := e.router.ApplyProviderStatus(ctx, "whatsapp", "wamid.X", StatusUpdate{State: "seen_on_glasses"}); outcome != StatusUnknown {
		t.Errorf("unknown status: %s, want unknown", outcome)
	}
}
