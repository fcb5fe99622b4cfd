package fakeapi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// apiError is a Meta-shaped error answer.
type apiError struct {
	status     int
	code       int
	subcode    int
	message    string
	details    string
	retryAfter string
}

func badParam(code int, format string, args ...any) *apiError {
	return &apiError{status: statusForCode(code), code: code, details: fmt.Sprintf(format, args...)}
}

// Template is an approved template the fake knows; with a catalogue set, any
// other name or language is 132001 and a parameter count off is 132000.
type Template struct {
	Name         string `json:"name"`
	Language     string `json:"language"`
	HeaderParams int    `json:"header_params"`
	BodyParams   int    `json:"body_params"`
	ButtonParams int    `json:"button_params"`
	// Listed by GET /{version}/{waba_id}/message_templates only.
	Category   string `json:"category,omitempty"`
	Text       string `json:"text,omitempty"`        // the body text; generated when empty
	ButtonKind string `json:"button_kind,omitempty"` // url (default) or quick_reply
	Status     string `json:"status,omitempty"`      // default APPROVED
}

// sendBody is what validation learned about an accepted body.
type sendBody struct {
	input     string // the recipient as sent
	recipient string // digits of a number, or a user id
	byUserID  bool
	typ       string
	template  string
	language  string
	read      string // the message a read receipt marks
}

// Message objects a send may carry; the one named by "type" must be present
// and no other.
var messageObjects = map[string]bool{
	"text": true, "image": true, "audio": true, "document": true, "video": true, "sticker": true,
	"location": true, "contacts": true, "interactive": true, "template": true, "reaction": true,
}

var envelopeKeys = map[string]bool{
	"messaging_product": true, "recipient_type": true, "to": true, "recipient": true,
	"type": true, "context": true, "biz_opaque_callback_data": true,
}

var (
	phoneChars   = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "")
	phonePattern = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)
	bsuidPattern = regexp.MustCompile(`^[A-Z]{2}(\.ENT)?\.[A-Za-z0-9]+$`)
)

// validateSend checks a sendMessage body the way the Cloud API documents it
// (components/schemas/Message and its examples).
func validateSend(raw []byte, templates []Template) (*sendBody, *apiError) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, badParam(whatsapp.CodeInvalidParameter, "the request body is not a JSON object")
	}
	if _, ok := top["status"]; ok {
		return validateRead(top)
	}
	for k := range top {
		if !envelopeKeys[k] && !messageObjects[k] {
			return nil, badParam(whatsapp.CodeInvalidParameter, "param %s is not a valid parameter", k)
		}
	}
	var product string
	if e := requiredString(top, "messaging_product", &product); e != nil {
		return nil, e
	}
	if product != "whatsapp" {
		return nil, badParam(whatsapp.CodeInvalidParameterVal, "messaging_product must be whatsapp")
	}
	if rt, ok := top["recipient_type"]; ok {
		var s string
		if json.Unmarshal(rt, &s) != nil || s != "individual" {
			return nil, badParam(whatsapp.CodeInvalidParameterVal, "recipient_type must be individual")
		}
	}
	body := &sendBody{}
	if e := body.readRecipient(top); e != nil {
		return nil, e
	}
	if t, ok := top["type"]; ok {
		if json.Unmarshal(t, &body.typ) != nil || body.typ == "" {
			return nil, badParam(whatsapp.CodeInvalidParameterVal, "type must be a string")
		}
	} else {
		// Two of Meta's examples leave type out; it defaults to text, and
		// to the one message object present when that is not text.
		body.typ = "text"
		for k := range top {
			if messageObjects[k] {
				body.typ = k
			}
		}
	}
	if !messageObjects[body.typ] {
		return nil, badParam(whatsapp.CodeUnsupportedType, "message type %q is not supported", body.typ)
	}
	for k := range top {
		if messageObjects[k] && k != body.typ {
			return nil, badParam(whatsapp.CodeInvalidParameter, "unexpected %s object for a %s message", k, body.typ)
		}
	}
	obj, ok := top[body.typ]
	if !ok {
		return nil, badParam(whatsapp.CodeMissingParameter, "the parameter %s is required", body.typ)
	}
	if ctx, ok := top["context"]; ok {
		var c map[string]json.RawMessage
		var id string
		if json.Unmarshal(ctx, &c) != nil || c == nil {
			return nil, badParam(whatsapp.CodeInvalidParameterVal, "context must be an object")
		}
		if e := requiredString(c, "message_id", &id); e != nil {
			return nil, e
		}
	}
	var e *apiError
	switch body.typ {
	case "text":
		e = validateText(obj)
	case "image", "audio", "document", "video", "sticker":
		e = validateMedia(body.typ, obj)
	case "template":
		e = body.validateTemplate(obj, templates)
	case "contacts":
		var list []json.RawMessage
		if json.Unmarshal(obj, &list) != nil || len(list) == 0 {
			e = badParam(whatsapp.CodeInvalidParameterVal, "contacts must be a non-empty array")
		}
	case "interactive":
		e = validateInteractive(obj)
	default: // location, reaction: shape not modelled beyond an object
		var m map[string]json.RawMessage
		if json.Unmarshal(obj, &m) != nil || len(m) == 0 {
			e = badParam(whatsapp.CodeInvalidParameterVal, "%s must be a non-empty object", body.typ)
		}
	}
	if e != nil {
		return nil, e
	}
	return body, nil
}

