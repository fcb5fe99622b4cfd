package integrations

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics: counters kept by this process, and gauges read from Redis at each scrape (so every
// process reports the same state of the tenant).
type metrics struct {
	s          *Service
	dispatched prometheus.Counter
	delivered  *prometheus.CounterVec
	healthy    *prometheus.Desc
	dead       *prometheus.Desc
	backlog    *prometheus.Desc
	outbox     *prometheus.Desc
	held       *prometheus.Desc
	heldAge    *prometheus.Desc
}

func newMetrics(s *Service, reg prometheus.Registerer) *metrics {
	m := &metrics{s: s,
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatgate_integration_events_dispatched_total",
			Help: "Outbox entries moved into delivery by this process."}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatgate_integration_deliveries_total",
			Help: "Delivery attempts by subscription and result (ok, failed, dead, gone)."}, []string{"subscription", "result"}),
		healthy: prometheus.NewDesc("chatgate_integration_subscription_healthy",
			"1 when the subscription is healthy, 0 when unhealthy (its deliveries keep failing), -1 when disabled (410 Gone).", []string{"subscription"}, nil),
		dead: prometheus.NewDesc("chatgate_integration_dead_letters", "Dead-lettered events waiting for an operator.", []string{"subscription"}, nil),
		backlog: prometheus.NewDesc("chatgate_integration_pending_conversations",
			"Conversations (and agents) with events waiting for delivery, per subscription.", []string{"subscription"}, nil),
		outbox: prometheus.NewDesc("chatgate_integration_outbox_length", "Events emitted and not yet dispatched.", nil, nil),
		held: prometheus.NewDesc("chatgate_integration_held_conversations",
			"Conversations with events not yet acknowledged by every subscription (retention keeps them).", nil, nil),
		heldAge: prometheus.NewDesc("chatgate_integration_oldest_hold_seconds",
			"How long the oldest hold on a conversation has lasted (0 when none).", nil, nil),
	}
	if reg != nil {
		reg.MustRegister(m.dispatched, m.delivered, m)
	}
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.healthy, m.dead, m.backlog, m.outbox, m.held, m.heldAge} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := m.s.Status(ctx)
	if err != nil {
		return
	}
	for _, sub := range st.Subscriptions {
		v := 1.0
		switch sub.State {
		case "unhealthy":
			v = 0
		case "disabled":
			v = -1
		}
		ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, v, sub.ID)
		ch <- prometheus.MustNewConstMetric(m.dead, prometheus.GaugeValue, float64(sub.DeadLetters), sub.ID)
		ch <- prometheus.MustNewConstMetric(m.backlog, prometheus.GaugeValue, float64(sub.Pending), sub.ID)
	}
	ch <- prometheus.MustNewConstMetric(m.outbox, prometheus.GaugeValue, float64(st.Outbox))
	ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, float64(st.Held.Conversations))
	age := 0.0
	if !st.Held.OldestSince.IsZero() {
		age = m.s.clock.Now().Sub(st.Held.OldestSince).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(m.heldAge, prometheus.GaugeValue, age)
}
