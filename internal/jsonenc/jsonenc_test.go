package jsonenc

import (
	"bytes"
	"testing"

	gojson "github.com/goccy/go-json"
)

var samples = []string{"", "a", "Olá, tudo bem? 😊", "<b>&</b>", "a\"b\\c", "tab\there", "new\nline", "\x00\x1f\x7f",
	"\u2028\u2029", "\xff\xfe", "caf\xc3", "wamid.HBgMNTUxMTk5OTk5MDAwMRUCABIYFjNFQjA=", "+5511999990001", "€ ¥ ✓"}

func check(t *testing.T, s string) {
	want, err := gojson.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("%q: got %s, want %s", s, got[1:], want)
	}
	if Plain(s) && !bytes.Equal(want, []byte(`"`+s+`"`)) {
		t.Fatalf("%q is not plain: the encoder writes %s", s, want)
	}
}

// TestAppendStringIsMarshal: every string comes out as the encoder writes it.
func TestAppendStringIsMarshal(t *testing.T) {
	for _, s := range samples {
		check(t, s)
	}
	for c := 0; c < 256; c++ {
		check(t, "x"+string(rune(c))+"y")
		check(t, "x"+string([]byte{byte(c)})+"y")
	}
	if got := string(AppendMember(nil, "name", "")); got != "" {
		t.Errorf("empty member written: %s", got)
	}
	if got := string(AppendMember([]byte("{"), "name", "Ana")); got != `{,"name":"Ana"` {
		t.Errorf("member: %s", got)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(check)
}
