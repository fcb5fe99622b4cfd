package medialink

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestSignedLinksVerifyUntilTheyExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, err := New([]byte(strings.Repeat("k", 32)), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	link := s.Link("01MSG", time.Hour)
	u, err := url.Parse(link)
	if err != nil || u.Path != "/v1/messages/01MSG/media" {
		t.Fatalf("link %q", link)
	}
	q := u.Query()
	if err := s.Verify("01MSG", q.Get("exp"), q.Get("sig")); err != nil {
		t.Fatalf("fresh link: %v", err)
	}
	for name, c := range map[string][3]string{
		"another message": {"01OTHER", q.Get("exp"), q.Get("sig")},
		"a later expiry":  {"01MSG", "1800009999", q.Get("sig")},
		"no signature":    {"01MSG", q.Get("exp"), ""},
		"not a number":    {"01MSG", "soon", q.Get("sig")},
	} {
		if err := s.Verify(c[0], c[1], c[2]); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	other, _ := New([]byte(strings.Repeat("x", 32)), func() time.Time { return now })
	if err := other.Verify("01MSG", q.Get("exp"), q.Get("sig")); !errors.Is(err, ErrSignature) {
		t.Errorf("another key: %v", err)
	}
	now = now.Add(time.Hour)
	if err := s.Verify("01MSG", q.Get("exp"), q.Get("sig")); !errors.Is(err, ErrExpired) {
		t.Errorf("at its expiry: %v, want ErrExpired", err)
	}
	if _, err := New([]byte("short"), nil); err == nil {
		t.Error("a short key was accepted")
	}
}
