// Package openapitest checks that what chatgate answers matches its OpenAPI document: tests route
// their HTTP clients through Transport, and every response of a documented operation is validated
// against the document's schemas (status, content type, body, and each event of an event stream).
// Requests are not validated: tests send malformed ones on purpose, and the answer to those must
// match the document too.
//
// It is imported by tests only, so the validator's modules never reach the binary.
package openapitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	"gopkg.in/yaml.v3"

	"github.com/chatgate/chatgate/internal/openapi"
)

// Validator checks exchanges against chatgate's document. It is safe for concurrent use.
type Validator struct {
	mu      sync.Mutex // the library's validator keeps per-call state
	v       validator.Validator
	schemas schema_validation.SchemaValidator
	streams []stream // operations answering with Server-Sent Events
}

// stream is an event-stream operation and the schema of its events' data (x-item-schema).
type stream struct {
	path  *regexp.Regexp
	event *base.Schema
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
	streams, err := eventStreams(spec, doc)
	if err != nil {
		return nil, err
	}
	return &Validator{v: v, schemas: schema_validation.NewSchemaValidator(), streams: streams}, nil
}

// eventStreams finds the operations whose answer is text/event-stream and the schema that their
// x-item-schema names (OpenAPI 3.1 has no itemSchema: that comes with 3.2).
func eventStreams(spec []byte, doc libopenapi.Document) ([]stream, error) {
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapitest: build the model: %w", err)
	}
	type operation struct {
		Responses map[string]struct {
			Content map[string]struct {
				ItemSchema struct {
					Ref string `yaml:"$ref"`
				} `yaml:"x-item-schema"`
			} `yaml:"content"`
		} `yaml:"responses"`
	}
	var tree struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"` // path-level parameters are a list
	}
	if err := yaml.Unmarshal(spec, &tree); err != nil {
		return nil, err
	}
	var out []stream
	for path, item := range tree.Paths {
		for key, node := range item {
			var op operation
			if key == "parameters" || node.Decode(&op) != nil {
				continue
			}
			for _, resp := range op.Responses {
				ref := resp.Content["text/event-stream"].ItemSchema.Ref
				if ref == "" {
					continue
				}
				proxy := model.Model.Components.Schemas.GetOrZero(strings.TrimPrefix(ref, "#/components/schemas/"))
				if proxy == nil {
					return nil, fmt.Errorf("openapitest: %s: x-item-schema %q does not resolve", path, ref)
				}
				pattern := "^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(path), "[^/]+") + "$"
				out = append(out, stream{path: regexp.MustCompile(pattern), event: proxy.Schema()})
			}
		}
	}
	return out, nil
}

// eventSchema is the schema of the events' data of the stream at path, if it is one.
func (v *Validator) eventSchema(path string) *base.Schema {
	for _, s := range v.streams {
		if s.path.MatchString(path) {
			return s.event
		}
	}
	return nil
}

// CheckEvent validates one Server-Sent Event of the stream at path: its data against the
// stream's event schema, and its event name against the data's type.
func (v *Validator) CheckEvent(path, name, data string) error {
	schema := v.eventSchema(path)
	if schema == nil {
		return nil
	}
	v.mu.Lock()
	ok, errs := v.schemas.ValidateSchemaString(schema, data)
	v.mu.Unlock()
	if !ok {
		return fmt.Errorf("event %q on %s: %s: %s", name, path, truncate([]byte(data)), describe(errs))
	}
	var typed struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(data), &typed); err != nil || (name != "" && typed.Type != name) {
		return fmt.Errorf("event %q on %s has data of type %q: %s", name, path, typed.Type, truncate([]byte(data)))
	}
	return nil
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

// RoundTrip sends req and, for a watched host, validates the response. An event stream's status and
// content type are checked here, and its events one by one as the caller reads them (it may never
// end).
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
	if body == nil && resp.StatusCode == http.StatusOK && checkErr == nil {
		resp.Body = &eventReader{ReadCloser: resp.Body, w: w, v: t.Validator, path: req.URL.Path}
	}
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

// eventReader validates the events of a stream as its reader reads them.
type eventReader struct {
	io.ReadCloser
	w       *Watch
	v       *Validator
	path    string
	pending []byte
}

func (r *eventReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.pending = append(r.pending, p[:n]...)
	for {
		i := bytes.Index(r.pending, []byte("\n\n"))
		if i < 0 {
			break
		}
		r.event(string(r.pending[:i]))
		r.pending = r.pending[i+2:]
	}
	return n, err
}

// event checks one event block (comments alone are keep-alives).
func (r *eventReader) event(block string) {
	var name string
	var data []string
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if len(data) == 0 {
		return
	}
	err := r.v.CheckEvent(r.path, name, strings.Join(data, "\n"))
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.w.stopped {
		return
	}
	r.w.checked++
	if err != nil {
		r.w.failures = append(r.w.failures, err.Error())
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
