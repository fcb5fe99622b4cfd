package main

import (
	"context"
	"fmt"
	"io"

	"github.com/chatgate/chatgate/outbound/whatsapp/fakeapi"
)

func init() {
	extraCommands["fake-whatsapp"] = runFakeWhatsApp
}

// runFakeWhatsApp serves a fake WhatsApp Cloud API with the configured numbers, tokens and templates,
// for demos and end-to-end tests: point whatsapp.api_base_url (CHATGATE_WHATSAPP_API_BASE_URL) at it.
func runFakeWhatsApp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fake-whatsapp", stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	configFile := fs.String("config", "", "configuration file (numbers, tokens, templates)")
	adminToken := fs.String("admin-token", "", "Bearer token guarding /_fake/ (none: open)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	cfg, _, ok := loadConfig(*configFile, stderr)
	if !ok {
		return exitInvalid
	}
	logger, logs := newLogger(cfg.Log, stderr)
	defer logs.Close()
	opts := fakeapi.Options{Numbers: map[string]string{}, AdminToken: *adminToken, Logger: logger,
		BusinessAccountID: cfg.WhatsApp.BusinessAccountID}
	for _, n := range cfg.WhatsApp.Numbers {
		opts.Numbers[n.PhoneNumberID] = n.AccessToken
	}
	for _, t := range cfg.WhatsApp.Templates {
		opts.Templates = append(opts.Templates, fakeapi.Template{Name: t.Name, Language: t.Language,
			HeaderParams: t.HeaderParams, BodyParams: t.BodyParams, ButtonParams: t.ButtonParams,
			Category: t.Category, Text: t.Text, ButtonKind: t.ButtonKind})
	}
	srv := fakeapi.New(opts)
	if err := srv.Start(*listen); err != nil {
		fmt.Fprintln(stderr, "fake-whatsapp:", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "fake WhatsApp Cloud API on %s (admin: %s/_fake/calls)\n", srv.URL(), srv.URL())
	<-ctx.Done()
	_ = srv.Close()
	return exitOK
}
