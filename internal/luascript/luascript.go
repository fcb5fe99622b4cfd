// Package luascript runs Redis Lua scripts with typed calls: each script has an arguments type that
// lays itself out as KEYS and ARGV, and a parser that turns the script's reply into a reply type,
// both written beside the script. Callers never assemble or index ARGV or a reply array, and every
// error names the script it came from.
package luascript

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Args is a script's arguments.
type Args interface {
	// KeysAndArgv lays the call out as the script's KEYS and ARGV.
	KeysAndArgv() (keys []string, argv []any)
}

// Script is a Lua script with its name, arguments type A and reply type R.
type Script[A Args, R any] struct {
	name  string
	lua   *redis.Script
	parse func(reply any) (R, error)
}

// New names a script's source and gives it the parser of its replies.
func New[A Args, R any](name, src string, parse func(reply any) (R, error)) *Script[A, R] {
	return &Script[A, R]{name: name, lua: redis.NewScript(src), parse: parse}
}

// Name is the script's name, as its errors say it.
func (s *Script[A, R]) Name() string { return s.name }

// Run runs the script (by its hash, loading it when Redis does not know it) and parses its reply.
func (s *Script[A, R]) Run(ctx context.Context, c redis.Scripter, a A) (R, error) {
	keys, argv := a.KeysAndArgv()
	return s.Reply(s.lua.Run(ctx, c, keys, argv...).Result())
}

// EvalSha queues the call by the script's hash on a pipeline; its result goes to Reply once the
// pipeline ran (or, when Redis answers NOSCRIPT, the call goes to Run).
func (s *Script[A, R]) EvalSha(ctx context.Context, c redis.Scripter, a A) *redis.Cmd {
	keys, argv := a.KeysAndArgv()
	return s.lua.EvalSha(ctx, c, keys, argv...)
}

// Reply parses a result of the script; an error, Redis's or the parser's, names the script.
func (s *Script[A, R]) Reply(v any, err error) (R, error) {
	if err != nil {
		var zero R
		return zero, fmt.Errorf("%s script: %w", s.name, err)
	}
	r, err := s.parse(v)
	if err != nil {
		return r, fmt.Errorf("%s script: %w", s.name, err)
	}
	return r, nil
}

// IsNoScript reports whether Redis did not know the script's hash (it restarted or was flushed).
func IsNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// ErrReply is a reply whose shape the parser does not know (never from the script on a real Redis).
var ErrReply = errors.New("unexpected reply")

// UnexpectedCode is the error of a reply code the parser does not know (a script and its caller
// out of step).
func UnexpectedCode(code string) error { return fmt.Errorf("%w: code %q", ErrReply, code) }

// Integer reads an integer reply.
func Integer(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%w: %T, want an integer", ErrReply, v)
	}
	return n, nil
}

// Array is a script's array reply, read by position without trusting its shape: a missing or
// mistyped element reads as zero. Parsers check the shape they rely on with Len.
type Array []any

// AsArray reads an array reply.
func AsArray(v any) (Array, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %T, want an array", ErrReply, v)
	}
	return a, nil
}

// Coded reads a reply {code, …}, as most scripts answer: the array and its code.
func Coded(v any) (Array, string, error) {
	a, err := AsArray(v)
	if err != nil {
		return nil, "", err
	}
	code, err := a.Code()
	return a, code, err
}

// Code is the first element of a reply {code, …} as scripts answer, or an error when there is none.
func (a Array) Code() (string, error) {
	if len(a) == 0 {
		return "", fmt.Errorf("%w: an empty array", ErrReply)
	}
	s, ok := a[0].(string)
	if !ok {
		return "", fmt.Errorf("%w: code %T, want a string", ErrReply, a[0])
	}
	return s, nil
}

// Str is element i as a string (integers formatted), "" when absent.
func (a Array) Str(i int) string {
	if i >= len(a) {
		return ""
	}
	switch x := a[i].(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// Int is element i as an integer (a Lua number, or a string of digits), 0 when absent.
func (a Array) Int(i int) int64 {
	if i >= len(a) {
		return 0
	}
	switch x := a[i].(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// Array is element i as an array, nil when absent.
func (a Array) Array(i int) Array {
	if i >= len(a) {
		return nil
	}
	v, _ := a[i].([]any)
	return v
}

// Fields is element i, an HGETALL reply (a flat array of field, value), as a map.
func (a Array) Fields(i int) map[string]string {
	return a.Array(i).FieldsFrom(0)
}

// FieldsFrom reads the array from element i on as field, value pairs.
func (a Array) FieldsFrom(i int) map[string]string {
	if i > len(a) {
		i = len(a)
	}
	m := make(map[string]string, (len(a)-i)/2)
	for ; i+1 < len(a); i += 2 {
		m[a.Str(i)] = a.Str(i + 1)
	}
	return m
}

// Flag is a boolean as scripts read it: "1" or "0".
func Flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
