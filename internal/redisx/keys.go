package redisx

import "github.com/chatgate/chatgate/internal/keyspace"

// Keys of this package, under the tenant's hash tag:
//
//	cg:{t}:epoch  STRING  random value set once (SET NX) while Redis keeps its state (see ResetWatcher)
func MarkerKey(ks keyspace.Space) string { return ks.Key("epoch") }
