package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatgate/chatgate/configs"
	whatsappapi "github.com/chatgate/chatgate/outbound/whatsapp"
)

func init() {
	extraCommands["templates"] = runTemplates
}

// runTemplates is "templates sync": it lists the business account's templates at the Graph API, prints
// the approved ones as a whatsapp.templates block for the configuration, and reports how the configured
// catalogue differs. The configuration is not rewritten: an operator reviews and pastes the block.
func runTemplates(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "sync" {
		fmt.Fprintln(stderr, "usage: chatgate templates sync [--config FILE] [--token TOKEN] [--check]")
		return exitInvalid
	}
	fs := newFlagSet("templates sync", stderr)
	configFile := fs.String("config", "", "configuration file")
	token := fs.String("token", "", "Graph API token with whatsapp_business_management (default: the first number's access_token)")
	check := fs.Bool("check", false, "exit 1 when the configured catalogue differs from the approved templates")
	timeout := fs.Duration("timeout", time.Minute, "time allowed for the whole listing")
	if err := fs.Parse(args[1:]); err != nil {
		return exitInvalid
	}
	cfg, _, ok := loadConfig(*configFile, stderr)
	if !ok {
		return exitInvalid
	}
	if cfg.WhatsApp.BusinessAccountID == "" {
		fmt.Fprintln(stderr, "chatgate templates sync: whatsapp.business_account_id is not configured")
		return exitInvalid
	}
	if *token == "" {
		for _, n := range cfg.WhatsApp.Numbers {
			if n.AccessToken != "" {
				*token = n.AccessToken
				break
			}
		}
	}
	client, err := whatsappapi.New(whatsappapi.Config{BaseURL: cfg.WhatsApp.APIBaseURL, APIVersion: cfg.WhatsApp.APIVersion})
	if err != nil {
		fmt.Fprintln(stderr, "chatgate templates sync:", err)
		return exitInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	remote, err := client.ListTemplates(ctx, cfg.WhatsApp.BusinessAccountID, *token)
	if err != nil {
		fmt.Fprintln(stderr, "chatgate templates sync:", err)
		return exitFailure
	}
	approved := approvedTemplates(remote)
	out, err := yaml.Marshal(map[string]any{"templates": approved})
	if err != nil {
		fmt.Fprintln(stderr, "chatgate templates sync:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# %d approved of %d templates at business account %s; paste under whatsapp:\n%s",
		len(approved), len(remote), cfg.WhatsApp.BusinessAccountID, out)
	diffs := catalogueDiff(cfg.WhatsApp.Templates, approved, remote)
	for _, d := range diffs {
		fmt.Fprintln(stderr, "chatgate templates sync:", d)
	}
	if *check && len(diffs) > 0 {
		return exitFailure
	}
	return exitOK
}

// approvedTemplates converts the approved templates to configuration entries, sorted by name and language.
func approvedTemplates(remote []whatsappapi.RemoteTemplate) []configs.Template {
	var out []configs.Template
	for _, r := range remote {
		if !strings.EqualFold(r.Status, "APPROVED") {
			continue
		}
		p := r.Params()
		out = append(out, configs.Template{Name: r.Name, Language: r.Language, Category: strings.ToUpper(r.Category),
			Text: p.Text, HeaderParams: p.Header, BodyParams: p.Body, ButtonParams: p.Buttons, ButtonKind: p.ButtonKind})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Language < out[j].Language
	})
	return out
}

// catalogueDiff names every configured template agents could pick but Meta would refuse, every approved
// one the configuration lacks, and every parameter count that differs.
func catalogueDiff(configured, approved []configs.Template, remote []whatsappapi.RemoteTemplate) []string {
	key := func(name, lang string) string { return name + "/" + lang }
	byKey := map[string]configs.Template{}
	for _, t := range approved {
		byKey[key(t.Name, t.Language)] = t
	}
	status := map[string]string{}
	for _, r := range remote {
		status[key(r.Name, r.Language)] = r.Status
	}
	var diffs []string
	seen := map[string]bool{}
	for _, c := range configured {
		k := key(c.Name, c.Language)
		seen[k] = true
		a, ok := byKey[k]
		switch {
		case !ok && status[k] != "":
			diffs = append(diffs, fmt.Sprintf("configured %s is %s at Meta, not APPROVED", k, status[k]))
		case !ok:
			diffs = append(diffs, fmt.Sprintf("configured %s does not exist at Meta", k))
		case a.HeaderParams != c.HeaderParams || a.BodyParams != c.BodyParams || a.ButtonParams != c.ButtonParams:
			diffs = append(diffs, fmt.Sprintf("configured %s takes header/body/button parameters %d/%d/%d, Meta's %d/%d/%d",
				k, c.HeaderParams, c.BodyParams, c.ButtonParams, a.HeaderParams, a.BodyParams, a.ButtonParams))
		}
	}
	for _, a := range approved {
		if k := key(a.Name, a.Language); !seen[k] {
			diffs = append(diffs, fmt.Sprintf("approved %s is not configured", k))
		}
	}
	return diffs
}
