package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/configs"
)

// BindJSON decodes an application/json body into dst and validates it. Wrong content type → 415,
// malformed JSON → 400 invalid_json, failed rules → 422 validation_failed with the fields at fault.
// dst holds copies: nothing refers to fiber's reused request buffer afterwards.
func BindJSON(c *fiber.Ctx, dst any) error {
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return ErrUnsupportedMedia
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return ErrInvalidJSON.WithFields(FieldError{Field: typeErr.Field, Message: "has the wrong type: want " + typeErr.Type.String()})
		}
		return ErrInvalidJSON.Wrap(err)
	}
	if dec.More() {
		return ErrInvalidJSON.Wrap(errors.New("trailing data after the JSON value"))
	}
	return Validate(dst)
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
