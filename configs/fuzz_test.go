package configs

import (
	"testing"

	"github.com/chatgate/chatgate/internal/testutil"
)

// FuzzParse feeds arbitrary YAML to the configuration loader: it never panics, and a configuration
// it accepts passes validation again (so serve never starts on something config check would refuse).
func FuzzParse(f *testing.F) {
	f.Add(testutil.Fixture(f, "configs", "chatgate.yaml"))
	f.Add([]byte("listen: [1, 2]\nqueues: {a: b}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	noEnv := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, noEnv)
		if err != nil {
			return
		}
		if problems := cfg.Validate(); len(problems) > 0 {
			t.Fatalf("Parse accepted a configuration that fails validation: %v", problems)
		}
	})
}
