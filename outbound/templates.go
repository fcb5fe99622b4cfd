package outbound

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chatgate/chatgate/configs"
)

// Template is a catalogue entry as GET /v1/templates shows it.
type Template struct {
	Name         string `json:"name"`
	Language     string `json:"language"`
	Category     string `json:"category,omitempty"`
	Text         string `json:"text,omitempty"`
	HeaderParams int    `json:"header_params"`
	BodyParams   int    `json:"body_params"`
	ButtonParams int    `json:"button_params"`
	ButtonKind   string `json:"button_kind,omitempty"`
}

// TemplateParams is the template part of a new conversation request.
type TemplateParams struct {
	Name         string   `json:"name"`
	Language     string   `json:"language"`
	HeaderParams []string `json:"header_params"`
	BodyParams   []string `json:"body_params"`
	ButtonParams []string `json:"button_params"`
}

// Catalogue is the configured templates, looked up by name and language.
type Catalogue struct {
	list   []Template
	byName map[string]map[string]Template // name → language → template
}

// NewCatalogue indexes the configured templates.
func NewCatalogue(cfg []configs.Template) *Catalogue {
	c := &Catalogue{byName: map[string]map[string]Template{}}
	for _, t := range cfg {
		kind := t.ButtonKind
		if kind == "" && t.ButtonParams > 0 {
			kind = "url"
		}
		tpl := Template{Name: t.Name, Language: t.Language, Category: strings.ToUpper(t.Category), Text: t.Text,
			HeaderParams: t.HeaderParams, BodyParams: t.BodyParams, ButtonParams: t.ButtonParams, ButtonKind: kind}
		if c.byName[t.Name] == nil {
			c.byName[t.Name] = map[string]Template{}
		}
		c.byName[t.Name][t.Language] = tpl
		c.list = append(c.list, tpl)
	}
	sort.SliceStable(c.list, func(i, j int) bool {
		if c.list[i].Name != c.list[j].Name {
			return c.list[i].Name < c.list[j].Name
		}
		return c.list[i].Language < c.list[j].Language
	})
	return c
}

// List returns every template, by name then language.
func (c *Catalogue) List() []Template { return c.list }

// Meta refuses parameters with new lines or tabs, or more than four spaces in a row (132018), and
// longer than this.
const maxParamLength = 1024

// fiveSpaces is what Meta means by more than four spaces in a row.
const fiveSpaces = "     "

// Check validates p against the catalogue and returns the template, or the fields at fault.
func (c *Catalogue) Check(p TemplateParams) (Template, []FieldError) {
	langs, ok := c.byName[p.Name]
	if !ok {
		return Template{}, []FieldError{{Field: "template.name", Message: "is not an approved template"}}
	}
	tpl, ok := langs[p.Language]
	if !ok {
		have := make([]string, 0, len(langs))
		for l := range langs {
			have = append(have, l)
		}
		sort.Strings(have)
		return Template{}, []FieldError{{Field: "template.language",
			Message: "the template is not approved in this language (approved: " + strings.Join(have, ", ") + ")"}}
	}
	var bad []FieldError
	bad = append(bad, checkParams("template.header_params", p.HeaderParams, tpl.HeaderParams)...)
	bad = append(bad, checkParams("template.body_params", p.BodyParams, tpl.BodyParams)...)
	bad = append(bad, checkParams("template.button_params", p.ButtonParams, tpl.ButtonParams)...)
	return tpl, bad
}

func checkParams(field string, values []string, want int) []FieldError {
	if len(values) != want {
		return []FieldError{{Field: field, Message: "the template takes exactly " + strconv.Itoa(want) +
			" parameters here, got " + strconv.Itoa(len(values))}}
	}
	var bad []FieldError
	for i, v := range values {
		at := field + "[" + strconv.Itoa(i) + "]"
		switch {
		case strings.TrimSpace(v) == "":
			bad = append(bad, FieldError{Field: at, Message: "is empty"})
		case !utf8.ValidString(v):
			bad = append(bad, FieldError{Field: at, Message: "is not valid UTF-8"})
		case utf8.RuneCountInString(v) > maxParamLength:
			bad = append(bad, FieldError{Field: at, Message: "is longer than " + strconv.Itoa(maxParamLength) + " characters"})
		case strings.ContainsAny(v, "\n\r\t") || strings.Contains(v, fiveSpaces):
			bad = append(bad, FieldError{Field: at, Message: "may not contain new lines, tabs or more than four spaces in a row"})
		}
	}
	return bad
}

// Render fills a template's text with its body parameters, for the conversation's history.
func (t Template) Render(body []string) string {
	if t.Text == "" {
		return t.Name
	}
	out := t.Text
	for i, v := range body {
		out = strings.ReplaceAll(out, "{{"+strconv.Itoa(i+1)+"}}", v)
	}
	return out
}
