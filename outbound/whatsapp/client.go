// Package whatsapp sends messages through the WhatsApp Cloud API
// (POST /{version}/{phone-number-id}/messages) and classifies its failures so
// a worker knows whether to retry, wait or give up.
package whatsapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpproxy"
)

// Defaults for Config fields left empty.
const (
	DefaultBaseURL    = "https://graph.facebook.com"
	DefaultAPIVersion = "v23.0"
	DefaultTimeout    = 30 * time.Second
	maxResponseBody   = 1 << 20
)

// Config configures a Client. Tests point BaseURL at a fake.
type Config struct {
	BaseURL    string // default DefaultBaseURL
	APIVersion string // "v23.0"; default DefaultAPIVersion
	// HTTPClient, when set, carries every call. Without it, sends go through a fasthttp client
	// (a third of net/http's CPU per send) bounded by Timeout, and the rest through net/http;
	// also without it, when the environment names a proxy for the API, every call uses net/http,
	// which honours HTTP(S)_PROXY.
	HTTPClient *http.Client
	Timeout    time.Duration // default DefaultTimeout; a send's deadline is also the context's
	Logger     *slog.Logger  // default: discard
}

// Client sends messages for any number of business phone numbers; the access
// token is passed per call since each number may have its own. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	version string
	// versioned is base joined with version and a slash: a send's URL is versioned+id+"/messages",
	// what base.JoinPath(version, id, "messages") gives for an id of digits, without its work.
	versioned string
	http      *http.Client
	fast      *fasthttp.Client // nil: sends use http
	timeout   time.Duration
	log       *slog.Logger
	now       func() time.Time
}

// SendResult is the accepted send (components/schemas/MessageResponsePayload).
type SendResult struct {
	MessageID     string // wamid, the id status webhooks refer to
	MessageStatus string // "accepted", "held_for_quality_assessment", "paused"; often absent
	ContactInput  string // the recipient as sent
	ContactWaID   string // WhatsApp id when sent to a phone number; may differ from the input
	ContactUserID string // business-scoped user id when sent to one
}

var (
	apiVersionPattern = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)
)

// New returns a Client or an error naming the bad field.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("whatsapp: base URL %q: want an absolute http(s) URL", cfg.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("whatsapp: base URL %q: no query, fragment or credentials allowed", cfg.BaseURL)
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if !apiVersionPattern.MatchString(cfg.APIVersion) {
		return nil, fmt.Errorf("whatsapp: API version %q: want a version like %q", cfg.APIVersion, DefaultAPIVersion)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	var fast *fasthttp.Client
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64 // workers send concurrently to one host
		hc = &http.Client{Timeout: cfg.Timeout, Transport: t}
		// The environment read now (net/http reads it once per process).
		if proxy, err := httpproxy.FromEnvironment().ProxyFunc()(base); err == nil && proxy == nil {
			fast = &fasthttp.Client{
				Name:               "chatgate",
				MaxConnsPerHost:    512,
				MaxConnWaitTimeout: cfg.Timeout, // wait for a connection rather than fail
				// Below the idle timeouts servers commonly keep: a send is not retried on a
				// connection the server has just closed (it may have taken the request).
				MaxIdleConnDuration:      20 * time.Second,
				MaxResponseBodySize:      maxResponseBody,
				ReadBufferSize:           16 << 10, // Meta's response headers run to several KB
				DisablePathNormalizing:   true,
				NoDefaultUserAgentHeader: true,
			}
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		base:      base,
		version:   cfg.APIVersion,
		versioned: base.JoinPath(cfg.APIVersion).String() + "/",
		http:      hc,
		fast:      fast,
		timeout:   cfg.Timeout,
		log:       log.With("component", "whatsapp.client"),
		now:       time.Now,
	}, nil
}

// Send posts msg from the business number phoneNumberID with its access
// token. A failure is an *Error (see Class, IsPermanent, RetryAfter) or, for a
// message rejected before sending, an error wrapping ErrInvalidMessage.
func (c *Client) Send(ctx context.Context, phoneNumberID, token string, msg Message) (SendResult, error) {
	if !digitRun(phoneNumberID, 1, 32) {
		return SendResult{}, invalid("phone number id: want digits")
	}
	if !validToken(token) {
		return SendResult{}, invalid("access token: empty or not a bearer token")
	}
	body, err := Encode(msg)
	if err != nil {
		return SendResult{}, err
	}
	start := c.now()
	status, header, raw, readErr, err := c.post(ctx, c.versioned+phoneNumberID+"/messages", token, body)
	if err != nil {
		e := &Error{Class: Transient, Message: transportMessage(err), cause: err}
		e.redact(token)
		c.log.WarnContext(ctx, "send failed", "phone_number_id", phoneNumberID, "to", maskedRecipient(msg),
			"class", e.Class.String(), "error", e.Message, "elapsed", c.now().Sub(start))
		return SendResult{}, e
	}

	if status < 200 || status > 299 {
		e := responseError(status, header(), raw, c.now())
		e.redact(token)
		c.log.WarnContext(ctx, "send rejected", "phone_number_id", phoneNumberID, "to", maskedRecipient(msg),
			"status", e.HTTPStatus, "code", e.Code, "subcode", e.Subcode, "class", e.Class.String(),
			"retry_after", e.RetryAfter, "fbtrace_id", e.FBTraceID)
		return SendResult{}, e
	}
	res, perr := parseSendResponse(raw)
	if readErr != nil || perr != nil {
		// Meta accepted the request; resending could deliver it twice, so
		// the caller should not retry. The message id is lost.
		cause := errors.Join(readErr, perr)
		e := &Error{HTTPStatus: status, Class: Permanent, FBTraceID: header().Get("X-Fb-Trace-Id"),
			Message: "accepted, but the response is unreadable: " + cause.Error(), cause: cause}
		c.log.ErrorContext(ctx, "send accepted without a message id", "phone_number_id", phoneNumberID,
			"to", maskedRecipient(msg), "status", status, "fbtrace_id", e.FBTraceID)
		return SendResult{}, e
	}
	if c.log.Enabled(ctx, slog.LevelDebug) { // the line's arguments cost more than the level check
		c.log.DebugContext(ctx, "sent", "phone_number_id", phoneNumberID, "to", maskedRecipient(msg),
			"message_id", res.MessageID, "elapsed", c.now().Sub(start))
	}
	return res, nil
}

