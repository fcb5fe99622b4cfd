// Package jsonenc appends JSON by hand where the encoder's reflection is a visible part of a hot
// path (the webhook intake), byte for byte as github.com/goccy/go-json writes the same values.
package jsonenc

import (
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
)

// Plain reports whether s is written as it is between quotes: valid UTF-8 without a control
// character, DEL, '"', '\\', the HTML characters the encoder escapes (<, >, &) or 0xE2 (which
// starts U+2028 and U+2029, escaped too). Conservative: a string it refuses may still be plain.
func Plain(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c == 0x7F || c == 0xE2:
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// AppendString appends s as a JSON string, as gojson.Marshal(s) writes it: by hand when s is Plain,
// else by the encoder.
func AppendString(dst []byte, s string) []byte {
	if Plain(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := gojson.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// AppendMember appends ,"name":s when s is not empty (a member with omitempty); name is written as
// it is.
func AppendMember(dst []byte, name, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendString(dst, s)
}
