package whatsapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// maxTemplatePages bounds how many pages a listing follows, so a misbehaving
// server cannot keep a sync running forever.
const maxTemplatePages = 200

var businessAccountIDPattern = regexp.MustCompile(`^[0-9]{1,32}$`)

// RemoteTemplate is a message template as the Graph API lists it
// (GET /{version}/{waba_id}/message_templates).
type RemoteTemplate struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Language   string              `json:"language"`
	Status     string              `json:"status"` // APPROVED, PENDING, REJECTED, PAUSED, DISABLED…
	Category   string              `json:"category"`
	Components []TemplateComponent `json:"components"`
}

// TemplateComponent is one part of a template: HEADER, BODY, FOOTER or BUTTONS.
type TemplateComponent struct {
	Type    string           `json:"type"`
	Format  string           `json:"format"` // of a HEADER: TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION
	Text    string           `json:"text"`
	Buttons []TemplateButton `json:"buttons"`
}

// TemplateButton is one button of a BUTTONS component.
type TemplateButton struct {
	Type string `json:"type"` // QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, OTP…
	Text string `json:"text"`
	URL  string `json:"url"`
}

// TemplateParams is what a send of a template must supply, counted the way
// the send endpoint checks them (error 132000 when a count is off).
type TemplateParams struct {
	Header     int
	Body       int
	Buttons    int
	ButtonKind string // "url" or "quick_reply" when Buttons > 0
	Text       string // the body text, for display
}

// placeholder matches positional ({{1}}) and named ({{first_name}}) parameters.
var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

func countPlaceholders(s string) int {
	seen := map[string]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		seen[m[1]] = true
	}
	return len(seen)
}

// Params counts the template's parameters: text placeholders of the header
// (a media header takes one media parameter), of the body, and the buttons
// that take a value — a URL button whose link has a placeholder takes a
// suffix; quick-reply buttons take a payload each only when no URL button does.
func (t RemoteTemplate) Params() TemplateParams {
	var p TemplateParams
	quickReplies := 0
	for _, c := range t.Components {
		switch strings.ToUpper(c.Type) {
		case "HEADER":
			switch strings.ToUpper(c.Format) {
			case "", "TEXT":
				p.Header = countPlaceholders(c.Text)
			case "IMAGE", "VIDEO", "DOCUMENT":
				p.Header = 1
			}
		case "BODY":
			p.Body = countPlaceholders(c.Text)
			p.Text = c.Text
		case "BUTTONS":
			for _, b := range c.Buttons {
				switch strings.ToUpper(b.Type) {
				case "URL":
					if countPlaceholders(b.URL) > 0 {
						p.Buttons++
					}
				case "QUICK_REPLY":
					quickReplies++
				}
			}
		}
	}
	switch {
	case p.Buttons > 0:
		p.ButtonKind = "url"
	case quickReplies > 0:
		p.Buttons, p.ButtonKind = quickReplies, "quick_reply"
	}
	return p
}

type templatesPage struct {
	Data   []RemoteTemplate `json:"data"`
	Paging struct {
		Next string `json:"next"`
	} `json:"paging"`
}

// ListTemplates returns every template of the WhatsApp Business Account,
// following the Graph API's paging. Failures are *Error like Send's.
func (c *Client) ListTemplates(ctx context.Context, businessAccountID, token string) ([]RemoteTemplate, error) {
	if !businessAccountIDPattern.MatchString(businessAccountID) {
		return nil, invalid("business account id: want digits")
	}
	if !validToken(token) {
		return nil, invalid("access token: empty or not a bearer token")
	}
	first := c.base.JoinPath(c.version, businessAccountID, "message_templates")
	first.RawQuery = url.Values{"fields": {"id,name,language,status,category,components"}, "limit": {"100"}}.Encode()
	next := first.String()
	var all []RemoteTemplate
	for page := 0; next != ""; page++ {
		if page == maxTemplatePages {
			return nil, fmt.Errorf("whatsapp: template listing exceeds %d pages", maxTemplatePages)
		}
		// Only follow "next" links to the configured host: the token must not leak elsewhere.
		u, err := url.Parse(next)
		if err != nil || u.Scheme != c.base.Scheme || u.Host != c.base.Host {
			return nil, fmt.Errorf("whatsapp: template listing: paging link %q leaves %s", next, c.base.Host)
		}
		p, err := c.templatesPage(ctx, u.String(), token)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Data...)
		next = p.Paging.Next
	}
	return all, nil
}

func (c *Client) templatesPage(ctx context.Context, endpoint, token string) (templatesPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return templatesPage{}, invalid("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		e := &Error{Class: Transient, Message: transportMessage(err), cause: err}
		e.redact(token)
		return templatesPage{}, e
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := responseError(resp.StatusCode, resp.Header, raw, c.now())
		e.redact(token)
		return templatesPage{}, e
	}
	var p templatesPage
	if err == nil {
		err = json.Unmarshal(raw, &p)
	}
	if err != nil {
		return templatesPage{}, fmt.Errorf("whatsapp: template listing: decode: %w", err)
	}
	return p, nil
}