// readRecipient takes "to" (a phone number) or "recipient" (a user id); Meta
// gives "to" precedence when both are present.
func (b *sendBody) readRecipient(top map[string]json.RawMessage) *apiError {
	if raw, ok := top["to"]; ok {
		if json.Unmarshal(raw, &b.input) != nil {
			return badParam(whatsapp.CodeInvalidParameterVal, "to must be a string")
		}
		digits := strings.TrimPrefix(phoneChars.Replace(b.input), "+")
		if !phonePattern.MatchString(digits) {
			return badParam(whatsapp.CodeInvalidParameterVal, "to is not a valid phone number")
		}
		b.recipient = digits
		return nil
	}
	if raw, ok := top["recipient"]; ok {
		if json.Unmarshal(raw, &b.input) != nil || !bsuidPattern.MatchString(b.input) {
			return badParam(whatsapp.CodeInvalidParameterVal, "recipient is not a business-scoped user id")
		}
		b.recipient, b.byUserID = b.input, true
		return nil
	}
	return badParam(whatsapp.CodeMissingParameter, "the parameter to is required")
}

func validateText(raw json.RawMessage) *apiError {
	obj, e := object("text", raw, "body", "preview_url")
	if e != nil {
		return e
	}
	var body string
	if e := requiredString(obj, "body", &body); e != nil {
		return e
	}
	if n := utf8.RuneCountInString(body); n > whatsapp.MaxTextBody {
		return badParam(whatsapp.CodeInvalidParameterVal, "text.body has %d characters, at most %d", n, whatsapp.MaxTextBody)
	}
	if p, ok := obj["preview_url"]; ok {
		var b bool
		if json.Unmarshal(p, &b) != nil {
			return badParam(whatsapp.CodeInvalidParameterVal, "text.preview_url must be a boolean")
		}
	}
	return nil
}

func validateMedia(kind string, raw json.RawMessage) *apiError {
	obj, e := object(kind, raw, "id", "link", "caption", "filename")
	if e != nil {
		return e
	}
	_, hasID := obj["id"]
	_, hasLink := obj["link"]
	switch {
	case !hasID && !hasLink:
		return badParam(whatsapp.CodeMissingParameter, "%s requires id or link", kind)
	case hasID && hasLink:
		return badParam(whatsapp.CodeInvalidParameter, "%s takes id or link, not both", kind)
	}
	var s string
	if hasID {
		if e := requiredString(obj, "id", &s); e != nil {
			return e
		}
	} else {
		if e := requiredString(obj, "link", &s); e != nil {
			return e
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badParam(whatsapp.CodeInvalidParameterVal, "%s.link must be an http(s) URL", kind)
		}
	}
	if c, ok := obj["caption"]; ok {
		if kind == "audio" || kind == "sticker" {
			return badParam(whatsapp.CodeInvalidParameter, "%s takes no caption", kind)
		}
		var caption string
		if json.Unmarshal(c, &caption) != nil || utf8.RuneCountInString(caption) > whatsapp.MaxCaption {
			return badParam(whatsapp.CodeInvalidParameterVal, "%s.caption must be a string of at most %d characters", kind, whatsapp.MaxCaption)
		}
	}
	if _, ok := obj["filename"]; ok {
		if kind != "document" {
			return badParam(whatsapp.CodeInvalidParameter, "only a document takes a filename")
		}
		if e := requiredString(obj, "filename", &s); e != nil {
			return e
		}
	}
	return nil
}

