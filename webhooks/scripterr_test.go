package webhooks

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chatgate/chatgate/internal/redistest"
)

// TestIsScriptError: a script's own failure (the same input fails again) is told from a Redis that
// is passing through a bad moment, with the errors a real Redis returns.
func TestIsScriptError(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	bad := redis.NewScript(`local x = nil; return x < 1`).Run(ctx, c, []string{"k"}).Err()
	if bad == nil || !isScriptError(fmt.Errorf("status: %w", bad)) {
		t.Errorf("a Lua error comparing nil: %v, want a script error", bad)
	}
	for _, err := range []error{
		errors.New("OOM command not allowed when used memory > 'maxmemory'. script: 1a2b, on @user_script:3."),
		errors.New("LOADING Redis is loading the dataset in memory"),
		errors.New("BUSY Redis is busy running a script"),
		errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
		context.DeadlineExceeded,
	} {
		if isScriptError(err) {
			t.Errorf("%v: taken for a script error", err)
		}
	}
}
