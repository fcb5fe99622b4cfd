package fakeapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/chatgate/chatgate/outbound/whatsapp"
)

// Media the fake holds, uploaded by the gateway or added by a test as a customer's file:
//
//	POST /{version}/{phone_number_id}/media   upload (multipart: messaging_product, file) → {"id"}
//	GET  /{version}/{media_id}                 lookup with a number's token → url, mime_type, sha256, file_size
//	GET  /_media/{media_id}                    download; the URL from the lookup, with the token
//
// and the admin API: POST /_fake/media {"phone_number_id","mime_type","data"(base64)} → {"id","sha256"};
// POST /_fake/media/{id}/expire; POST /_fake/media/{id}/corrupt; GET /_fake/media/{id} (counts).
type storedMedia struct {
	ID        string `json:"id"`
	Number    string `json:"phone_number_id"`
	MimeType  string `json:"mime_type"`
	Filename  string `json:"filename,omitempty"`
	SHA256    string `json:"sha256"` // hex, as the lookup answers
	Size      int    `json:"file_size"`
	Expired   bool   `json:"expired,omitempty"`
	Corrupt   bool   `json:"corrupt,omitempty"`
	Uploaded  bool   `json:"uploaded,omitempty"`
	Lookups   int    `json:"lookups"`
	Downloads int    `json:"downloads"`
	data      []byte
}

// MediaRecord is what the fake knows of a media id: who holds it and how often it was fetched.
type MediaRecord = storedMedia

// Data is the file's content.
func (m MediaRecord) Data() []byte { return m.data }

const maxUpload = 101 * whatsapp.MB

// AddMedia stores a file as a customer's media received on number and returns its media id (what
// a webhook would carry) and its sha256 in base64 (as webhooks give it).
func (s *Server) AddMedia(number, mimeType string, data []byte) (id, sha string) {
	m := s.putMedia(number, mimeType, "", data, false)
	sum := sha256.Sum256(data)
	return m.ID, base64.StdEncoding.EncodeToString(sum[:])
}

func (s *Server) putMedia(number, mimeType, filename string, data []byte, uploaded bool) *storedMedia {
	sum := sha256.Sum256(data)
	id := strconv.FormatInt(1e15+rand.Int64N(9e15), 10) // Meta's media ids are long decimal numbers
	m := &storedMedia{ID: id, Number: number, MimeType: mimeType, Filename: filename, SHA256: hex.EncodeToString(sum[:]),
		Size: len(data), Uploaded: uploaded, data: append([]byte(nil), data...)}
	s.mu.Lock()
	if s.media == nil {
		s.media = map[string]*storedMedia{}
	}
	s.media[id] = m
	s.mu.Unlock()
	return m
}

// ExpireMedia makes a media id unknown to lookups, as Meta's media is after its retention.
func (s *Server) ExpireMedia(id string) bool {
	return s.markMedia(id, func(m *storedMedia) { m.Expired = true })
}

// CorruptMedia makes downloads of id answer other bytes than its sha256 says.
func (s *Server) CorruptMedia(id string) bool {
	return s.markMedia(id, func(m *storedMedia) { m.Corrupt = true })
}

func (s *Server) markMedia(id string, f func(*storedMedia)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[id]
	if ok {
		f(m)
	}
	return ok
}

// Media is the record of a media id.
func (s *Server) Media(id string) (MediaRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[id]
	if !ok {
		return MediaRecord{}, false
	}
	return *m, true
}

// Uploads are the files the gateway uploaded, in no particular order.
func (s *Server) Uploads() []MediaRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []MediaRecord
	for _, m := range s.media {
		if m.Uploaded {
			out = append(out, *m)
		}
	}
	return out
}

// bearer checks the request's token against the number's, or any number's when number is "".
func (s *Server) bearer(r *http.Request, number string) *apiError {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return &apiError{status: 401, code: whatsapp.CodeAccessTokenExpired, message: "Invalid OAuth access token - Cannot parse access token"}
	}
	for id, want := range s.opts.Numbers {
		if (number == "" || id == number) && subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1 {
			return nil
		}
	}
	return &apiError{status: 401, code: whatsapp.CodeAccessTokenExpired, message: "Invalid OAuth access token"}
}

var objectMissing = &apiError{status: 400, code: whatsapp.CodeInvalidParameter, subcode: 33,
	message: "Unsupported get request. Object with ID does not exist, cannot be loaded due to missing permissions, or does not support this operation"}

