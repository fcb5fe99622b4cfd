// Package fakeapi is a fake WhatsApp Cloud API for tests and local demos. It
// checks every send the way the Cloud API documents it (method, path, bearer
// token of the number, content type, body shape), answers like Meta, records
// accepted sends, and can be told at run time, in Go or over HTTP under
// /_fake/, to fail, throttle or slow down.
package fakeapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// Options configures a Server.
type Options struct {
	// Numbers maps each business phone_number_id to its access token.
	Numbers map[string]string
	// Templates, when not empty, is the approved catalogue (see Template).
	Templates []Template
	// BusinessAccountID, when set, serves the catalogue at
	// GET /{version}/{BusinessAccountID}/message_templates to any number's token.
	BusinessAccountID string
	// Version, when set, is the only API version accepted; else any "vNN.N".
	Version string
	// AdminToken, when set, guards /_fake/ with "Authorization: Bearer <AdminToken>".
	AdminToken string
	// MaxRecorded bounds the sends kept with their bodies (default 100,000);
	// counts stay exact beyond it.
	MaxRecorded int
	// OnAccept, when set, runs after each accepted send, e.g. to produce
	// status webhooks from the Call's MessageID and Recipient.
	OnAccept func(Call)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Call is one send the fake answered.
type Call struct {
	PhoneNumberID string `json:"phone_number_id"`
	Recipient     string `json:"recipient"` // digits of the number, or the user id
	Type          string `json:"type"`
	Template      string `json:"template,omitempty"`
	Language      string `json:"language,omitempty"`
	// Read is the customer's message a read receipt marked (Type "read", or "typing" when it also
	// showed the typing indicator).
	Read      string          `json:"read,omitempty"`
	MessageID string          `json:"message_id,omitempty"` // the wamid answered; empty when failed
	Status    int             `json:"status"`
	Code      int             `json:"code,omitempty"` // Meta code of a failure
	Injected  bool            `json:"injected,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`
	At        time.Time       `json:"at"`
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	closing chan struct{}

	mu        sync.Mutex
	rules     []*RuleState
	nextRule  int
	accepted  []Call
	failed    []Call // rejected or injected failures, after the path and token checks
	perNumber map[string]int
	total     int
	dropped   int
	closed    bool
	media     map[string]*storedMedia

	srv *http.Server
	url string
}

const (
	maxBody            = 1 << 20
	defaultMaxRecorded = 100_000
)

var versionPattern = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)

// New returns a Server; serve it with Handler (httptest) or Start.
func New(opts Options) *Server {
	if opts.MaxRecorded <= 0 {
		opts.MaxRecorded = defaultMaxRecorded
	}
	numbers := make(map[string]string, len(opts.Numbers))
	for id, tok := range opts.Numbers {
		numbers[id] = tok
	}
	opts.Numbers = numbers
	opts.Templates = append([]Template(nil), opts.Templates...)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Server{
		opts:      opts,
		log:       log.With("component", "whatsapp.fakeapi"),
		now:       now,
		closing:   make(chan struct{}),
		perNumber: map[string]int{},
	}
}

// Handler serves the Cloud API send endpoint and the /_fake/ admin API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.registerAdmin(mux)
	s.registerMediaAdmin(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/message_templates") {
			s.serveTemplates(w, r)
			return
		}
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		switch {
		case len(parts) == 2 && parts[0] == "_media" && r.Method == http.MethodGet:
			s.serveDownload(w, r, parts[1])
			return
		case len(parts) == 2 && versionPattern.MatchString(parts[0]) && r.Method == http.MethodGet:
			s.serveMediaInfo(w, r, parts[1])
			return
		case len(parts) == 3 && versionPattern.MatchString(parts[0]) && parts[2] == "media" && r.Method == http.MethodPost:
			s.serveUpload(w, r, parts[1])
			return
		}
		s.serveAPI(w, r)
	})
	return mux
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until
// Close.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.closed {
		return errors.New("fakeapi: already started or closed")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakeapi: listen %s: %w", addr, err)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	s.url = "http://" + ln.Addr().String()
	go s.srv.Serve(ln)
	s.log.Info("fake WhatsApp Cloud API listening", "url", s.url)
	return nil
}

