package outbound

import (
	"io"
	"mime"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/chatgate/chatgate/internal/auth"
	"github.com/chatgate/chatgate/internal/httpx"
)

func isMultipart(c *fiber.Ctx) bool {
	mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	return err == nil && mt == "multipart/form-data"
}

// readFile takes the form of a multipart reply: file (required), caption and kind (optional).
func readFile(c *fiber.Ctx) (File, error) {
	form, err := c.MultipartForm()
	if err != nil {
		return File{}, httpx.ErrBadRequest.WithMessage("the multipart form could not be read")
	}
	files := form.File["file"]
	if len(files) != 1 {
		return File{}, invalid(FieldError{Field: "file", Message: "send exactly one file"})
	}
	for k := range form.Value {
		if k != "caption" && k != "kind" {
			return File{}, invalid(FieldError{Field: k, Message: "is not a field of a file reply (file, caption, kind)"})
		}
	}
	fh := files[0]
	r, err := fh.Open()
	if err != nil {
		return File{}, httpx.ErrBadRequest.WithMessage("the file could not be read")
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return File{}, httpx.ErrBadRequest.WithMessage("the file could not be read")
	}
	value := func(k string) string {
		if v := form.Value[k]; len(v) > 0 {
			return strings.Clone(v[0])
		}
		return ""
	}
	return File{Name: strings.Clone(fh.Filename), MimeType: fh.Header.Get("Content-Type"), Data: data,
		Caption: value("caption"), Kind: value("kind")}, nil
}

func (h *Handler) read(c *fiber.Ctx) error {
	id := c.Params("id")
	if !validID(id) {
		return errBadID
	}
	marked, err := h.receipts.MarkRead(c.UserContext(), auth.Caller(c).Agent, strings.Clone(id))
	if err != nil {
		return httpError(err)
	}
	return c.JSON(fiber.Map{"marked": marked})
}