// post sends a JSON body with the token and returns the answer: its status, its headers (built
// only when asked: an error's), its body (at most maxResponseBody) and a body read error, or the
// transport's error.
func (c *Client) post(ctx context.Context, url, token string, body []byte) (status int, header func() http.Header, raw []byte, readErr, err error) {
	if c.fast == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, nil, nil, invalid("request: %v", err)
		}
		// Canonical keys set directly: what Header.Set would store, without its checks.
		req.Header = http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"},
			"Accept": {"application/json"}}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, nil, nil, nil, err
		}
		defer resp.Body.Close()
		raw, readErr = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		return resp.StatusCode, func() http.Header { return resp.Header }, raw, readErr, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, nil, nil, err
	}
	deadline := time.Now().Add(c.timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.SetContentType("application/json")
	req.Header.Set("Accept", "application/json")
	req.SetBodyRaw(body)
	// fasthttp knows deadlines, not contexts: the context's deadline is the request's, and a
	// context canceled meanwhile is reported as such.
	if err := c.fast.DoDeadline(req, resp, deadline); errors.Is(err, fasthttp.ErrBodyTooLarge) && resp.StatusCode() != 0 {
		readErr = err // answered, unreadably: as net/http's path, whose read stops at the limit
	} else if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return 0, nil, nil, nil, fmt.Errorf("%w: %v", cerr, err)
		}
		if ctxDeadline && errors.Is(err, fasthttp.ErrTimeout) { // the context's timer may not have fired yet
			return 0, nil, nil, nil, fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
		}
		return 0, nil, nil, nil, err
	}
	raw = append([]byte(nil), resp.Body()...)
	h := http.Header{}
	for _, k := range []string{"X-Fb-Trace-Id", "Retry-After"} {
		if v := resp.Header.Peek(k); len(v) > 0 {
			h.Set(k, string(v))
		}
	}
	return resp.StatusCode(), func() http.Header { return h }, raw, readErr, nil
}

type sendResponse struct {
	MessagingProduct string `json:"messaging_product"`
	Contacts         []struct {
		Input  string `json:"input"`
		WaID   string `json:"wa_id"`
		UserID string `json:"user_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

func parseSendResponse(raw []byte) (SendResult, error) {
	var r sendResponse
	// goccy/go-json: encoding/json was 4 % of the gateway's CPU per send (FuzzParseSendResponse
	// holds the two to the same answers).
	if err := gojson.Unmarshal(raw, &r); err != nil {
		return SendResult{}, fmt.Errorf("decode: %w", err)
	}
	if len(r.Messages) == 0 || strings.TrimSpace(r.Messages[0].ID) == "" {
		return SendResult{}, errors.New("no message id")
	}
	res := SendResult{
		MessageID:     strings.TrimSpace(r.Messages[0].ID),
		MessageStatus: r.Messages[0].MessageStatus,
	}
	if len(r.Contacts) > 0 {
		// Meta's own example pads wa_id with a space.
		res.ContactInput = strings.TrimSpace(r.Contacts[0].Input)
		res.ContactWaID = strings.TrimSpace(r.Contacts[0].WaID)
		res.ContactUserID = strings.TrimSpace(r.Contacts[0].UserID)
	}
	return res, nil
}

// validToken accepts what can follow "Bearer " in a header: visible ASCII.
func validToken(t string) bool {
	if t == "" || len(t) > 4096 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

// transportMessage describes a transport failure. url.Error holds only the
// method and URL (no headers), so the token cannot appear in it.
func transportMessage(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, fasthttp.ErrTimeout):
		return "timeout: " + err.Error()
	case errors.Is(err, context.Canceled):
		return "canceled: " + err.Error()
	}
	return err.Error()
}

func maskedRecipient(msg Message) string {
	var to string
	switch m := msg.(type) {
	case TextMessage:
		to = m.To
	case TemplateMessage:
		to = m.To
	case MediaMessage:
		to = m.To
	case InteractiveMessage:
		to = m.To
	case *TextMessage:
		to = m.To
	case *TemplateMessage:
		to = m.To
	case *MediaMessage:
		to = m.To
	}
	return Mask(to)
}

// Mask hides all but the first and last two characters of a phone number or
// user id for logs: "+5511999990001" → "+55*********01".
func Mask(s string) string {
	r := []rune(s)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	keepHead := 2
	if r[0] == '+' {
		keepHead = 3
	}
	for i := keepHead; i < len(r)-2; i++ {
		r[i] = '*'
	}
	return string(r)
}