// URL is the base URL after Start ("http://127.0.0.1:port").
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Close aborts pending delays and stops a started server.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	call, body, e := s.check(r)
	if e != nil {
		if call != nil { // past the token check: worth recording
			s.recordFailure(call, e, false)
		}
		s.log.Debug("send rejected", "phone_number_id", callNumber(call), "status", e.status, "code", e.code, "details", e.details)
		writeError(w, e)
		return
	}
	delay, rule := s.applyRules(call)
	if delay > 0 {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		case <-s.closing:
			timer.Stop()
			writeError(w, &apiError{status: http.StatusServiceUnavailable, code: 131016, details: "fake shutting down"})
			return
		}
	}
	if rule != nil {
		e := rule.failure()
		s.recordFailure(call, e, true)
		writeError(w, e)
		return
	}
	call.Status = http.StatusOK
	call.Body = body.raw
	if body.typ == "read" || body.typ == "typing" {
		// A read receipt (with or without the typing indicator) answers success, not a message.
		call.Recipient = ""
		s.recordAccepted(*call)
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		return
	}
	call.MessageID = newMessageID()
	s.recordAccepted(*call)
	contact := map[string]string{"input": body.input}
	if body.byUserID {
		contact["user_id"] = body.recipient
	} else {
		contact["wa_id"] = body.recipient
	}
	msg := map[string]string{"id": call.MessageID}
	if call.Type == "template" {
		msg["message_status"] = "accepted"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{contact},
		"messages":          []any{msg},
	})
	if s.opts.OnAccept != nil {
		s.opts.OnAccept(*call)
	}
}

// checkedBody is the validated body with the raw bytes kept for Calls.
type checkedBody struct {
	*sendBody
	raw []byte
}

// check validates the request in Meta's order: path and method, number and
// token, then the body. call is nil until the token is proven.
func (s *Server) check(r *http.Request) (*Call, checkedBody, *apiError) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[2] != "messages" || parts[1] == "" {
		return nil, checkedBody{}, &apiError{status: 400, code: whatsapp.CodeInvalidParameter,
			message: "Unknown path components", details: "want /{version}/{phone_number_id}/messages"}
	}
	version, numberID := parts[0], parts[1]
	if !versionPattern.MatchString(version) || (s.opts.Version != "" && version != s.opts.Version) {
		return nil, checkedBody{}, badParam(whatsapp.CodeInvalidParameter, "unsupported API version")
	}
	if r.Method != http.MethodPost {
		return nil, checkedBody{}, &apiError{status: 400, code: whatsapp.CodeInvalidParameter,
			message: "Unsupported " + strings.ToLower(r.Method) + " request", details: "sendMessage takes POST"}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil, checkedBody{}, &apiError{status: 401, code: whatsapp.CodeAccessTokenExpired,
			message: "Invalid OAuth access token - Cannot parse access token"}
	}
	want, known := s.opts.Numbers[numberID]
	if !known {
		return nil, checkedBody{}, &apiError{status: 400, code: whatsapp.CodeInvalidParameter, subcode: 33,
			message: "Unsupported post request. Object with ID does not exist, cannot be loaded due to missing permissions, or does not support this operation"}
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		return nil, checkedBody{}, &apiError{status: 401, code: whatsapp.CodeAccessTokenExpired,
			message: "Invalid OAuth access token"}
	}
	call := &Call{PhoneNumberID: numberID, At: s.now()}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return call, checkedBody{}, badParam(whatsapp.CodeInvalidParameter, "Content-Type must be application/json")
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return call, checkedBody{}, badParam(whatsapp.CodeInvalidParameter, "could not read the body")
	}
	if len(raw) > maxBody {
		return call, checkedBody{}, badParam(whatsapp.CodeInvalidParameter, "the body exceeds %d bytes", maxBody)
	}
	body, e := validateSend(raw, s.opts.Templates)
	if e != nil {
		return call, checkedBody{}, e
	}
	call.Recipient, call.Type, call.Template, call.Language, call.Read = body.recipient, body.typ, body.template, body.language, body.read
	return call, checkedBody{sendBody: body, raw: raw}, nil
}

func callNumber(c *Call) string {
	if c == nil {
		return ""
	}
	return c.PhoneNumberID
}

func newMessageID() string {
	b := make([]byte, 18)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return "wamid." + base64.RawURLEncoding.EncodeToString(b)
}

func writeError(w http.ResponseWriter, e *apiError) {
	msg := e.message
	if msg == "" {
		msg = whatsapp.Title(e.code)
		if msg == "" {
			msg = http.StatusText(e.status)
		}
	}
	errObj := map[string]any{
		"message":    fmt.Sprintf("(#%d) %s", e.code, msg),
		"type":       "OAuthException",
		"code":       e.code,
		"error_data": map[string]any{"messaging_product": "whatsapp", "details": e.details},
		"fbtrace_id": "Fake" + newMessageID()[6:18],
	}
	if e.subcode != 0 {
		errObj["error_subcode"] = e.subcode
	}
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	writeJSON(w, e.status, map[string]any{"error": errObj})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
