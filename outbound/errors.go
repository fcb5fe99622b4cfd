package outbound

import (
	"errors"
	"strings"
)

// ErrNoSender: nothing sends replies on the conversation's channel.
var ErrNoSender = errors.New("outbound: replies on this channel are not available")

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field   string
	Message string
}

// InvalidRequestError is a request the service refused before changing anything, with every field at
// fault.
type InvalidRequestError struct {
	Fields []FieldError
}

func (e *InvalidRequestError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return "outbound: invalid request: " + strings.Join(parts, "; ")
}

func invalid(fields ...FieldError) error { return &InvalidRequestError{Fields: fields} }