// serveUpload is POST /{version}/{phone_number_id}/media.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, number string) {
	if _, ok := s.opts.Numbers[number]; !ok {
		writeError(w, objectMissing)
		return
	}
	if e := s.bearer(r, number); e != nil {
		writeError(w, e)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		writeError(w, badParam(whatsapp.CodeInvalidParameter, "upload as multipart/form-data"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		writeError(w, badParam(whatsapp.CodeInvalidParameter, "unreadable multipart body"))
		return
	}
	defer r.MultipartForm.RemoveAll()
	if r.FormValue("messaging_product") != "whatsapp" {
		writeError(w, badParam(whatsapp.CodeMissingParameter, "messaging_product must be whatsapp"))
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, badParam(whatsapp.CodeMissingParameter, "the parameter file is required"))
		return
	}
	data, _ := io.ReadAll(f)
	f.Close()
	typ := whatsapp.NormalType(hdr.Header.Get("Content-Type"))
	kind := whatsapp.KindOfType(typ)
	if kind == "" {
		writeError(w, &apiError{status: 400, code: 131053, message: "Media upload error", details: "unsupported file type " + typ})
		return
	}
	if kind == whatsapp.MediaImage || kind == whatsapp.MediaSticker || kind == whatsapp.MediaAudio ||
		kind == whatsapp.MediaVideo || kind == whatsapp.MediaDocument {
		if p := whatsapp.CheckMedia(kind, typ, data); p != nil {
			writeError(w, &apiError{status: 400, code: 131053, message: "Media upload error", details: p.Limit})
			return
		}
	}
	m := s.putMedia(number, typ, hdr.Filename, data, true)
	writeJSON(w, http.StatusOK, map[string]string{"id": m.ID})
}

// serveMediaInfo is GET /{version}/{media_id}.
func (s *Server) serveMediaInfo(w http.ResponseWriter, r *http.Request, id string) {
	number := r.URL.Query().Get("phone_number_id")
	if e := s.bearer(r, number); e != nil {
		writeError(w, e)
		return
	}
	s.mu.Lock()
	m, ok := s.media[id]
	if ok && !m.Expired && (number == "" || m.Number == number) {
		m.Lookups++
	} else {
		ok = false
	}
	var info map[string]any
	if ok {
		info = map[string]any{"messaging_product": "whatsapp", "id": m.ID, "mime_type": m.MimeType, "sha256": m.SHA256,
			"file_size": strconv.Itoa(m.Size), "url": "http://" + r.Host + "/_media/" + m.ID}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, objectMissing)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// serveDownload is GET /_media/{media_id}: the file, to any number's token (Meta's URLs are not
// public: a plain GET without the token is refused).
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request, id string) {
	if e := s.bearer(r, ""); e != nil {
		writeError(w, e)
		return
	}
	s.mu.Lock()
	m, ok := s.media[id]
	var data []byte
	var typ string
	if ok && !m.Expired {
		m.Downloads++
		data, typ = m.data, m.MimeType
		if m.Corrupt {
			data = append([]byte("corrupted:"), data...)
		}
	} else {
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// registerMediaAdmin mounts the media part of the admin API.
func (s *Server) registerMediaAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /_fake/media", s.admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			PhoneNumberID string `json:"phone_number_id"`
			MimeType      string `json:"mime_type"`
			Data          []byte `json:"data"`
		}
		if json.NewDecoder(io.LimitReader(r.Body, maxUpload)).Decode(&req) != nil || req.MimeType == "" {
			adminError(w, http.StatusBadRequest, "bad_request", "want {phone_number_id, mime_type, data (base64)}")
			return
		}
		id, sha := s.AddMedia(req.PhoneNumberID, req.MimeType, req.Data)
		writeJSON(w, http.StatusCreated, map[string]string{"id": id, "sha256": sha})
	}))
	mux.HandleFunc("GET /_fake/media/{id}", s.admin(func(w http.ResponseWriter, r *http.Request) {
		m, ok := s.Media(r.PathValue("id"))
		if !ok {
			adminError(w, http.StatusNotFound, "not_found", "no media with that id")
			return
		}
		writeJSON(w, http.StatusOK, m)
	}))
	for _, action := range []string{"expire", "corrupt"} {
		mux.HandleFunc("POST /_fake/media/{id}/"+action, s.admin(func(w http.ResponseWriter, r *http.Request) {
			f := s.ExpireMedia
			if action == "corrupt" {
				f = s.CorruptMedia
			}
			if !f(r.PathValue("id")) {
				adminError(w, http.StatusNotFound, "not_found", "no media with that id")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
	}
}
