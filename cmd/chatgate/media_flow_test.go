package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgate/chatgate/internal/redistest"
)

// The gateway as wired: a file reply up to media.upload_limit reaches the per-kind check (a 6 MB
// photo is refused with Meta's 5 MB image limit, not the general body limit), and the media endpoint
// takes a signed link without a Bearer token (development makes a key when none is configured).
func TestMediaRoutesAsWired(t *testing.T) {
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_MEDIA_CACHE_DIR": t.TempDir()})
	tg := startTestGateway(t, cfg, nil)
	ana := mintFor(t, cfg, "ana")

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	part, _ := w.CreateFormFile("file", "photo.png")
	part.Write(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 6<<20)...))
	w.Close()
	req, _ := http.NewRequest("POST", tg.base+"/v1/conversations/01NOSUCHCONVERSATION/messages", &body)
	req.Header.Set("Authorization", "Bearer "+ana)
	req.Header.Set("Content-Type", w.FormDataContentType())
	status, code, msg := call(t, req)
	if status != 413 || code != "media_too_large" || !strings.Contains(msg, "image may be at most 5 MB") {
		t.Fatalf("a 6 MB photo: %d %s %q", status, code, msg)
	}
	// A JSON reply keeps the general body limit (1 MiB; 1.5 MiB is read whole and refused with a 413,
	// where a body past twice the limit may meet a closed connection instead).
	req, _ = http.NewRequest("POST", tg.base+"/v1/conversations/01NOSUCHCONVERSATION/messages",
		strings.NewReader(`{"text":"`+strings.Repeat("a", 3<<19)+`"}`))
	req.Header.Set("Authorization", "Bearer "+ana)
	req.Header.Set("Content-Type", "application/json")
	if status, code, _ := call(t, req); status != 413 || code != "body_too_large" {
		t.Fatalf("a 1.5 MB JSON reply: %d %s", status, code)
	}

	link := tg.g.links.Link("01NOSUCHMESSAGE", time.Hour)
	req, _ = http.NewRequest("GET", tg.base+link, nil)
	if status, code, _ := call(t, req); status != 404 || code != "message_not_found" {
		t.Fatalf("a signed link to an unknown message: %d %s", status, code)
	}
	req, _ = http.NewRequest("GET", tg.base+strings.Replace(link, "sig=", "sig=x", 1), nil)
	if status, code, _ := call(t, req); status != 403 || code != "invalid_media_link" {
		t.Fatalf("a forged link: %d %s", status, code)
	}
	req, _ = http.NewRequest("GET", tg.base+"/v1/messages/01NOSUCHMESSAGE/media", nil)
	if status, code, _ := call(t, req); status != 401 || code != "invalid_token" {
		t.Fatalf("neither token nor link: %d %s", status, code)
	}
}

func call(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}
