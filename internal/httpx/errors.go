// Package httpx is the HTTP plumbing every package shares: the error catalogue and its JSON form,
// body binding with validation, and the fiber application with its middlewares.
package httpx

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-playground/validator/v10"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// Error is an error with a stable code that the error handler renders as
// {"error":{"code":…,"message":…,"request_id":…}}. Handlers return it; anything else is a bare 500.
type Error struct {
	Status  int
	Code    string
	Message string
	// Fields names the request fields at fault, for validation errors.
	Fields []FieldError
	// RetryAfter, when set, becomes a Retry-After header (seconds).
	RetryAfter int
	cause      error
}

// FieldError locates one invalid request field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Code + ": " + e.Message + ": " + e.cause.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// Wrap keeps the cause for the log without showing it to the client.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// WithMessage says more precisely what went wrong than the entry's default message.
func (e *Error) WithMessage(format string, args ...any) *Error {
	c := *e
	c.Message = fmt.Sprintf(format, args...)
	return &c
}

// WithRetryAfter asks the client to wait this many seconds before trying again.
func (e *Error) WithRetryAfter(seconds int) *Error {
	c := *e
	c.RetryAfter = seconds
	return &c
}

// WithFields attaches invalid fields.
func (e *Error) WithFields(fields ...FieldError) *Error {
	c := *e
	c.Fields = append(append([]FieldError(nil), e.Fields...), fields...)
	return &c
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string       `json:"code"`
	Message   string       `json:"message"`
	RequestID string       `json:"request_id,omitempty"`
	Fields    []FieldError `json:"fields,omitempty"`
}

// UnavailableFunc reports whether an error means the store cannot be reached (answered 503).
type UnavailableFunc func(error) bool

// ErrorHandler renders every error as catalogue JSON. Unknown errors are logged with their detail and
// answered as a bare 500; store outages become 503 so callers retry.
func ErrorHandler(logger *slog.Logger, unavailable UnavailableFunc) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		e := classify(err, unavailable)
		rid := RequestID(c)
		if rid == "" {
			// Errors raised before the middlewares ran (an oversized body) still get an id to quote.
			rid = utils.UUID()
			c.Set(fiber.HeaderXRequestID, rid)
		}
		switch {
		case e.Status >= 500 && e.Code == ErrInternal.Code:
			logger.ErrorContext(c.UserContext(), "request failed", "request_id", rid, "method", c.Method(), "path", c.Route().Path, "err", err)
		case e.Status >= 500:
			logger.WarnContext(c.UserContext(), "request failed", "request_id", rid, "code", e.Code, "err", err)
		}
		if e.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, fmt.Sprint(e.RetryAfter))
		}
		return c.Status(e.Status).JSON(errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, RequestID: rid, Fields: e.Fields}})
	}
}

func classify(err error, unavailable UnavailableFunc) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ves validator.ValidationErrors
	if errors.As(err, &ves) {
		return ErrValidation.WithFields(validationFields(ves)...)
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusNotFound:
			return ErrRouteNotFound
		case fiber.StatusMethodNotAllowed:
			return ErrMethodNotAllowed
		case fiber.StatusRequestEntityTooLarge:
			return ErrBodyTooLarge
		case fiber.StatusRequestHeaderFieldsTooLarge:
			return ErrHeaderTooLarge
		case fiber.StatusRequestTimeout:
			return ErrTimeout
		case fiber.StatusUnsupportedMediaType:
			return ErrUnsupportedMedia
		case fiber.StatusTooManyRequests:
			return ErrRateLimited
		}
		if fe.Code >= 400 && fe.Code < 500 {
			// fiber's status for what it refused itself, under the catalogue's code and message: fasthttp's
			// parse errors quote the request's bytes, its Authorization header among them.
			c := *ErrBadRequest
			c.Status = fe.Code
			return &c
		}
	}
	if unavailable != nil && unavailable(err) {
		return ErrUnavailable
	}
	return ErrInternal
}
