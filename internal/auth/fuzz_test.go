package auth

import (
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to the Bearer token check: it never panics, and whatever it
// accepts was signed with the configured secret (a token signed elsewhere or altered never passes).
func FuzzVerify(f *testing.F) {
	const secret = "fuzz-secret-0123456789"
	// A fixed time: every fuzz worker process must mint the very same token as the coordinator.
	minted := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	good, _ := Mint(secret, "chatgate", "ana", RoleAgent, time.Hour, minted)
	foreign, _ := Mint("another-secret-0123456789", "chatgate", "ana", RoleAdmin, time.Hour, minted)
	for _, s := range []string{good, foreign, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbmEifQ.", good + "x", strings.ToUpper(good)} {
		f.Add(s)
	}
	v := NewVerifier(secret, "", "chatgate")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err != nil {
			return
		}
		if p.Agent == "" || p.Role.rank() == 0 {
			t.Fatalf("accepted %q as %+v", token, p)
		}
		if token != good && !strings.HasPrefix(token, good[:strings.LastIndexByte(good, '.')]) {
			// Another header and claims signed with our secret cannot come from the fuzzer.
			t.Fatalf("accepted a token not signed here: %q", token)
		}
	})
}
