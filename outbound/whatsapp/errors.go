package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class says what a caller should do with a failed send.
type Class int

const (
	// Transient: timeouts, connection errors, 5xx, Meta's "try again"
	// codes. Retry with backoff.
	Transient Class = iota + 1
	// RateLimited: a Meta throughput or rate limit. Retry after RetryAfter.
	RateLimited
	// Permanent: the message itself is wrong or cannot be delivered (invalid
	// parameter, unknown template, outside the 24-hour window, invalid
	// recipient). Retrying sends the same failure again.
	Permanent
	// Auth: the access token or the app's permissions are wrong. Permanent
	// for the message, since no retry fixes a token, but unlike Permanent it
	// concerns every message of the sending number: alert an operator.
	Auth
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case RateLimited:
		return "rate_limited"
	case Permanent:
		return "permanent"
	case Auth:
		return "auth"
	}
	return "unknown"
}

// Error is a failed send: a Meta error response, an unexpected status, or a
// transport failure (HTTPStatus 0). It never holds the access token.
type Error struct {
	HTTPStatus int
	Code       int // Meta's error.code; 0 when the response carried none
	Subcode    int // error.error_subcode
	Type       string
	Title      string // from error_user_title, else Meta's title for Code
	Message    string
	Details    string // error.error_data.details
	FBTraceID  string
	Class      Class
	RetryAfter time.Duration // when to retry; 0 leaves it to the caller's backoff
	cause      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("whatsapp: ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, "code %d ", e.Code)
		if e.Subcode != 0 {
			fmt.Fprintf(&b, "subcode %d ", e.Subcode)
		}
	}
	fmt.Fprintf(&b, "(%s)", e.Class)
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Message != "" && e.Message != e.Title {
		b.WriteString(": " + e.Message)
	}
	if e.FBTraceID != "" {
		b.WriteString(" fbtrace_id=" + e.FBTraceID)
	}
	return b.String()
}

// redact removes secret from every text field, in case a proxy or server
// echoes the Authorization header back.
func (e *Error) redact(secret string) {
	if secret == "" {
		return
	}
	for _, f := range []*string{&e.Title, &e.Message, &e.Details, &e.Type, &e.FBTraceID} {
		*f = strings.ReplaceAll(*f, secret, "[redacted]")
	}
}

// Unwrap exposes a transport cause such as context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.cause }

// IsPermanent reports whether retrying err cannot succeed: a Permanent or Auth
// Error, or a message rejected before sending (ErrInvalidMessage).
func IsPermanent(err error) bool {
	if errors.Is(err, ErrInvalidMessage) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && (e.Class == Permanent || e.Class == Auth)
}

// IsAuth reports whether err is an access-token or permission failure, worth
// an operator alert.
func IsAuth(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Class == Auth
}

// RetryAfter is the delay err asks for before a retry, or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

type codeInfo struct {
	title string
	class Class
	delay time.Duration // default wait for RateLimited codes
}

// metaCodes lists the Cloud API codes whose class differs from what the HTTP
// status alone would say, or that a caller reports by name. Titles follow
// Meta's error-code reference. Codes not listed fall back on the status.
var metaCodes = map[int]codeInfo{
	// Authorization. 200-299 (API Permission) are handled as a range.
	0:      {"AuthException", Auth, 0},
	3:      {"API Method", Auth, 0},
	10:     {"Permission denied", Auth, 0},
	190:    {"Access token has expired", Auth, 0},
	131005: {"Access denied", Auth, 0},

	// Throttling. The delays are the limits' own windows: throughput is per
	// second; the pair rate allows about one message per 6 seconds to one
	// user; app (4, 613) and WABA (80007) call counts are hourly budgets;
	// the spam limit follows quality, so waiting seconds would not help.
	4:      {"API Too Many Calls", RateLimited, time.Minute},
	613:    {"Calls to this API have exceeded the rate limit", RateLimited, time.Minute},
	80007:  {"Rate limit issues", RateLimited, 10 * time.Minute},
	130429: {"Rate limit hit", RateLimited, time.Second},
	131048: {"Spam rate limit hit", RateLimited, 5 * time.Minute},
	131056: {"(Business Account, Consumer Account) pair rate limit hit", RateLimited, 6 * time.Second},

	// Meta's "temporary, try again" codes, some sent with status 400.
	1:      {"API Unknown", Transient, 0},
	2:      {"API Service", Transient, 0},
	131000: {"Something went wrong", Transient, 0},
	131016: {"Service unavailable", Transient, 0},

	// Permanent for this message.
	33:     {"Parameter value is not valid", Permanent, 0},
	100:    {"Invalid parameter", Permanent, 0},
	368:    {"Temporarily blocked for policies violations", Permanent, 0},
	130472: {"User's number is part of an experiment", Permanent, 0},
	130497: {"Business account is restricted from messaging users in this country", Permanent, 0},
	131008: {"Required parameter is missing", Permanent, 0},
	131009: {"Parameter value is not valid", Permanent, 0},
	131021: {"Recipient cannot be sender", Permanent, 0},
	131026: {"Message undeliverable", Permanent, 0},
	131031: {"Account has been locked", Permanent, 0},
	131037: {"Display name approval needed", Permanent, 0},
	131042: {"Business eligibility payment issue", Permanent, 0},
	131047: {"Re-engagement message", Permanent, 0},
	131051: {"Unsupported message type", Permanent, 0},
	131062: {"Business-scoped user ID recipients are not supported", Permanent, 0},
	132000: {"Template param count mismatch", Permanent, 0},
	132001: {"Template does not exist", Permanent, 0},
	132012: {"Template parameter format mismatch", Permanent, 0},
}

