package fakeapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

func TestTemplatesListingPagesAndChecksTokenAndAccount(t *testing.T) {
	srv := httptest.NewServer(New(Options{Numbers: map[string]string{"1": "tok"}, BusinessAccountID: "777",
		Templates: []Template{{Name: "a", Language: "en_US", BodyParams: 1}, {Name: "b", Language: "en_US", HeaderParams: 1},
			{Name: "c", Language: "pt_BR", ButtonParams: 2, ButtonKind: "quick_reply"}}}).Handler())
	defer srv.Close()

	get := func(path, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	status, page := get("/v23.0/777/message_templates?limit=2", "tok")
	if status != 200 || len(page["data"].([]any)) != 2 || page["paging"].(map[string]any)["next"] == nil {
		t.Fatalf("first page: %d %v", status, page)
	}
	if status, _ := get("/v23.0/777/message_templates", "other"); status != 401 {
		t.Errorf("unknown token: %d, want 401", status)
	}
	if status, _ := get("/v23.0/778/message_templates", "tok"); status != 400 {
		t.Errorf("unknown business account: %d, want 400", status)
	}

	// The client follows the fake's paging to the end and reads back the parameter counts.
	c, err := whatsapp.New(whatsapp.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListTemplates(context.Background(), "777", "tok")
	if err != nil || len(list) != 3 {
		t.Fatalf("listing: %v %+v", err, list)
	}
	if p := list[1].Params(); p.Header != 1 || p.Body != 0 {
		t.Errorf("b: %+v", p)
	}
	if p := list[2].Params(); p.Buttons != 2 || p.ButtonKind != "quick_reply" {
		t.Errorf("c: %+v", p)
	}
}
