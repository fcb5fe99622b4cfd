package counters

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestOfIsTheVectorsChild(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_total"}, []string{"provider", "kind"})
	b := New(vec, "whatsapp")
	b.Of("text").Inc()
	b.Of("text").Add(2)
	b.Of("image").Inc()
	if got := value(t, vec.WithLabelValues("whatsapp", "text")); got != 3 {
		t.Fatalf("text = %v, want 3", got)
	}
	if got := value(t, vec.WithLabelValues("whatsapp", "image")); got != 1 {
		t.Fatalf("image = %v, want 1", got)
	}
	ch := make(chan prometheus.Metric, 4)
	vec.Collect(ch)
	if n := len(ch); n != 2 {
		t.Fatalf("%d children, want 2", n)
	}
}
