package luascript

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/internal/redistest"
)

type pairArgs struct{ key, value string }

func (a pairArgs) KeysAndArgv() ([]string, []any) { return []string{a.key}, []any{a.value} }

func parsePair(v any) (Array, error) {
	a, code, err := Coded(v)
	if err != nil {
		return nil, err
	}
	if code != "ok" {
		return nil, errors.New("refused")
	}
	return a, nil
}

// TestRunLaysOutAndParses: the arguments reach the script as KEYS and ARGV, the reply comes back
// parsed, and a script loaded by Run is found by its hash on a pipeline afterwards.
func TestRunLaysOutAndParses(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	s := New[pairArgs, Array]("pair", `
redis.call('SET', KEYS[1], ARGV[1])
return {'ok', redis.call('GET', KEYS[1]), 42, {'f', 'v'}}
`, parsePair)
	got, err := s.Run(ctx, client, pairArgs{key: "k", value: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Str(1) != "v1" || got.Int(2) != 42 || got.Str(2) != "42" || got.Fields(3)["f"] != "v" || got.Str(9) != "" {
		t.Errorf("reply read as %q %d %q %v", got.Str(1), got.Int(2), got.Str(2), got.Fields(3))
	}
	pipe := client.Pipeline()
	cmd := s.EvalSha(ctx, pipe, pairArgs{key: "k", value: "v2"})
	_, _ = pipe.Exec(ctx)
	if got, err := s.Reply(cmd.Result()); err != nil || got.Str(1) != "v2" {
		t.Errorf("pipelined: %v, %v", got, err)
	}
}

// TestErrorsNameTheScript: a Redis error, a reply the parser refuses and an unknown hash all say
// which script failed.
func TestErrorsNameTheScript(t *testing.T) {
	ctx := context.Background()
	client := redistest.Client(t)
	failing := New[pairArgs, Array]("failing", `return redis.error_reply('boom')`, parsePair)
	if _, err := failing.Run(ctx, client, pairArgs{key: "k"}); err == nil || !strings.HasPrefix(err.Error(), "failing script: ") ||
		!strings.Contains(err.Error(), "boom") {
		t.Errorf("Redis error: %v", err)
	}
	shapeless := New[pairArgs, Array]("shapeless", `return 7`, parsePair)
	if _, err := shapeless.Run(ctx, client, pairArgs{key: "k"}); !errors.Is(err, ErrReply) || !strings.HasPrefix(err.Error(), "shapeless script: ") {
		t.Errorf("reply of another shape: %v", err)
	}
	unknown := New[pairArgs, Array]("never loaded", `return {'ok'}`, parsePair)
	pipe := client.Pipeline()
	cmd := unknown.EvalSha(ctx, pipe, pairArgs{key: "k"})
	_, _ = pipe.Exec(ctx)
	if !IsNoScript(cmd.Err()) {
		t.Errorf("EvalSha of a script Redis never saw: %v, want NOSCRIPT", cmd.Err())
	}
	if _, err := unknown.Reply(cmd.Result()); err == nil || !strings.HasPrefix(err.Error(), "never loaded script: NOSCRIPT") {
		t.Errorf("Reply of NOSCRIPT: %v", err)
	}
}