// Meta error codes a test, a fake or a caller may name.
const (
	CodeInvalidParameter    = 100
	CodeAccessTokenExpired  = 190
	CodeThroughput          = 130429
	CodeSpamRateLimit       = 131048
	CodePairRateLimit       = 131056
	CodeSomethingWentWrong  = 131000
	CodeMissingParameter    = 131008
	CodeInvalidParameterVal = 131009
	CodeUndeliverable       = 131026
	CodeReengagement        = 131047
	CodeUnsupportedType     = 131051
	CodeTemplateParamCount  = 132000
	CodeTemplateNotFound    = 132001
	CodeTemplateParamFormat = 132012
	defaultRateLimitDelay   = 5 * time.Second
	maxRetryAfter           = 24 * time.Hour
	maxErrorFieldLen        = 2048
)

// Title is Meta's title for a known code, or "".
func Title(code int) string {
	if info, ok := metaCodes[code]; ok {
		return info.title
	}
	if code >= 200 && code <= 299 {
		return "API Permission"
	}
	return ""
}

// ClassOf is the class of Meta code sent with HTTP status; it is what Send
// reports for an error response without is_transient.
func ClassOf(status, code int) Class {
	if info, ok := metaCodes[code]; ok {
		return info.class
	}
	if code >= 200 && code <= 299 {
		return Auth
	}
	return classOfStatus(status)
}

func classOfStatus(status int) Class {
	switch {
	case status == http.StatusTooManyRequests:
		return RateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Auth
	case status == http.StatusRequestTimeout || status >= 500:
		return Transient
	case status >= 400:
		return Permanent
	}
	// 1xx/3xx should not reach us; treat as a fault on the way, not the message.
	return Transient
}

// graphError is the Graph API error body; code 0 is AuthException, so the
// pointer tells a missing code apart.
type graphError struct {
	Error *struct {
		Message     string `json:"message"`
		Type        string `json:"type"`
		Code        *int   `json:"code"`
		Subcode     int    `json:"error_subcode"`
		UserTitle   string `json:"error_user_title"`
		IsTransient bool   `json:"is_transient"`
		FBTraceID   string `json:"fbtrace_id"`
		ErrorData   struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

// responseError builds the Error for a non-2xx response. It accepts any body:
// a Meta error, a proxy's HTML page, nothing.
func responseError(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{HTTPStatus: status, FBTraceID: header.Get("X-Fb-Trace-Id")}
	var g graphError
	hasCode := false
	if json.Unmarshal(body, &g) == nil && g.Error != nil {
		ge := g.Error
		e.Message = clip(ge.Message)
		e.Type = clip(ge.Type)
		e.Subcode = ge.Subcode
		e.Details = clip(ge.ErrorData.Details)
		e.Title = clip(ge.UserTitle)
		if ge.FBTraceID != "" {
			e.FBTraceID = clip(ge.FBTraceID)
		}
		if ge.Code != nil {
			e.Code = *ge.Code
			hasCode = true
		}
		if ge.IsTransient && !hasKnownClass(e.Code, hasCode) {
			e.Class = Transient
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	if e.Title == "" && hasCode {
		e.Title = Title(e.Code)
	}
	if e.Class == 0 {
		if hasCode {
			e.Class = ClassOf(status, e.Code)
		} else {
			e.Class = classOfStatus(status)
		}
	}
	e.RetryAfter = retryDelay(e, header.Get("Retry-After"), now)
	return e
}

func hasKnownClass(code int, hasCode bool) bool {
	if !hasCode {
		return false
	}
	_, ok := metaCodes[code]
	return ok || (code >= 200 && code <= 299)
}

func retryDelay(e *Error, retryAfter string, now time.Time) time.Duration {
	if e.Class != Transient && e.Class != RateLimited {
		return 0
	}
	if d, ok := parseRetryAfter(retryAfter, now); ok {
		return d
	}
	if e.Class == RateLimited {
		if info, ok := metaCodes[e.Code]; ok && info.delay > 0 {
			return info.delay
		}
		return defaultRateLimitDelay
	}
	return 0
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3),
// capped so a hostile header cannot park a task for years.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}

func clip(s string) string {
	if len(s) > maxErrorFieldLen {
		s = s[:maxErrorFieldLen]
	}
	return strings.ToValidUTF8(s, "")
}
