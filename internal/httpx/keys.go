package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxJSONDepth bounds how deeply objects and arrays nest in a JSON body. The deepest body the
// gateway reads (a WhatsApp notification) nests about ten levels.
const MaxJSONDepth = 64

// An object that names a field twice is refused (ErrDuplicateKey). Decoders match field names regardless of case, so
// {"state":"online","State":"offline"} is as ambiguous as the same key twice: which one wins depends
// on the decoder, and a proxy or a signature check in front may read the other.

// keyIndexAfter is how many keys an object holds before its keys are looked up in a map rather
// than compared one by one.
const keyIndexAfter = 32

// CheckKeys scans body once, without decoding it, for an object that names a key twice (keys equal
// when folded as the JSON decoder matches field names) and for nesting deeper than MaxJSONDepth.
// Malformed JSON it notices is invalid_json; what it does not notice is left to the decoder.
func CheckKeys(body []byte) error {
	s := scanners.Get().(*keyScanner)
	err := s.scan(body)
	s.depth, s.folded, s.spans = 0, s.folded[:0], s.spans[:0]
	for i := range s.frames {
		s.frames[i].index = nil
	}
	scanners.Put(s)
	return err
}

var scanners = sync.Pool{New: func() any { return new(keyScanner) }}

type keyFrame struct {
	object  bool
	wantKey bool
	first   int // index in keyScanner.spans of this object's first key
	index   map[string]struct{}
}

type keySpan struct{ off, end int }

type keyScanner struct {
	frames [MaxJSONDepth]keyFrame
	depth  int
	folded []byte    // the folded keys of every open object, one after another
	spans  []keySpan // where each key lies in folded
	raw    []byte    // scratch for unescaping a key
}

func (s *keyScanner) scan(body []byte) error {
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '{', '[':
			if s.depth == MaxJSONDepth {
				return ErrInvalidJSON.Wrap(fmt.Errorf("nested more than %d levels deep", MaxJSONDepth))
			}
			s.frames[s.depth] = keyFrame{object: c == '{', wantKey: c == '{', first: len(s.spans)}
			s.depth++
		case '}', ']':
			if s.depth == 0 || s.frames[s.depth-1].object != (c == '}') {
				return ErrInvalidJSON.Wrap(errors.New("unbalanced brackets"))
			}
			s.depth--
			f := &s.frames[s.depth]
			if f.object && f.first < len(s.spans) {
				s.folded = s.folded[:s.spans[f.first].off]
				s.spans = s.spans[:f.first]
			}
			f.index = nil
		case ',':
			if s.depth > 0 && s.frames[s.depth-1].object {
				s.frames[s.depth-1].wantKey = true
			}
		case '"':
			end, escaped, err := stringEnd(body, i)
			if err != nil {
				return err
			}
			if s.depth > 0 && s.frames[s.depth-1].wantKey {
				s.frames[s.depth-1].wantKey = false
				if err := s.key(&s.frames[s.depth-1], body[i:end+1], escaped); err != nil {
					return err
				}
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote closing the string that opens at body[start].
func stringEnd(body []byte, start int) (end int, escaped bool, err error) {
	for j := start + 1; j < len(body); {
		q := bytes.IndexByte(body[j:], '"')
		if q < 0 {
			break
		}
		bs := bytes.IndexByte(body[j:j+q], '\\')
		if bs < 0 {
			return j + q, escaped, nil
		}
		escaped = true
		j += bs + 2 // the backslash and the character it escapes
	}
	return 0, false, ErrInvalidJSON.Wrap(errors.New("unterminated string"))
}

// key records one key of f (quoted holds its quotes) or reports that f already has it.
func (s *keyScanner) key(f *keyFrame, quoted []byte, escaped bool) error {
	name := quoted[1 : len(quoted)-1]
	if escaped {
		var unquoted string
		if err := json.Unmarshal(quoted, &unquoted); err != nil {
			return ErrInvalidJSON.Wrap(err)
		}
		s.raw = append(s.raw[:0], unquoted...)
		name = s.raw
	}
	off := len(s.folded)
	s.folded = appendFoldedName(s.folded, name)
	folded := s.folded[off:]
	switch n := len(s.spans) - f.first; {
	case f.index != nil:
		if _, dup := f.index[string(folded)]; dup {
			return duplicate(name)
		}
		f.index[string(folded)] = struct{}{}
	default:
		for _, sp := range s.spans[f.first:] {
			if bytes.Equal(s.folded[sp.off:sp.end], folded) {
				return duplicate(name)
			}
		}
		if n+1 >= keyIndexAfter {
			f.index = make(map[string]struct{}, 2*keyIndexAfter)
			for _, sp := range s.spans[f.first:] {
				f.index[string(s.folded[sp.off:sp.end])] = struct{}{}
			}
			f.index[string(folded)] = struct{}{}
		}
	}
	s.spans = append(s.spans, keySpan{off: off, end: len(s.folded)})
	return nil
}

// duplicate names the field at fault (as the body spelled its second occurrence, cut to 64 bytes).
func duplicate(name []byte) error {
	if len(name) > 64 {
		name = name[:64]
	}
	return ErrDuplicateKey.WithFields(FieldError{Field: strings.ToValidUTF8(string(name), "\uFFFD"), Message: "is named more than once"})
}

// appendFoldedName folds a field name the way encoding/json matches names to struct fields: ASCII
// upper case, and every other rune mapped to upper(lower(r)), so "k", "K" and the Kelvin sign agree.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		out = utf8.AppendRune(out, unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return out
}
