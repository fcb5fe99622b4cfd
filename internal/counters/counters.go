// Package counters keeps a Prometheus counter vector's children for the paths that count per
// message: a child's lookup (WithLabelValues) hashes every label on every call.
package counters

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// ByLabel is a vector's children by their last label, the labels before it fixed.
type ByLabel struct {
	vec   *prometheus.CounterVec
	fixed []string
	m     sync.Map // last label → prometheus.Counter
}

// New keeps vec's children whose first labels are fixed.
func New(vec *prometheus.CounterVec, fixed ...string) *ByLabel {
	return &ByLabel{vec: vec, fixed: fixed}
}

// Of is the child for label, looked up once. The labels are as many as the children themselves.
func (b *ByLabel) Of(label string) prometheus.Counter {
	if c, ok := b.m.Load(label); ok {
		return c.(prometheus.Counter)
	}
	c, _ := b.m.LoadOrStore(label, b.vec.WithLabelValues(append(b.fixed[:len(b.fixed):len(b.fixed)], label)...))
	return c.(prometheus.Counter)
}
