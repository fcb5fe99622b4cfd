package whatsapp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The two templates of the "Example response" of GET /{Version}/{WABA-ID}/message_templates in Meta's
// OpenAPI description, served over two pages to exercise paging.next.
const metaTemplatesPage1 = `{"data":[{"category":"MARKETING","components":[{"format":"TEXT","text":"Hello World","type":"HEADER"},
{"text":"Welcome and congratulations!! This message demonstrates your ability to send a message notification from WhatsApp Business Platform’s Cloud API. Thank you for taking the time to test with us.","type":"BODY"},
{"text":"WhatsApp Business API Team","type":"FOOTER"}],"id":"1192339204654487","language":"en_US","name":"hello_world","previous_category":"ACCOUNT_UPDATE","status":"APPROVED"}],
"paging":{"cursors":{"before":"MAZDZD","after":"MjQZD"},"next":"NEXT"}}`

const metaTemplatesPage2 = `{"data":[{"category":"MARKETING","components":[{"format":"TEXT","text":"Fall Sale","type":"HEADER"},
{"example":{"body_text":[["Mark","FALL25"]]},"text":"Hi {{1}}, our Fall Sale is on! Use promo code {{2}} Get an extra 25% off every order above $350!","type":"BODY"},
{"text":"Not interested in any of our sales? Tap Stop Promotions","type":"FOOTER"},
{"buttons":[{"text":"Stop promotions","type":"QUICK_REPLY"}],"type":"BUTTONS"}],"id":"920070352646140","language":"en_US","name":"2023_april_promo","status":"APPROVED"}],
"paging":{"cursors":{"before":"MAZDZD","after":"MjQZD"}}}`

func TestListTemplatesFollowsPagingAndCountsParameters(t *testing.T) {
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer waba-token" {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190}}`))
			return
		}
		paths = append(paths, r.URL.RequestURI())
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("after") == "" {
			w.Write([]byte(strings.Replace(metaTemplatesPage1, "NEXT", "http://"+r.Host+r.URL.Path+"?after=MjQZD", 1)))
			return
		}
		w.Write([]byte(metaTemplatesPage2))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, APIVersion: "v23.0"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ListTemplates(context.Background(), "102290129340398", "waba-token")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || !strings.HasPrefix(paths[0], "/v23.0/102290129340398/message_templates?") ||
		!strings.Contains(paths[0], "fields=id%2Cname%2Clanguage%2Cstatus%2Ccategory%2Ccomponents") {
		t.Fatalf("requests: %q", paths)
	}
	if len(got) != 2 || got[0].Name != "hello_world" || got[1].Name != "2023_april_promo" || got[1].Status != "APPROVED" {
		t.Fatalf("templates: %+v", got)
	}
	if p := got[0].Params(); p.Header != 0 || p.Body != 0 || p.Buttons != 0 {
		t.Errorf("hello_world params: %+v", p)
	}
	if p := got[1].Params(); p.Header != 0 || p.Body != 2 || p.Buttons != 1 || p.ButtonKind != "quick_reply" {
		t.Errorf("2023_april_promo params: %+v", p)
	}

	_, err = c.ListTemplates(context.Background(), "102290129340398", "wrong-token")
	var e *Error
	if !errors.As(err, &e) || e.Code != 190 || e.HTTPStatus != 401 {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestListTemplatesRefusesBadInputAndForeignPagingLinks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") != "" {
			t.Errorf("the token followed a link to another host")
		}
		w.Write([]byte(strings.Replace(metaTemplatesPage1, "NEXT", "http://evil.example/x?after=1", 1)))
	}))
	defer srv.Close()
	c, _ := New(Config{BaseURL: srv.URL})
	if _, err := c.ListTemplates(context.Background(), "1023", "tok"); err == nil || !strings.Contains(err.Error(), "leaves") {
		t.Fatalf("foreign paging link: %v", err)
	}
	if _, err := c.ListTemplates(context.Background(), "../1023", "tok"); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("bad business account id: %v", err)
	}
	if _, err := c.ListTemplates(context.Background(), "1023", ""); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("empty token: %v", err)
	}
}

func TestTemplateParamsCountDistinctPlaceholdersAndMediaHeaders(t *testing.T) {
	tpl := RemoteTemplate{Components: []TemplateComponent{
		{Type: "HEADER", Format: "IMAGE"},
		{Type: "BODY", Text: "Hi {{first_name}}, {{first_name}} your code is {{ code }}"},
		{Type: "BUTTONS", Buttons: []TemplateButton{{Type: "URL", URL: "https://x.example/{{1}}"}, {Type: "QUICK_REPLY"}, {Type: "PHONE_NUMBER"}}},
	}}
	if p := tpl.Params(); p.Header != 1 || p.Body != 2 || p.Buttons != 1 || p.ButtonKind != "url" {
		t.Fatalf("params: %+v", p)
	}
}