func (b *sendBody) validateTemplate(raw json.RawMessage, catalogue []Template) *apiError {
	obj, e := object("template", raw, "name", "language", "components", "namespace")
	if e != nil {
		return e
	}
	if e := requiredString(obj, "name", &b.template); e != nil {
		return e
	}
	lang, e := object("template.language", obj["language"], "code", "policy")
	if e != nil {
		return e
	}
	if e := requiredString(lang, "code", &b.language); e != nil {
		return e
	}
	counts := map[string]int{}
	if rawComps, ok := obj["components"]; ok {
		var comps []json.RawMessage
		if json.Unmarshal(rawComps, &comps) != nil {
			return badParam(whatsapp.CodeInvalidParameterVal, "template.components must be an array")
		}
		for i, rc := range comps {
			typ, n, e := validateComponent(i, rc)
			if e != nil {
				return e
			}
			if typ == "button" {
				counts[typ]++
			} else {
				counts[typ] += n
			}
		}
	}
	if len(catalogue) == 0 {
		return nil
	}
	for _, t := range catalogue {
		if t.Name != b.template || t.Language != b.language {
			continue
		}
		for _, c := range []struct {
			name      string
			got, want int
		}{{"header", counts["header"], t.HeaderParams}, {"body", counts["body"], t.BodyParams}, {"button", counts["button"], t.ButtonParams}} {
			if c.got != c.want {
				return badParam(whatsapp.CodeTemplateParamCount,
					"%s: number of localizable_params (%d) does not match the expected number of params (%d)", c.name, c.got, c.want)
			}
		}
		return nil
	}
	return badParam(whatsapp.CodeTemplateNotFound, "template name does not exist in the translation")
}

// validateComponent checks one template component and returns its type and
// parameter count.
func validateComponent(i int, raw json.RawMessage) (string, int, *apiError) {
	where := fmt.Sprintf("template.components[%d]", i)
	obj, e := object(where, raw, "type", "sub_type", "index", "parameters")
	if e != nil {
		return "", 0, e
	}
	var typ string
	if e := requiredString(obj, "type", &typ); e != nil {
		return "", 0, e
	}
	switch typ {
	case "header", "body":
		if _, ok := obj["sub_type"]; ok {
			return "", 0, badParam(whatsapp.CodeInvalidParameter, "%s: sub_type is only for buttons", where)
		}
	case "button":
		var sub string
		if e := requiredString(obj, "sub_type", &sub); e != nil {
			return "", 0, e
		}
		rawIndex, ok := obj["index"]
		if !ok {
			return "", 0, badParam(whatsapp.CodeMissingParameter, "%s: the parameter index is required", where)
		}
		if !validIndex(rawIndex) {
			return "", 0, badParam(whatsapp.CodeInvalidParameterVal, "%s: index must be 0-9", where)
		}
	default:
		return "", 0, badParam(whatsapp.CodeInvalidParameterVal, "%s: type must be header, body or button", where)
	}
	var params []json.RawMessage
	if rp, ok := obj["parameters"]; ok {
		if json.Unmarshal(rp, &params) != nil {
			return "", 0, badParam(whatsapp.CodeInvalidParameterVal, "%s: parameters must be an array", where)
		}
	}
	if typ == "button" && len(params) == 0 {
		return "", 0, badParam(whatsapp.CodeMissingParameter, "%s: a button needs parameters", where)
	}
	for j, rp := range params {
		if e := validateParameter(fmt.Sprintf("%s.parameters[%d]", where, j), rp); e != nil {
			return "", 0, e
		}
	}
	return typ, len(params), nil
}

// validIndex accepts the index as Meta's schema types it (a string) or as
// some of its examples write it (a number).
func validIndex(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return false
		}
		s = n.String()
	}
	i, err := strconv.Atoi(s)
	return err == nil && i >= 0 && i <= 9 && strconv.Itoa(i) == s
}

// validateParameter requires the key its type names ("text", "payload",
// "currency", …) and a non-empty string for text and payload.
func validateParameter(where string, raw json.RawMessage) *apiError {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return badParam(whatsapp.CodeInvalidParameterVal, "%s must be an object", where)
	}
	var typ string
	if e := requiredString(obj, "type", &typ); e != nil {
		return e
	}
	if _, ok := obj[typ]; !ok {
		return badParam(whatsapp.CodeMissingParameter, "%s: the parameter %s is required", where, typ)
	}
	if typ == "text" || typ == "payload" {
		var s string
		if e := requiredString(obj, typ, &s); e != nil {
			return e
		}
	}
	return nil
}

