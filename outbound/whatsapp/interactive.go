package whatsapp

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Meta's limits on interactive messages (components/schemas/InteractiveObject and its parts in
// the Cloud API's OpenAPI description).
const (
	MaxReplyButtons       = 3
	MaxButtonTitle        = 20
	MaxButtonID           = 256
	MaxInteractiveBody    = 1024
	MaxInteractiveHeader  = 60
	MaxInteractiveFooter  = 60
	MaxListButton         = 20
	MaxListSections       = 10
	MaxListRows           = 10 // in all sections together
	MaxSectionTitle       = 24
	MaxRowID              = 200
	MaxRowTitle           = 24
	MaxRowDescription     = 72
	InteractiveButtonType = "button"
	InteractiveListType   = "list"
)

// Interactive is a reply-buttons or list message. The customer's choice comes back as a
// button_reply or list_reply whose context names this message.
type Interactive struct {
	Type     string        `json:"type"` // button | list
	Header   string        `json:"header,omitempty"`
	Body     string        `json:"body"`
	Footer   string        `json:"footer,omitempty"`
	Buttons  []ReplyButton `json:"buttons,omitempty"`  // type button: 1-3
	Button   string        `json:"button,omitempty"`   // type list: the label that opens the list
	Sections []ListSection `json:"sections,omitempty"` // type list: 1-10, 1-10 rows in all
}

// ReplyButton is one reply button.
type ReplyButton struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// ListSection is a titled group of rows.
type ListSection struct {
	Title string    `json:"title,omitempty"`
	Rows  []ListRow `json:"rows"`
}

// ListRow is one choice of a list.
type ListRow struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// FieldProblem names a field of an Interactive (as "buttons[1].title") and what is wrong with it.
type FieldProblem struct {
	Field   string
	Message string
}

// Check lists every way it breaks Meta's limits; none means Meta accepts its shape.
func (it Interactive) Check() []FieldProblem {
	var ps []FieldProblem
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	text := func(field, v string, max int, required bool) {
		n := utf8.RuneCountInString(v)
		switch {
		case !utf8.ValidString(v):
			add(field, "is not valid UTF-8")
		case required && strings.TrimSpace(v) == "":
			add(field, "is required")
		case n > max:
			add(field, "is %d characters; the limit is %d", n, max)
		}
	}
	id := func(field, v string, max int) {
		switch {
		case v == "":
			add(field, "is required")
		case strings.TrimSpace(v) != v:
			add(field, "must not start or end with spaces")
		case len(v) > max:
			add(field, "is %d characters; the limit is %d", len(v), max)
		}
	}
	text("body", it.Body, MaxInteractiveBody, true)
	text("header", it.Header, MaxInteractiveHeader, false)
	text("footer", it.Footer, MaxInteractiveFooter, false)
	switch it.Type {
	case InteractiveButtonType:
		if len(it.Buttons) == 0 || len(it.Buttons) > MaxReplyButtons {
			add("buttons", "has %d buttons; give 1 to %d", len(it.Buttons), MaxReplyButtons)
		}
		if it.Button != "" || len(it.Sections) > 0 {
			add("type", "buttons messages take buttons, not a list's button and sections")
		}
		ids, titles := map[string]bool{}, map[string]bool{}
		for i, b := range it.Buttons {
			f := fmt.Sprintf("buttons[%d]", i)
			id(f+".id", b.ID, MaxButtonID)
			text(f+".title", b.Title, MaxButtonTitle, true)
			if b.ID != "" && ids[b.ID] {
				add(f+".id", "repeats another button's id")
			}
			if b.Title != "" && titles[b.Title] {
				add(f+".title", "repeats another button's title")
			}
			ids[b.ID], titles[b.Title] = true, true
		}
	case InteractiveListType:
		text("button", it.Button, MaxListButton, true)
		if len(it.Buttons) > 0 {
			add("type", "lists take a button and sections, not buttons")
		}
		if len(it.Sections) == 0 || len(it.Sections) > MaxListSections {
			add("sections", "has %d sections; give 1 to %d", len(it.Sections), MaxListSections)
		}
		rows := 0
		ids := map[string]bool{}
		for i, s := range it.Sections {
			f := fmt.Sprintf("sections[%d]", i)
			text(f+".title", s.Title, MaxSectionTitle, len(it.Sections) > 1)
			if len(s.Rows) == 0 {
				add(f+".rows", "is empty; give at least one row")
			}
			for j, r := range s.Rows {
				rf := fmt.Sprintf("%s.rows[%d]", f, j)
				id(rf+".id", r.ID, MaxRowID)
				text(rf+".title", r.Title, MaxRowTitle, true)
				text(rf+".description", r.Description, MaxRowDescription, false)
				if r.ID != "" && ids[r.ID] {
					add(rf+".id", "repeats another row's id")
				}
				ids[r.ID] = true
				rows++
			}
		}
		if rows > MaxListRows {
			add("sections", "has %d rows in all; the limit is %d", rows, MaxListRows)
		}
	default:
		add("type", "must be button or list")
	}
	return ps
}

// InteractiveMessage sends an Interactive.
type InteractiveMessage struct {
	To          string
	Interactive Interactive
	ReplyTo     string
}

type interactiveObj struct {
	Type   string     `json:"type"`
	Header *headerObj `json:"header,omitempty"`
	Body   textOnly   `json:"body"`
	Footer *textOnly  `json:"footer,omitempty"`
	Action actionObj  `json:"action"`
}

type headerObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type textOnly struct {
	Text string `json:"text"`
}

type actionObj struct {
	Buttons  []buttonObj   `json:"buttons,omitempty"`
	Button   string        `json:"button,omitempty"`
	Sections []ListSection `json:"sections,omitempty"`
}

type buttonObj struct {
	Type  string      `json:"type"`
	Reply ReplyButton `json:"reply"`
}

func (m InteractiveMessage) build() (*request, error) {
	req, err := newRequest(m.To, "interactive", m.ReplyTo)
	if err != nil {
		return nil, err
	}
	it := m.Interactive
	if ps := it.Check(); len(ps) > 0 {
		return nil, invalid("interactive.%s: %s", ps[0].Field, ps[0].Message)
	}
	obj := &interactiveObj{Type: it.Type, Body: textOnly{Text: it.Body}}
	if it.Header != "" {
		obj.Header = &headerObj{Type: "text", Text: it.Header}
	}
	if it.Footer != "" {
		obj.Footer = &textOnly{Text: it.Footer}
	}
	if it.Type == InteractiveButtonType {
		for _, b := range it.Buttons {
			obj.Action.Buttons = append(obj.Action.Buttons, buttonObj{Type: "reply", Reply: b})
		}
	} else {
		obj.Action.Button, obj.Action.Sections = it.Button, it.Sections
	}
	req.Interactive = obj
	return req, nil
}
