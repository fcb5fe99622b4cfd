package fakeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// Rule changes how the fake answers the sends it matches: it delays them,
// fails them, or both. Empty matchers match every send. A rule applies to the
// next Times matching sends, or to all of them until removed when Times is 0.
type Rule struct {
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	Recipient     string `json:"recipient,omitempty"` // a number with or without "+", or a user id
	Template      string `json:"template,omitempty"`  // template name

	Delay Duration `json:"delay,omitempty"` // before answering

	// The failure. Status 0 with Code 0 fails nothing (a pure delay). Either
	// alone implies the other: Code 130429 → 429, Status 503 → code 131016.
	Status     int      `json:"status,omitempty"`
	Code       int      `json:"code,omitempty"`
	Subcode    int      `json:"subcode,omitempty"`
	Message    string   `json:"message,omitempty"`
	Details    string   `json:"details,omitempty"`
	RetryAfter Duration `json:"retry_after,omitempty"` // Retry-After header, whole seconds rounded up

	Times int `json:"times,omitempty"`
}

// RuleState is a rule as the fake holds it.
type RuleState struct {
	ID      int  `json:"id"`
	Rule    Rule `json:"rule"`
	Applied int  `json:"applied"`
}

// Limits on a rule, so a typo cannot hang a test run.
const (
	maxRuleDelay      = 5 * time.Minute
	maxRuleRetryAfter = 24 * time.Hour
)

// FailNext answers the next n sends with 500 and code 131000 ("Something
// went wrong"); n 0 means until removed.
func FailNext(n int) Rule {
	return Rule{Status: http.StatusInternalServerError, Code: whatsapp.CodeSomethingWentWrong, Times: n}
}

// Throttle answers the next n sends with 429 and a Meta rate-limit code
// (130429 throughput, 131048 spam rate, 131056 pair rate), with a
// Retry-After header when retryAfter > 0.
func Throttle(code int, retryAfter time.Duration, n int) Rule {
	return Rule{Status: http.StatusTooManyRequests, Code: code, RetryAfter: Duration(retryAfter), Times: n}
}

// Slow delays every send by d until removed.
func Slow(d time.Duration) Rule { return Rule{Delay: Duration(d)} }

// RejectTemplate fails every send of the named template with code (132001
// template does not exist, 132000 parameter mismatch, …) until removed.
func RejectTemplate(name string, code int) Rule { return Rule{Template: name, Code: code} }

// RejectRecipient fails every send to one recipient with code (131047
// outside the 24-hour window, 131026 undeliverable, …) until removed.
func RejectRecipient(to string, code int) Rule { return Rule{Recipient: to, Code: code} }

func (r *Rule) validate() error {
	switch {
	case r.Status != 0 && (r.Status < 400 || r.Status > 599):
		return fmt.Errorf("status %d: want 400-599 or none", r.Status)
	case r.Code < 0 || r.Subcode < 0:
		return errors.New("code and subcode: want positive numbers")
	case r.Delay < 0 || time.Duration(r.Delay) > maxRuleDelay:
		return fmt.Errorf("delay: want 0-%s", maxRuleDelay)
	case r.RetryAfter < 0 || time.Duration(r.RetryAfter) > maxRuleRetryAfter:
		return fmt.Errorf("retry_after: want 0-%s", maxRuleRetryAfter)
	case r.Times < 0:
		return errors.New("times: want 0 (until removed) or more")
	case r.Delay == 0 && r.Status == 0 && r.Code == 0:
		return errors.New("rule does nothing: give a delay, a status or a code")
	case r.RetryAfter != 0 && r.Status == 0 && r.Code == 0:
		return errors.New("retry_after without a failure")
	}
	return nil
}

func (r *Rule) fails() bool { return r.Status != 0 || r.Code != 0 }

func (r *Rule) matches(c *Call) bool {
	if r.PhoneNumberID != "" && r.PhoneNumberID != c.PhoneNumberID {
		return false
	}
	if r.Recipient != "" && strings.TrimPrefix(r.Recipient, "+") != c.Recipient {
		return false
	}
	if r.Template != "" && r.Template != c.Template {
		return false
	}
	return true
}

// failure is the Meta-shaped error the rule answers with.
func (r *Rule) failure() *apiError {
	status, code := r.Status, r.Code
	if status == 0 {
		status = statusForCode(code)
	}
	if code == 0 {
		code = codeForStatus(status)
	}
	e := &apiError{status: status, code: code, subcode: r.Subcode, details: r.Details, message: r.Message}
	if e.details == "" {
		e.details = "injected by the fake"
	}
	if r.RetryAfter > 0 {
		secs := (time.Duration(r.RetryAfter) + time.Second - 1) / time.Second
		e.retryAfter = fmt.Sprint(int64(secs))
	}
	return e
}

// statusForCode is the HTTP status Meta's error-code reference gives.
func statusForCode(code int) int {
	switch code {
	case 4, 613, 80007, whatsapp.CodeThroughput, whatsapp.CodeSpamRateLimit, whatsapp.CodePairRateLimit:
		return http.StatusTooManyRequests
	case 0, whatsapp.CodeAccessTokenExpired:
		return http.StatusUnauthorized
	case 10, 131005:
		return http.StatusForbidden
	case whatsapp.CodeTemplateNotFound:
		return http.StatusNotFound
	case 1, 2, whatsapp.CodeSomethingWentWrong:
		return http.StatusInternalServerError
	case 131016:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func codeForStatus(status int) int {
	switch {
	case status == http.StatusTooManyRequests:
		return whatsapp.CodeThroughput
	case status == http.StatusUnauthorized:
		return whatsapp.CodeAccessTokenExpired
	case status == http.StatusServiceUnavailable:
		return 131016
	case status >= 500:
		return whatsapp.CodeSomethingWentWrong
	}
	return whatsapp.CodeInvalidParameter
}

// Duration is a time.Duration written in JSON as "250ms", "2s".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json treats null: no change
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`duration: want a string like "250ms" or "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
