package fakeapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// The media round trip the gateway relies on: upload with a number's token, look up, download with
// a token; the lookup's size and sha256 describe the bytes.
func TestMediaUploadLookupDownload(t *testing.T) {
	s, hs, c := newFake(t, Options{})
	ctx := context.Background()
	data := []byte("\x89PNG\r\n\x1a\nimage")
	id, err := c.Upload(ctx, numberID, token, "image/png", "a.png", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, numberID, otherTok, "image/png", "a.png", data); err == nil {
		t.Fatal("an upload with another number's token was accepted")
	}
	info, err := c.MediaURL(ctx, numberID, token, id)
	if err != nil || info.Size != int64(len(data)) || info.MimeType != "image/png" || len(info.SHA256) != 64 {
		t.Fatalf("lookup: %+v %v", info, err)
	}
	if _, err := c.MediaURL(ctx, otherID, otherTok, id); !whatsapp.IsMediaGone(err) {
		t.Fatalf("lookup checked against another number: %v", err)
	}
	resp, _ := http.Get(info.URL) // without the token
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("download without a token: %d", resp.StatusCode)
	}
	body, err := c.Download(ctx, info.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %q", got)
	}
	if rec, _ := s.Media(id); rec.Lookups != 1 || rec.Downloads != 1 || !rec.Uploaded {
		t.Fatalf("record %+v", rec)
	}
	s.ExpireMedia(id)
	if _, err := c.MediaURL(ctx, "", token, id); !whatsapp.IsMediaGone(err) {
		t.Fatalf("expired lookup: %v", err)
	}
	_ = hs
}

// Meta's upload limits: a type it does not take and a file over its kind's size are refused.
func TestUploadLimits(t *testing.T) {
	_, _, c := newFake(t, Options{})
	ctx := context.Background()
	for name, f := range map[string]struct {
		typ  string
		data []byte
	}{
		"gif":            {"image/gif", []byte("GIF89a")},
		"big png":        {"image/png", make([]byte, 5<<20+1)},
		"vorbis":         {"audio/ogg", []byte("OggS not opus at all, no header here")},
		"static sticker": {"image/webp", append([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), make([]byte, 100<<10)...)},
	} {
		if _, err := c.Upload(ctx, numberID, token, f.typ, "f", f.data); err == nil || !strings.Contains(err.Error(), "131053") {
			t.Errorf("%s: %v, want Meta's media upload error", name, err)
		}
	}
}

// Read receipts and typing indicators are answered {"success":true} and recorded; malformed ones
// and broken interactive messages are refused like Meta.
func TestReadTypingAndInteractiveChecks(t *testing.T) {
	s, hs, c := newFake(t, Options{})
	ctx := context.Background()
	if err := c.MarkRead(ctx, numberID, token, "wamid.A", false); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkRead(ctx, numberID, token, "wamid.B", true); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if len(calls) != 2 || calls[0].Type != "read" || calls[0].Read != "wamid.A" || calls[1].Type != "typing" || calls[1].Read != "wamid.B" {
		t.Fatalf("calls %+v", calls)
	}
	post := func(body string) int {
		req, _ := http.NewRequest("POST", hs.URL+"/v23.0/"+numberID+"/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, body := range []string{
		`{"messaging_product":"whatsapp","status":"delivered","message_id":"wamid.A"}`,
		`{"messaging_product":"whatsapp","status":"read"}`,
		`{"messaging_product":"whatsapp","status":"read","message_id":"wamid.A","typing_indicator":{"type":"audio"}}`,
		`{"messaging_product":"whatsapp","to":"5511999990001","type":"interactive","interactive":{"type":"button","body":{"text":"b"},
		  "action":{"buttons":[{"type":"reply","reply":{"id":"1","title":"a"}},{"type":"reply","reply":{"id":"1","title":"b"}}]}}}`,
		`{"messaging_product":"whatsapp","to":"5511999990001","type":"interactive","interactive":{"type":"list","body":{"text":"b"},
		  "action":{"button":"ver","sections":[{"rows":[{"id":"1","title":"` + strings.Repeat("t", 25) + `"}]}]}}}`,
	} {
		if code := post(body); code != 400 {
			t.Errorf("%s: %d, want 400", body, code)
		}
	}
	ok := whatsapp.InteractiveMessage{To: phone, Interactive: whatsapp.Interactive{Type: "list", Body: "b", Button: "ver",
		Sections: []whatsapp.ListSection{{Rows: []whatsapp.ListRow{{ID: "1", Title: "um"}}}}}}
	if _, err := c.Send(ctx, numberID, token, ok); err != nil {
		t.Fatalf("a valid list: %v", err)
	}
}
