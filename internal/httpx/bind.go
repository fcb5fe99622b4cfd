package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
)

// BindJSON decodes a JSON body into dst and validates it. Not declared as JSON → 415, malformed,
// nested too deeply or with a key twice → 400 invalid_json / duplicate_key, failed rules → 422
// validation_failed with the fields at fault. dst holds copies: nothing refers to fiber's reused
// request buffer afterwards.
func BindJSON(c *fiber.Ctx, dst any) error {
	body, err := JSONBody(c)
	if err != nil {
		return err
	}
	// null decodes into a struct as nothing at all, so a route whose fields are all optional (a card's
	// close) would act on it: a body that is there must be the object it stands for.
	if string(bytes.TrimSpace(body)) == "null" {
		return ErrInvalidJSON.WithMessage("the body must be a JSON object, not null")
	}
	// Unmarshal, not a Decoder: half the CPU of the start of a conversation's decode, and it refuses
	// trailing data itself.
	if err := json.Unmarshal(body, dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return ErrInvalidJSON.WithFields(FieldError{Field: typeErr.Field, Message: "has the wrong type: want " + typeErr.Type.String()})
		}
		return ErrInvalidJSON.Wrap(err)
	}
	if !hasRules(reflect.TypeOf(dst)) {
		return nil
	}
	return Validate(dst)
}

// ruleless holds the struct pointer types whose fields, nested ones included, carry no validate tag:
// the validator would find nothing to check in them, after a walk by reflection on every request.
var ruleless sync.Map // reflect.Type → bool (true: no rules)

// hasRules reports whether the validator has anything to check in a value of type t. Anything but
// a pointer to a struct goes to it (it refuses what it cannot validate).
func hasRules(t reflect.Type) bool {
	if none, ok := ruleless.Load(t); ok {
		return !none.(bool)
	}
	none := t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !tagged(t, map[reflect.Type]bool{})
	ruleless.Store(t, none)
	return !none
}

// tagged reports whether a validate tag appears anywhere in t.
func tagged(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Interface: // the validator checks the value's own type, unknown here
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return tagged(t.Elem(), seen)
	case reflect.Map:
		return tagged(t.Key(), seen) || tagged(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.Tag.Get("validate") != "" || tagged(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// JSONBody returns the request body once it is declared as JSON and is free of ambiguity: the
// checks every JSON endpoint shares, the signed webhooks' included (after their signature).
func JSONBody(c *fiber.Ctx) ([]byte, error) {
	if !IsJSONMediaType(c.Get(fiber.HeaderContentType)) {
		return nil, ErrUnsupportedMedia
	}
	body := c.Body()
	if err := CheckKeys(body); err != nil {
		return nil, err
	}
	return body, nil
}

// IsJSONMediaType accepts application/json and application/<anything>+json, with parameters; a
// charset, when given, must be UTF-8 (the only encoding JSON has, RFC 8259 §8.1). A missing type is
// refused: every client sending JSON can say so, Meta and the WebChat sites included.
func IsJSONMediaType(contentType string) bool {
	mediaType, params, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	sub, ok := cutPrefixFold(mediaType, "application/")
	if !ok || !(strings.EqualFold(sub, "json") || (len(sub) > len("+json") && hasSuffixFold(sub, "+json"))) {
		return false
	}
	for params != "" {
		var param string
		param, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(param, "=")
		if strings.EqualFold(strings.TrimSpace(name), "charset") {
			value = strings.Trim(strings.TrimSpace(value), `"`)
			if !strings.EqualFold(value, "utf-8") && !strings.EqualFold(value, "utf8") {
				return false
			}
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// Validate runs the shared validator over v and returns 422 with readable field messages.
func Validate(v any) error {
	err := configs.Validator().Struct(v)
	if err == nil {
		return nil
	}
	var ves validator.ValidationErrors
	if errors.As(err, &ves) {
		return ErrValidation.WithFields(validationFields(ves)...)
	}
	return ErrValidation.Wrap(err)
}

func validationFields(ves validator.ValidationErrors) []FieldError {
	fields := make([]FieldError, len(ves))
	for i, fe := range ves {
		name := fe.Namespace()
		if i := strings.IndexByte(name, '.'); i >= 0 {
			name = name[i+1:]
		}
		fields[i] = FieldError{Field: name, Message: configs.FieldMessage(fe)}
	}
	return fields
}
