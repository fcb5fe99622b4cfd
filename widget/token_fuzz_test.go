package widget

import (
	"testing"
	"time"
)

// FuzzVerifyVisitorToken feeds arbitrary strings to the visitor token check: no panic, and only the
// token minted here (not an agent's token, not one of another gateway) is accepted.
func FuzzVerifyVisitorToken(f *testing.F) {
	tokens := NewTokens("fuzz-secret-0123456789", "", time.Hour, nil)
	good, _, _ := tokens.Mint("shop", "w-1", "Maria", "")
	foreign, _, _ := NewTokens("another-secret-0123456789", "", time.Hour, nil).Mint("shop", "w-1", "", "")
	for _, s := range []string{good, foreign, "", "a.b.c", good[:len(good)-2]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := tokens.Verify(token)
		if err != nil {
			return
		}
		if claims.Site != "shop" || claims.Subject != "w-1" {
			t.Fatalf("accepted %q with claims %+v", token, claims)
		}
	})
}
