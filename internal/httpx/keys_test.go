package httpx

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckKeysFindsEveryAmbiguousObject(t *testing.T) {
	many := func(n int, dup string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(dup + "}")
		return b.String()
	}
	for _, tc := range []struct {
		name, body string
		want       *Error // nil: accepted
	}{
		{"flat", `{"state":"online","reason":"lunch"}`, nil},
		{"same key in sibling objects", `[{"id":1},{"id":2},{"a":{"id":3}}]`, nil},
		{"same key at two levels", `{"id":1,"x":{"id":2},"y":[{"id":3}]}`, nil},
		{"key-like strings in values", `{"a":"b","c":["a","a"],"d":"a"}`, nil},
		{"escaped quotes in values", `{"a":"x\",\"a\":\"y","b":1}`, nil},
		{"unicode keys that differ", `{"ação":1,"acao":2}`, nil},
		{"scalar", `"a"`, nil},
		{"63 levels", strings.Repeat("[", 63) + strings.Repeat("]", 63), nil},
		{"many distinct keys", many(500, `"last":1`), nil},
		{"exact duplicate", `{"a":1,"a":2}`, ErrDuplicateKey},
		{"case duplicate", `{"state":"online","STATE":"offline"}`, ErrDuplicateKey},
		{"Kelvin sign folds to k", `{"kind":1,"` + "\u212a" + `ind":2}`, ErrDuplicateKey},
		{"long s folds to s", `{"state":1,"` + "\u017f" + `tate":2}`, ErrDuplicateKey},
		{"escaped duplicate", `{"text":1,"\u0074ext":2}`, ErrDuplicateKey},
		{"nested duplicate", `{"message":{"id":"m","text":"a","Text":"b"}}`, ErrDuplicateKey},
		{"duplicate inside an array", `{"list":[{"a":1},{"b":1,"B":2}]}`, ErrDuplicateKey},
		{"duplicate after a nested object", `{"a":{"b":{"c":1}},"x":1,"A":2}`, ErrDuplicateKey},
		{"duplicate among many keys", many(500, `"K250":1`), ErrDuplicateKey},
		{"65 levels", strings.Repeat("[", 65) + strings.Repeat("]", 65), ErrInvalidJSON},
		{"unbalanced", `{"a":[1}`, ErrInvalidJSON},
		{"close without open", `]`, ErrInvalidJSON},
		{"unterminated string", `{"a":"b`, ErrInvalidJSON},
		{"bad escape in a key", `{"\x":1}`, ErrInvalidJSON},
	} {
		err := CheckKeys([]byte(tc.body))
		var got *Error
		if err != nil && !errors.As(err, &got) {
			t.Errorf("%s: %v is not a catalogue error", tc.name, err)
			continue
		}
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != nil && (got == nil || got.Code != tc.want.Code):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want.Code)
		}
	}
}

// Garbage never panics the scanner: it answers or leaves the body to the decoder.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"A":2}`, `[{"a":"\"}"}]`, `{"\u00e7":1}`, `{{{`, `"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { _ = CheckKeys(b) })
}

// A WhatsApp notification's size and shape: the scan costs a few microseconds at most.
func BenchmarkCheckKeys(b *testing.B) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckKeys(body); err != nil {
			b.Fatal(err)
		}
	}
}
