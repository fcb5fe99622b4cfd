package fakeapi

import (
	"context"
	"net/http"
	"testing"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// BenchmarkSendThroughFake measures a template send from the client to the
// fake over loopback TCP, in parallel: the fake's share of an end-to-end
// benchmark.
func BenchmarkSendThroughFake(b *testing.B) {
	s := New(Options{Numbers: map[string]string{numberID: token}, MaxRecorded: 1})
	if err := s.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	defer tr.CloseIdleConnections()
	c, err := whatsapp.New(whatsapp.Config{BaseURL: s.URL(), HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		b.Fatal(err)
	}
	msg := whatsapp.TemplateMessage{To: phone, Name: "order_update", Language: "pt_BR", BodyParams: []string{"Ana", "#123"}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), numberID, token, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if got := s.Accepted(); got < b.N {
		b.Fatalf("accepted %d, want %d", got, b.N)
	}
}
