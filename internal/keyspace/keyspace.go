// Package keyspace builds the Redis keys of one tenant. Every key carries the tenant's hash tag, so
// each Lua script touches one slot and the whole gateway runs on Redis Cluster.
package keyspace

import "strings"

// Space is the key prefix of one tenant: cg:{tenant}:.
type Space struct {
	prefix string
}

// New returns the key space of a tenant (a configs.SafeID).
func New(tenant string) Space {
	return Space{prefix: "cg:{" + tenant + "}:"}
}

// Key joins parts under the tenant prefix: Key("presence", "ana") → cg:{t}:presence:ana.
func (s Space) Key(parts ...string) string {
	var b strings.Builder
	n := len(s.prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	b.Grow(n)
	b.WriteString(s.prefix)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Prefix is the tenant's prefix, for SCAN patterns and tests.
func (s Space) Prefix() string { return s.prefix }
