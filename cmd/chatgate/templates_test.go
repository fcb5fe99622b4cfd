package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/chatgate/chatgate/configs"
	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

// fakeCatalogue serves the example configuration's templates at the fake Graph API, plus extra ones.
func fakeCatalogue(t *testing.T, extra ...fakeapi.Template) {
	t.Helper()
	cfg, _, ok := loadConfig("../../configs/chatgate.yaml", &bytes.Buffer{})
	if !ok {
		t.Fatal("example configuration does not load")
	}
	opts := fakeapi.Options{Numbers: map[string]string{}, BusinessAccountID: cfg.WhatsApp.BusinessAccountID}
	for _, n := range cfg.WhatsApp.Numbers {
		opts.Numbers[n.PhoneNumberID] = n.AccessToken
	}
	for _, c := range cfg.WhatsApp.Templates {
		opts.Templates = append(opts.Templates, fakeapi.Template{Name: c.Name, Language: c.Language, Category: c.Category,
			Text: c.Text, HeaderParams: c.HeaderParams, BodyParams: c.BodyParams, ButtonParams: c.ButtonParams, ButtonKind: c.ButtonKind})
	}
	opts.Templates = append(opts.Templates, extra...)
	srv := httptest.NewServer(fakeapi.New(opts).Handler())
	t.Cleanup(srv.Close)
	t.Setenv("CHATGATE_WHATSAPP_API_BASE_URL", srv.URL)
}

func TestTemplatesSyncPrintsTheApprovedCatalogue(t *testing.T) {
	fakeCatalogue(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"templates", "sync", "--check", "--config", "../../configs/chatgate.yaml"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Fatalf("an identical catalogue reported differences:\n%s", stderr.String())
	}
	var got struct {
		Templates []configs.Template `yaml:"templates"`
	}
	if err := yaml.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, stdout.String())
	}
	cfg, _, _ := loadConfig("../../configs/chatgate.yaml", &bytes.Buffer{})
	want := map[string]configs.Template{}
	for _, c := range cfg.WhatsApp.Templates {
		want[c.Name+"/"+c.Language] = c
	}
	if len(got.Templates) != len(want) {
		t.Fatalf("got %d templates, want %d:\n%s", len(got.Templates), len(want), stdout.String())
	}
	for _, g := range got.Templates {
		w := want[g.Name+"/"+g.Language]
		if g.HeaderParams != w.HeaderParams || g.BodyParams != w.BodyParams || g.ButtonParams != w.ButtonParams || g.Text != w.Text {
			t.Errorf("%s: got %+v, want %+v", g.Name, g, w)
		}
	}
}

func TestTemplatesSyncReportsDifferences(t *testing.T) {
	fakeCatalogue(t,
		fakeapi.Template{Name: "new_promo", Language: "en_US", BodyParams: 1},
		fakeapi.Template{Name: "rejected_one", Language: "en_US", Status: "REJECTED"})
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"templates", "sync", "--check", "--config", "../../configs/chatgate.yaml"}, &stdout, &stderr)
	if code != exitFailure {
		t.Fatalf("--check with differences: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr.String(), "approved new_promo/en_US is not configured") {
		t.Errorf("missing report of the unconfigured template:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String(), "rejected_one") {
		t.Errorf("a rejected template was printed as approved:\n%s", stdout.String())
	}
	// Without --check the listing is a success whatever the differences.
	if code := run(context.Background(), []string{"templates", "sync", "--config", "../../configs/chatgate.yaml"}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("without --check: exit %d", code)
	}
}

func TestTemplatesSyncBadUsageAndRefusedToken(t *testing.T) {
	fakeCatalogue(t)
	if code := run(context.Background(), []string{"templates"}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitInvalid {
		t.Fatalf("no subcommand: exit %d", code)
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"templates", "sync", "--token", "not-the-token", "--config", "../../configs/chatgate.yaml"}, &bytes.Buffer{}, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "190") {
		t.Fatalf("refused token: exit %d, stderr %s", code, stderr.String())
	}
}
