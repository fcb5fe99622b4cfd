// Package e2e proves the whole gateway under faults, hostile input and scale-out. Its tests start
// real processes — redis-server (one, or a three-master cluster) on free loopback ports, two
// `chatgate serve` replicas, a `chatgate worker`, the fake WhatsApp Cloud API — drive them over HTTP
// as Meta, a website and agents would, and check the end state in Redis and on the agents' streams.
//
// The test command runs the short form; `go test ./test/e2e -e2e.long` runs the long form whose
// figures RELIABILITY.md records. Nothing leaves 127.0.0.1 and every loop is bounded.
package e2e
