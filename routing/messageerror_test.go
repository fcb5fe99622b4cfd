package routing

import "testing"

// Describe says Meta's words once: code, title, then the details or else the message, and neither
// when it only repeats the title.
func TestMessageErrorDescribe(t *testing.T) {
	cases := []struct {
		e    MessageError
		want string
	}{
		{MessageError{Code: 131047, Title: "Re-engagement message", Message: "(#131047) Re-engagement message",
			Details: "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
			"131047 Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
		{MessageError{Code: 131049, Title: "Message not delivered", Details: "Message not delivered"}, "131049 Message not delivered"},
		{MessageError{Code: 131016, Title: "Service unavailable", Message: "(#131016) Service unavailable"}, "131016 Service unavailable"},
		{MessageError{Code: 100, Title: "Invalid parameter", Message: "(#100) Param text['body'] is required"},
			"100 Invalid parameter: (#100) Param text['body'] is required"},
		{MessageError{Title: "Not sent"}, "Not sent"},
		{MessageError{Code: 131000}, "131000"},
	}
	for _, c := range cases {
		if got := c.e.Describe(); got != c.want {
			t.Errorf("%+v:\n got  %q\n want %q", c.e, got, c.want)
		}
	}
}
