package redistest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Contents renders every key of the client's database with its type, value and TTL (none or
// set), in an order of its own: unlike Snapshot's serialized values, a hash read while Redis
// rehashes it renders the same, so a test can assert that something changed nothing even when it
// read large hashes.
func Contents(t testing.TB, c *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("contents: %v", err)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		typ := c.Type(ctx, k).Val()
		var v any
		switch typ {
		case "string":
			v = c.Get(ctx, k).Val()
		case "hash":
			h := c.HGetAll(ctx, k).Val()
			fields := make([]string, 0, len(h))
			for f, x := range h {
				fields = append(fields, f+"="+x)
			}
			sort.Strings(fields)
			v = fields
		case "list":
			v = c.LRange(ctx, k, 0, -1).Val()
		case "set":
			m := c.SMembers(ctx, k).Val()
			sort.Strings(m)
			v = m
		case "zset":
			v = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "stream":
			v = c.XRange(ctx, k, "-", "+").Val()
		default:
			v = c.Dump(ctx, k).Val()
		}
		ttl := "none"
		if d := c.PTTL(ctx, k).Val(); d > 0 {
			ttl = "set"
		}
		fmt.Fprintf(&b, "%s %s ttl=%s %v\n", k, typ, ttl, v)
	}
	return b.String()
}
