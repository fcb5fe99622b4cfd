package whatsapp

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
)

// KindLimit is what Meta accepts for one kind of media: its types and the largest file
// ("Supported media types" of the Cloud API's media reference).
type KindLimit struct {
	Kind     MediaKind
	Types    []string
	MaxBytes int64
}

// Sizes Meta documents.
const (
	MB                    = 1 << 20
	KB                    = 1 << 10
	MaxStaticStickerBytes = 100 * KB
	MaxAnimatedSticker    = 500 * KB
)

// MediaLimits are Meta's per-kind limits. Audio/ogg is accepted only with the Opus codec (WhatsApp's
// voice notes); video only H.264 with AAC audio (not checked here: Meta refuses it on send).
var MediaLimits = []KindLimit{
	{MediaImage, []string{"image/jpeg", "image/png"}, 5 * MB},
	{MediaAudio, []string{"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, 16 * MB},
	{MediaVideo, []string{"video/mp4", "video/3gpp"}, 16 * MB},
	{MediaDocument, []string{"text/plain", "application/pdf", "application/msword",
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document", "application/vnd.ms-excel",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/vnd.ms-powerpoint",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation"}, 100 * MB},
	{MediaSticker, []string{"image/webp"}, MaxAnimatedSticker},
}

// LimitOf is the limit of a kind.
func LimitOf(kind MediaKind) (KindLimit, bool) {
	for _, l := range MediaLimits {
		if l.Kind == kind {
			return l, true
		}
	}
	return KindLimit{}, false
}

// KindOfType is the kind a media type is sent as by default (image/webp is a sticker), or "".
func KindOfType(mimeType string) MediaKind {
	for _, l := range MediaLimits {
		for _, t := range l.Types {
			if t == mimeType {
				return l.Kind
			}
		}
	}
	return ""
}

// NormalType lowers a media type and drops its parameters ("audio/ogg; codecs=opus" → "audio/ogg");
// "video/3gp", the name Meta's table uses, becomes video/3gpp.
func NormalType(t string) string {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(t))
	}
	if mt == "video/3gp" {
		mt = "video/3gpp"
	}
	return mt
}

// MediaProblem is why a file cannot be sent as a kind: TooLarge (413) or a type the kind does not
// take (415). Limit is the rule that applies, for the person sending.
type MediaProblem struct {
	TooLarge bool
	Limit    string
}

func (p *MediaProblem) Error() string { return p.Limit }

// CheckMedia checks a file against Meta's limits for kind; nil when Meta takes it.
func CheckMedia(kind MediaKind, mimeType string, data []byte) *MediaProblem {
	l, ok := LimitOf(kind)
	if !ok {
		return &MediaProblem{Limit: fmt.Sprintf("%q is not a kind of media; send image, audio, video, document or sticker", kind)}
	}
	typeOK := false
	for _, t := range l.Types {
		typeOK = typeOK || t == mimeType
	}
	if !typeOK {
		return &MediaProblem{Limit: fmt.Sprintf("%s accepts %s, not %s", kind, strings.Join(l.Types, ", "), orUnknown(mimeType))}
	}
	if mimeType == "audio/ogg" && !IsOggOpus(data) {
		return &MediaProblem{Limit: "audio/ogg is accepted only with the Opus codec (voice notes)"}
	}
	max := l.MaxBytes
	if kind == MediaSticker && !IsAnimatedWebP(data) {
		max = MaxStaticStickerBytes
	}
	if int64(len(data)) > max {
		what := string(kind)
		if kind == MediaSticker {
			what = "a static sticker"
			if max == MaxAnimatedSticker {
				what = "an animated sticker"
			}
		}
		return &MediaProblem{TooLarge: true, Limit: fmt.Sprintf("%s may be at most %s; this file is %s", what, Size(max), Size(int64(len(data))))}
	}
	return nil
}

func orUnknown(t string) string {
	if t == "" {
		return "a file of unknown type"
	}
	return t
}

// Size writes a byte count for people: "16 MB", "100 KB", "523 bytes".
func Size(n int64) string {
	switch {
	case n >= MB && n%MB == 0:
		return fmt.Sprintf("%d MB", n/MB)
	case n >= MB:
		return fmt.Sprintf("%.1f MB", float64(n)/MB)
	case n >= KB && n%KB == 0:
		return fmt.Sprintf("%d KB", n/KB)
	case n >= KB:
		return fmt.Sprintf("%.1f KB", float64(n)/KB)
	}
	return fmt.Sprintf("%d bytes", n)
}

// IsOggOpus reports whether data is an Ogg stream whose first packet is an Opus header (RFC 7845:
// the first page carries "OpusHead").
func IsOggOpus(data []byte) bool {
	if len(data) < 27 || !bytes.HasPrefix(data, []byte("OggS")) {
		return false
	}
	segments := int(data[26])
	start := 27 + segments
	return len(data) >= start+8 && bytes.Equal(data[start:start+8], []byte("OpusHead"))
}

// IsAnimatedWebP reports whether a WebP file is animated (an extended header with the animation
// flag).
func IsAnimatedWebP(data []byte) bool {
	if len(data) < 21 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WEBP" || string(data[12:16]) != "VP8X" {
		return false
	}
	return data[20]&0x02 != 0
}
