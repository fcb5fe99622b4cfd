package configs

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decodeStrict decodes raw into cfg and returns every decoding problem with its YAML path: unknown
// keys (found by walking the document against the Go types, since yaml.v3 names only the Go type)
// and values of the wrong type (yaml.v3 goes on decoding past those, so validation can still run on
// the rest). fatal is true when the document could not be parsed at all.
func decodeStrict(raw []byte, cfg *Config) (ps Problems, badPaths []string, fatal bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return Problems{{Message: strings.TrimPrefix(err.Error(), "yaml: ")}}, nil, true
	}
	if len(doc.Content) == 0 {
		return nil, nil, false
	}
	var nodes []located
	walkNode(doc.Content[0], reflect.TypeOf(*cfg), "", &ps, &nodes)
	if err := doc.Content[0].Decode(cfg); err != nil {
		te, ok := err.(*yaml.TypeError)
		if !ok {
			return append(ps, Problem{Message: err.Error()}), nil, true
		}
		for _, msg := range te.Errors {
			p := typeProblem(msg, nodes)
			ps = append(ps, p)
			if p.Path != "" {
				badPaths = append(badPaths, p.Path)
			}
		}
	}
	return ps, badPaths, false
}

// located is a value node of the document and its path, to name the place of a type error.
type located struct {
	path string
	node *yaml.Node
}

var durationType = reflect.TypeOf(time.Duration(0))

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walkNode reports keys that no field of t accepts. Paths follow the validator's: fields joined by
// dots, list items and map keys in brackets (agents[0].channels[whatsapp].capacity).
func walkNode(n *yaml.Node, t reflect.Type, path string, ps *Problems, nodes *[]located) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	*nodes = append(*nodes, located{path, n})
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its mapping's keys belong here
				walkNode(v, t, path, ps, nodes)
				continue
			}
			f, ok := fields[k.Value]
			if !ok {
				*ps = append(*ps, Problem{joinKey(path, k.Value), fmt.Sprintf("unknown key (line %d)", k.Line)})
				continue
			}
			walkNode(v, f, joinKey(path, k.Value), ps, nodes)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkNode(n.Content[i+1], t.Elem(), path+"["+n.Content[i].Value+"]", ps, nodes)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			walkNode(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", ps, nodes)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		out[name] = f.Type
	}
	return out
}

// yaml.v3: "line 7: cannot unmarshal !!str `fast` into int"; values over 10 characters are cut to 7 and "...".
var typeErrorPattern = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

func typeProblem(msg string, nodes []located) Problem {
	m := typeErrorPattern.FindStringSubmatch(msg)
	if m == nil {
		return Problem{Message: msg}
	}
	line, _ := strconv.Atoi(m[1])
	tag, value, into := m[2], strings.TrimSuffix(m[3], "..."), m[4]
	path := ""
	for _, l := range nodes {
		if l.node.Line == line && strings.TrimPrefix(l.node.ShortTag(), "!!") == tag && strings.HasPrefix(l.node.Value, value) {
			path = l.path
			if l.node.Kind == yaml.ScalarNode {
				value = l.node.Value
			}
			break
		}
	}
	got := "a " + tag
	switch tag {
	case "str", "int", "float", "bool":
		got = strconv.Quote(value)
	case "seq":
		got = "a list"
	case "map":
		got = "a mapping"
	}
	return Problem{Path: path, Message: fmt.Sprintf("is %s; want %s (line %d)", got, describeType(into), line)}
}

func describeType(goType string) string {
	switch {
	case goType == durationType.String():
		return "a duration such as 30s"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "configs."):
		return "a mapping"
	}
	return goType
}
