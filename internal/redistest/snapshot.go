package redistest

import (
	"context"
	"encoding/hex"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Snapshot renders every key of the client's database with its serialized value, so a test can
// assert that a rejected request left Redis exactly as it was.
func Snapshot(t testing.TB, c *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := c.Dump(ctx, k).Result()
		if err != nil && err != redis.Nil {
			t.Fatalf("snapshot %s: %v", k, err)
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(hex.EncodeToString([]byte(v)))
		b.WriteByte('\n')
	}
	return b.String()
}
