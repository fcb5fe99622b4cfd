package fakeapi

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// serveTemplates answers GET /{version}/{waba_id}/message_templates like the
// Graph API: the catalogue in Meta's component shape, paged by "limit" with a
// "paging.next" link carrying an "after" cursor (the offset here).
func (s *Server) serveTemplates(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || !versionPattern.MatchString(parts[0]) || (s.opts.Version != "" && parts[0] != s.opts.Version) {
		writeError(w, badParam(whatsapp.CodeInvalidParameter, "want /{version}/{waba_id}/message_templates"))
		return
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.knownToken(token) {
		writeError(w, &apiError{status: 401, code: whatsapp.CodeAccessTokenExpired, message: "Invalid OAuth access token"})
		return
	}
	if s.opts.BusinessAccountID == "" || parts[1] != s.opts.BusinessAccountID {
		writeError(w, &apiError{status: 400, code: whatsapp.CodeInvalidParameter, subcode: 33,
			message: "Unsupported get request. Object with ID does not exist"})
		return
	}
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > 100 {
		limit = 25
	}
	offset, err := strconv.Atoi(q.Get("after"))
	if err != nil || offset < 0 || offset > len(s.opts.Templates) {
		offset = 0
	}
	end := min(offset+limit, len(s.opts.Templates))
	data := make([]any, 0, end-offset)
	for i, t := range s.opts.Templates[offset:end] {
		data = append(data, metaTemplate(offset+i, t))
	}
	paging := map[string]any{"cursors": map[string]string{"before": strconv.Itoa(offset), "after": strconv.Itoa(end)}}
	if end < len(s.opts.Templates) {
		next := *r.URL
		next.Scheme, next.Host = "http", r.Host
		nq := next.Query()
		nq.Set("after", strconv.Itoa(end))
		nq.Set("limit", strconv.Itoa(limit))
		next.RawQuery = nq.Encode()
		paging["next"] = next.String()
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "paging": paging})
}

func (s *Server) knownToken(token string) bool {
	if token == "" {
		return false
	}
	for _, want := range s.opts.Numbers {
		if subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1 {
			return true
		}
	}
	return false
}

func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, " {{%d}}", i)
	}
	return b.String()
}

// metaTemplate renders t with the components a template of its parameter
// counts has at Meta.
func metaTemplate(i int, t Template) map[string]any {
	status := t.Status
	if status == "" {
		status = "APPROVED"
	}
	category := strings.ToUpper(t.Category)
	if category == "" {
		category = "UTILITY"
	}
	var comps []any
	if t.HeaderParams > 0 {
		comps = append(comps, map[string]any{"type": "HEADER", "format": "TEXT", "text": "Update" + placeholders(t.HeaderParams)})
	}
	body := t.Text
	if body == "" {
		body = "Message" + placeholders(t.BodyParams)
	}
	comps = append(comps, map[string]any{"type": "BODY", "text": body})
	if t.ButtonParams > 0 {
		var buttons []any
		for b := 1; b <= t.ButtonParams; b++ {
			if t.ButtonKind == "quick_reply" {
				buttons = append(buttons, map[string]any{"type": "QUICK_REPLY", "text": fmt.Sprintf("Option %d", b)})
			} else {
				buttons = append(buttons, map[string]any{"type": "URL", "text": fmt.Sprintf("Open %d", b),
					"url": "https://example.com/track/{{1}}"})
			}
		}
		comps = append(comps, map[string]any{"type": "BUTTONS", "buttons": buttons})
	}
	return map[string]any{
		"id": strconv.Itoa(1000000 + i), "name": t.Name, "language": t.Language,
		"status": status, "category": category, "components": comps,
	}
}