// object decodes raw as a JSON object and refuses keys outside allowed.
func object(where string, raw json.RawMessage, allowed ...string) (map[string]json.RawMessage, *apiError) {
	var obj map[string]json.RawMessage
	if raw == nil {
		return nil, badParam(whatsapp.CodeMissingParameter, "the parameter %s is required", where)
	}
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, badParam(whatsapp.CodeInvalidParameterVal, "%s must be an object", where)
	}
	for k := range obj {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return nil, badParam(whatsapp.CodeInvalidParameter, "%s: param %s is not a valid parameter", where, k)
		}
	}
	return obj, nil
}

// requiredString reads obj[key] as a non-blank string.
func requiredString(obj map[string]json.RawMessage, key string, dst *string) *apiError {
	raw, ok := obj[key]
	if !ok {
		return badParam(whatsapp.CodeMissingParameter, "the parameter %s is required", key)
	}
	if json.Unmarshal(raw, dst) != nil {
		return badParam(whatsapp.CodeInvalidParameterVal, "%s must be a string", key)
	}
	if strings.TrimSpace(*dst) == "" {
		return badParam(whatsapp.CodeInvalidParameterVal, "%s must not be empty", key)
	}
	return nil
}

// validateRead checks a read receipt, {"messaging_product","status":"read","message_id"}, with an
// optional typing indicator {"type":"text"} (Meta's typing indicators).
func validateRead(top map[string]json.RawMessage) (*sendBody, *apiError) {
	for k := range top {
		switch k {
		case "messaging_product", "status", "message_id", "typing_indicator":
		default:
			return nil, badParam(whatsapp.CodeInvalidParameter, "param %s is not valid with status", k)
		}
	}
	var product, status, id string
	for key, dst := range map[string]*string{"messaging_product": &product, "status": &status, "message_id": &id} {
		if e := requiredString(top, key, dst); e != nil {
			return nil, e
		}
	}
	if product != "whatsapp" || status != "read" {
		return nil, badParam(whatsapp.CodeInvalidParameterVal, "messaging_product must be whatsapp and status read")
	}
	body := &sendBody{typ: "read", read: id}
	if raw, ok := top["typing_indicator"]; ok {
		ti, e := object("typing_indicator", raw, "type")
		if e != nil {
			return nil, e
		}
		var t string
		if e := requiredString(ti, "type", &t); e != nil {
			return nil, e
		}
		if t != "text" {
			return nil, badParam(whatsapp.CodeInvalidParameterVal, "typing_indicator.type must be text")
		}
		body.typ = "typing"
	}
	return body, nil
}

// validateInteractive checks reply buttons and lists against Meta's limits (other interactive
// types are only required to be objects).
func validateInteractive(raw json.RawMessage) *apiError {
	var m struct {
		Type   string `json:"type"`
		Header *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"header"`
		Body *struct {
			Text string `json:"text"`
		} `json:"body"`
		Footer *struct {
			Text string `json:"text"`
		} `json:"footer"`
		Action *struct {
			Buttons []struct {
				Type  string                `json:"type"`
				Reply *whatsapp.ReplyButton `json:"reply"`
			} `json:"buttons"`
			Button   string                 `json:"button"`
			Sections []whatsapp.ListSection `json:"sections"`
		} `json:"action"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return badParam(whatsapp.CodeInvalidParameterVal, "interactive must be an object: %v", err)
	}
	if m.Type != "button" && m.Type != "list" {
		if m.Type == "" {
			return badParam(whatsapp.CodeMissingParameter, "the parameter interactive.type is required")
		}
		return nil
	}
	if m.Body == nil || m.Action == nil {
		return badParam(whatsapp.CodeMissingParameter, "interactive %s requires body and action", m.Type)
	}
	it := whatsapp.Interactive{Type: m.Type, Body: m.Body.Text, Button: m.Action.Button, Sections: m.Action.Sections}
	if m.Header != nil {
		if m.Header.Type != "text" {
			return badParam(whatsapp.CodeInvalidParameterVal, "interactive.header.type: only text is modelled by the fake")
		}
		it.Header = m.Header.Text
	}
	if m.Footer != nil {
		it.Footer = m.Footer.Text
	}
	for i, b := range m.Action.Buttons {
		if b.Type != "reply" || b.Reply == nil {
			return badParam(whatsapp.CodeInvalidParameterVal, "interactive.action.buttons[%d] must be a reply button", i)
		}
		it.Buttons = append(it.Buttons, *b.Reply)
	}
	if ps := it.Check(); len(ps) > 0 {
		return badParam(whatsapp.CodeInvalidParameterVal, "interactive.%s %s", ps[0].Field, ps[0].Message)
	}
	return nil
}
