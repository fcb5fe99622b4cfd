package tasks

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// asynq's loops fail every second while Redis is away: each kind of line is written once per pace,
// whatever address or count it quotes; its other lines pass.
func TestAsynqWarningsArePacedPerKind(t *testing.T) {
	var logs strings.Builder
	a := newSlogAdapter(slog.New(slog.NewTextHandler(&logs, nil)))
	for i := 0; i < 50; i++ {
		a.Error(fmt.Sprintf("Failed to forward scheduled tasks: dial tcp 127.0.0.1:%d: connect: connection refused", 6000+i))
		a.Warn("recoverer: could not list lease expired tasks: ", fmt.Errorf("attempt %d", i))
		a.Info("Starting processing")
	}
	for line, want := range map[string]int{"Failed to forward scheduled tasks": 1, "recoverer: could not list": 1, "Starting processing": 50} {
		if got := strings.Count(logs.String(), line); got != want {
			t.Errorf("%q written %d times, want %d", line, got, want)
		}
	}
}
