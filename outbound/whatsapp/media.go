package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// MediaInfo is Meta's answer to GET /{version}/{media-id}: where to download the file (valid about
// five minutes, and only with the access token) and what it should be.
type MediaInfo struct {
	ID       string
	URL      string
	MimeType string
	SHA256   string // as Meta gives it (hex from this endpoint, base64 in webhooks)
	Size     int64  // file_size; -1 when Meta gave none
}

var mediaIDPattern = regexp.MustCompile(`^[0-9A-Za-z_.-]{1,128}$`)

// ValidMediaID reports whether id can be a Meta media id (and so a path segment).
func ValidMediaID(id string) bool { return mediaIDPattern.MatchString(id) }

// MediaURL looks a media id up (Retrieve Media URL). phoneNumberID, when set, makes Meta check the
// media belongs to that number. A failure is an *Error like Send's.
func (c *Client) MediaURL(ctx context.Context, phoneNumberID, token, mediaID string) (MediaInfo, error) {
	if !ValidMediaID(mediaID) {
		return MediaInfo{}, invalid("media id: not an id")
	}
	if !validToken(token) {
		return MediaInfo{}, invalid("access token: empty or not a bearer token")
	}
	u := c.base.JoinPath(c.version, mediaID)
	if phoneNumberID != "" {
		u.RawQuery = url.Values{"phone_number_id": {phoneNumberID}}.Encode()
	}
	raw, err := c.call(ctx, http.MethodGet, u.String(), token, "", nil)
	if err != nil {
		return MediaInfo{}, err
	}
	var r struct {
		ID       string          `json:"id"`
		URL      string          `json:"url"`
		MimeType string          `json:"mime_type"`
		SHA256   string          `json:"sha256"`
		FileSize json.RawMessage `json:"file_size"` // a string in Meta's examples, a number in some answers
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.URL == "" {
		return MediaInfo{}, &Error{Class: Transient, Message: "media lookup answer has no url"}
	}
	info := MediaInfo{ID: r.ID, URL: r.URL, MimeType: r.MimeType, SHA256: r.SHA256, Size: -1}
	if s := strings.Trim(string(r.FileSize), `"`); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			info.Size = n
		}
	}
	return info, nil
}

// Download opens a media URL from MediaURL with the token (Meta refuses it without). The caller
// closes the body; a failure is an *Error.
func (c *Client) Download(ctx context.Context, mediaURL, token string) (io.ReadCloser, error) {
	u, err := url.Parse(mediaURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, invalid("media url: want an absolute http(s) URL")
	}
	if !validToken(token) {
		return nil, invalid("access token: empty or not a bearer token")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, invalid("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		e := &Error{Class: Transient, Message: transportMessage(err), cause: err}
		e.redact(token)
		return nil, e
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
		e := responseError(resp.StatusCode, resp.Header, raw, c.now())
		e.redact(token)
		return nil, e
	}
	return resp.Body, nil
}

// Upload sends a file to Meta (POST /{version}/{phone-number-id}/media, multipart) and returns its
// media id, to send by id.
func (c *Client) Upload(ctx context.Context, phoneNumberID, token, mimeType, filename string, data []byte) (string, error) {
	if !digitRun(phoneNumberID, 1, 32) {
		return "", invalid("phone number id: want digits")
	}
	if !validToken(token) {
		return "", invalid("access token: empty or not a bearer token")
	}
	if mimeType == "" || strings.ContainsAny(mimeType, "\r\n\"") {
		return "", invalid("media type: empty or invalid")
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("messaging_product", "whatsapp")
	_ = w.WriteField("type", mimeType)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, safeFilename(filename)))
	h.Set("Content-Type", mimeType)
	part, _ := w.CreatePart(h)
	part.Write(data)
	w.Close()
	endpoint := c.base.JoinPath(c.version, phoneNumberID, "media").String()
	raw, err := c.call(ctx, http.MethodPost, endpoint, token, w.FormDataContentType(), &body)
	if err != nil {
		return "", err
	}
	var r struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &r) != nil || !ValidMediaID(r.ID) {
		return "", &Error{Class: Permanent, Message: "upload answer has no media id"}
	}
	return r.ID, nil
}

// MarkRead marks a customer's message read (blue ticks, and every earlier message with it); with
// typing, the customer also sees the business typing, until the reply or for 25 seconds.
func (c *Client) MarkRead(ctx context.Context, phoneNumberID, token, messageID string, typing bool) error {
	if !digitRun(phoneNumberID, 1, 32) {
		return invalid("phone number id: want digits")
	}
	if !validToken(token) {
		return invalid("access token: empty or not a bearer token")
	}
	if messageID == "" || strings.TrimSpace(messageID) != messageID || len(messageID) > 256 {
		return invalid("message id: not a message id")
	}
	req := map[string]any{"messaging_product": "whatsapp", "status": "read", "message_id": messageID}
	if typing {
		req["typing_indicator"] = map[string]string{"type": "text"}
	}
	body, _ := json.Marshal(req)
	endpoint := c.base.JoinPath(c.version, phoneNumberID, "messages").String()
	_, err := c.call(ctx, http.MethodPost, endpoint, token, "application/json", bytes.NewReader(body))
	return err
}

// call makes one Graph API request and returns the body of a 2xx answer; else an *Error.
func (c *Client) call(ctx context.Context, method, endpoint, token, contentType string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, endpoint, body)
	if err != nil {
		return nil, invalid("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		e := &Error{Class: Transient, Message: transportMessage(err), cause: err}
		e.redact(token)
		return nil, e
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := responseError(resp.StatusCode, resp.Header, raw, c.now())
		e.redact(token)
		return nil, e
	}
	if readErr != nil {
		return nil, &Error{HTTPStatus: resp.StatusCode, Class: Transient, Message: "unreadable answer", cause: readErr}
	}
	return raw, nil
}

// IsMediaGone reports whether a lookup or download failed because Meta no longer holds the media
// (an expired or deleted media id: "object does not exist", or 404/410).
func IsMediaGone(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.HTTPStatus == http.StatusNotFound || e.HTTPStatus == http.StatusGone ||
		(e.Code == CodeInvalidParameter && e.Subcode == 33) || e.Code == CodeMediaDownload
}

// CodeMediaDownload is Meta's "Media download error" (the media could not be fetched, e.g. expired).
const CodeMediaDownload = 131052

func safeFilename(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '/' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	if name == "" {
		return "file"
	}
	return name
}
