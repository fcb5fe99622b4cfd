package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/chatgate/chatgate/internal/simulate"
)

func init() {
	extraCommands["simulate"] = runSimulate
}

// runSimulate posts a correctly signed provider notification to a running gateway, so a card can be
// seen arriving without a Meta account or a website.
func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "whatsapp" && args[0] != "webchat") {
		fmt.Fprintln(stderr, "usage: chatgate simulate whatsapp|webchat [flags] (see --help)")
		return exitInvalid
	}
	provider, args := args[0], args[1:]
	fs := newFlagSet("simulate "+provider, stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the gateway's base URL")
	configFile := fs.String("config", "", "configuration file (for the secrets and defaults)")
	text := fs.String("text", "", "message text")
	name := fs.String("name", "Maria", "customer or visitor name")
	// WhatsApp
	from := fs.String("from", "+5511999990001", "whatsapp: customer number (E.164)")
	userID := fs.String("user-id", "", "whatsapp: business-scoped user id (BR.…)")
	phoneNumberID := fs.String("phone-number-id", "", "whatsapp: receiving number (default: the first configured)")
	image := fs.String("image", "", "whatsapp: send an image message with this media id")
	status := fs.String("status", "", "whatsapp: send a status (sent|delivered|read|played|failed|deleted|warning, or any other) for --message-id instead of a message")
	messageID := fs.String("message-id", "", "whatsapp: provider message id (wamid) of the message or status")
	// WebChat
	site := fs.String("site", "", "webchat: site id (default: the first configured)")
	visitor := fs.String("visitor", "v-1", "webchat: visitor id")
	pageURL := fs.String("page-url", "http://localhost:8080/", "webchat: page the visitor is on")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	cfg, _, ok := loadConfig(*configFile, stderr)
	if !ok {
		return exitInvalid
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	var body []byte
	switch provider {
	case "whatsapp":
		pnid := *phoneNumberID
		if pnid == "" && len(cfg.WhatsApp.Numbers) > 0 {
			pnid = cfg.WhatsApp.Numbers[0].PhoneNumberID
		}
		if *status != "" {
			if *messageID == "" {
				fmt.Fprintln(stderr, "simulate whatsapp --status needs --message-id")
				return exitInvalid
			}
			body = simulate.WhatsAppStatusNotification(simulate.WhatsAppStatus{PhoneNumberID: pnid, MessageID: *messageID,
				Status: *status, RecipientID: *from, ErrorCode: 131026, ErrorTitle: "Message undeliverable"})
		} else {
			if *text == "" && *image == "" {
				*text = "Hello! I have a question about my order."
			}
			body = simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: pnid, From: *from, UserID: *userID,
				Name: *name, ID: *messageID, Text: *text, ImageID: *image, Caption: *text, At: time.Now()})
		}
		req.Header.Set("X-Hub-Signature-256", simulate.SignWhatsApp(body, cfg.WhatsApp.AppSecret))
		req.URL, err = req.URL.Parse(*url + "/webhooks/whatsapp")
	case "webchat":
		s := *site
		if s == "" && len(cfg.WebChat.Sites) > 0 {
			s = cfg.WebChat.Sites[0].ID
		}
		siteCfg, found := cfg.Site(s)
		if !found {
			fmt.Fprintf(stderr, "simulate webchat: site %q is not configured\n", s)
			return exitInvalid
		}
		if *text == "" {
			*text = "Oi! Preciso de ajuda."
		}
		body = simulate.WebChatBody(simulate.WebChatMessage{Site: s, VisitorID: *visitor, VisitorName: *name, ID: *messageID, Text: *text, PageURL: *pageURL})
		ts, sig := simulate.SignWebChat(body, siteCfg.Secret, time.Now())
		req.Header.Set("X-Chatgate-Timestamp", ts)
		req.Header.Set("X-Chatgate-Signature", sig)
		req.URL, err = req.URL.Parse(*url + "/webhooks/webchat")
	}
	if err != nil {
		fmt.Fprintln(stderr, "simulate: bad --url:", err)
		return exitInvalid
	}
	req.Header.Set("Content-Type", "application/json")
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "simulate:", err)
		return exitFailure
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s → %d %s\n", req.Method, req.URL, resp.StatusCode, bytes.TrimSpace(answer))
	if resp.StatusCode >= 300 {
		return exitFailure
	}
	return exitOK
}
