// Package openapitest checks that what chatgate answers matches its OpenAPI document: tests route
// their HTTP clients through Transport, and every response of a documented operation is validated
// against the document's schemas (status, content type, body). Requests are not validated: tests
// send malformed ones on purpose, and the answer to those must match the document too.
//
// It is imported by tests only, so the validator's modules never reach the binary.
package openapitest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"

	"github.com/chatgate/chatgate/internal/openapi"
)

// Validator checks exchanges against chatgate's document. It is safe for concurrent use.
type Validator struct {
	mu sync.Mutex // the library's validator keeps per-call state
	v  validator.Validator
}

var (
	shared     *Validator
	sharedErr  error
	sharedOnce sync.Once
)

// Shared is one Validator per test binary: building one parses and compiles the whole document.
func Shared() (*Validator, error) {
	sharedOnce.Do(func() { shared, sharedErr = New(openapi.YAML()) })
	return shared, sharedErr
}

// New builds a validator of the given OpenAPI 3.1 document, refusing one that is not valid.
func New(spec []byte) (*Validator, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("openapitest: parse: %w", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapitest: build the validator: %w", errors.Join(errs...))
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("openapitest: the document is not valid OpenAPI 3.1: %s", describe(verrs))
	}
	return &Validator{v: v}, nil
}

// ErrUndocumented reports a request whose path or method the document does not describe.
var ErrUndocumented = errors.New("openapitest: no such operation in the document")

// Check validates one response, whose body has been read into body, against the operation that
// req names. It returns ErrUndocumented for an operation the document does not have.
func (v *Validator) Check(req *http.Request, resp *http.Response, body []byte) error {
	copyResp := *resp
	copyResp.Body = io.NopCloser(bytes.NewReader(body))
	v.mu.Lock()
	ok, errs := v.v.ValidateHttpResponse(req, &copyResp)
	v.mu.Unlock()
	if ok {
		return nil
	}
	for _, e := range errs {
		if e.ValidationType == helpers.PathValidation &&
			(e.ValidationSubType == helpers.ValidationMissing || e.ValidationSubType == helpers.ValidationMissingOperation) {
			return ErrUndocumented
		}
	}
	return fmt.Errorf("%s %s → %d %s: %s", req.Method, req.URL.Path, resp.StatusCode, truncate(body), describe(errs))
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  - ")
		b.WriteString(e.Message)
		if e.Reason != "" {
			b.WriteString(": " + e.Reason)
		}
		for _, s := range e.SchemaValidationErrors {
			b.WriteString("\n      " + s.Error())
		}
	}
	return b.String()
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// Reporter is where mismatches go; *testing.T and *testing.B are Reporters.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// Transport validates the responses of the hosts it watches and passes everything else through.
type Transport struct {
	Base      http.RoundTripper // nil: http.DefaultTransport
	Validator *Validator

	mu      sync.Mutex
	watched map[string]*Watch // by host:port
}

// Watch is the validation of one host's exchanges, for one test.
type Watch struct {
	t        *Transport
	host     string
	r        Reporter
	mu       sync.Mutex
	failures []string
	checked  int
	stopped  bool
}

// Watch starts validating exchanges with host (host:port). Stop ends the watch and reports every
// mismatch seen to r; call it from the test's cleanup, so that mismatches found by goroutines the
// test started are not reported after the test ended.
func (t *Transport) Watch(host string, r Reporter) *Watch {
	w := &Watch{t: t, host: host, r: r}
	t.mu.Lock()
	if t.watched == nil {
		t.watched = map[string]*Watch{}
	}
	t.watched[host] = w
	t.mu.Unlock()
	return w
}

// Checked is how many responses of documented operations were validated so far.
func (w *Watch) Checked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checked
}

// Stop ends the watch and reports its mismatches.
func (w *Watch) Stop() {
	w.t.mu.Lock()
	if w.t.watched[w.host] == w {
		delete(w.t.watched, w.host)
	}
	w.t.mu.Unlock()
	w.mu.Lock()
	w.stopped = true
	failures := w.failures
	w.failures = nil
	w.mu.Unlock()
	w.r.Helper()
	for _, f := range failures {
		w.r.Errorf("response does not match the OpenAPI document: %s", f)
	}
}

// RoundTrip sends req and, for a watched host, validates the response. Event streams are checked
// by status and content type only: their bodies end when the test closes them.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.mu.Lock()
	w := t.watched[req.URL.Host]
	t.mu.Unlock()
	if w == nil || req.Method == http.MethodHead || req.Method == http.MethodOptions {
		return resp, nil
	}
	var body []byte
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			// The caller would have seen the same failure reading the body; let it.
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
			return resp, nil
		}
	}
	checkErr := t.Validator.Check(req, resp, body)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || errors.Is(checkErr, ErrUndocumented) {
		return resp, nil
	}
	w.checked++
	if checkErr != nil {
		w.failures = append(w.failures, checkErr.Error())
	}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the base transport.
func (t *Transport) CloseIdleConnections() {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if c, ok := base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
