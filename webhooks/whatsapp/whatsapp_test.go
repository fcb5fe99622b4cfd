package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
	"github.com/chatgate/chatgate/webhooks"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func header(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestVerify(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	p := New("current-secret", "previous-secret", "tok")
	good := simulate.SignWhatsApp(body, "current-secret")
	for _, tc := range []struct {
		name string
		sig  string
		body []byte
		p    *Provider
		want error
	}{
		{"current secret", good, body, p, nil},
		{"previous secret during rotation", simulate.SignWhatsApp(body, "previous-secret"), body, p, nil},
		{"previous secret after rotation ended", simulate.SignWhatsApp(body, "previous-secret"), body, New("current-secret", "", "tok"), webhooks.ErrBadSignature},
		{"no signature", "", body, p, webhooks.ErrUnsigned},
		{"no sha256= prefix", strings.TrimPrefix(good, "sha256="), body, p, webhooks.ErrUnsigned},
		{"sha1 header style", "sha1=" + strings.TrimPrefix(good, "sha256="), body, p, webhooks.ErrUnsigned},
		{"not hex", "sha256=" + strings.Repeat("zz", 32), body, p, webhooks.ErrUnsigned},
		{"short", good[:20], body, p, webhooks.ErrUnsigned},
		{"wrong secret", simulate.SignWhatsApp(body, "someone-else"), body, p, webhooks.ErrBadSignature},
		{"body changed after signing", good, append(bytes.Clone(body), ' '), p, webhooks.ErrBadSignature},
		{"upper-case hex still the same digest", "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body, p, nil},
		{"no secret configured", good, body, New("", "", "tok"), webhooks.ErrBadSignature},
	} {
		err := tc.p.Verify(header(map[string]string{"X-Hub-Signature-256": tc.sig}), tc.body)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestHandshake(t *testing.T) {
	p := New("s", "", "verify-me")
	for _, tc := range []struct {
		name  string
		query map[string]string
		ok    bool
	}{
		{"valid", map[string]string{"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}, true},
		{"wrong token", map[string]string{"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}, false},
		{"wrong mode", map[string]string{"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "1"}, false},
		{"nothing", map[string]string{}, false},
	} {
		got, ok := p.Handshake(header(tc.query))
		if ok != tc.ok || (ok && got != tc.query["hub.challenge"]) {
			t.Errorf("%s: got %q %v, want ok=%v", tc.name, got, ok, tc.ok)
		}
	}
	if _, ok := New("s", "", "").Handshake(header(map[string]string{"hub.mode": "subscribe", "hub.verify_token": ""})); ok {
		t.Error("an empty configured token verified the endpoint")
	}
}

// TestGolden parses every payload under testdata/ and compares the normalized form with its golden file.
func TestGolden(t *testing.T) {
	files := testutil.Fixtures(t, "webhooks", "whatsapp", "testdata", "*.json")
	var inputs []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".golden.json") {
			inputs = append(inputs, f)
		}
	}
	if len(inputs) < 15 {
		t.Fatalf("found %d payloads under testdata, want every kind", len(inputs))
	}
	p := New("s", "", "t")
	for _, in := range inputs {
		raw, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		n, err := p.Parse(raw)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		got, _ := json.MarshalIndent(n, "", "  ")
		golden := strings.TrimSuffix(in, ".json") + ".golden.json"
		if *update {
			if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%s: %v (run go test -update once)", golden, err)
		}
		if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
			t.Errorf("%s: normalized form differs from %s:\n%s", in, golden, got)
		}
	}
}

func TestParseFacts(t *testing.T) {
	p := New("s", "", "t")
	parse := func(name string) webhooks.Notification {
		n, err := p.Parse(testutil.Fixture(t, "webhooks", "whatsapp", "testdata", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if m := parse("user_id_only").Messages[0]; m.Contact.ID != "BR.1502576394655843" || m.Contact.Phone != "" || m.Contact.Name != "Bia" {
		t.Errorf("user_id-only contact: got %+v, want keyed by user_id without a phone", m.Contact)
	}
	if m := parse("user_id_and_phone").Messages[0]; m.Contact.ID != "BR.99887766554433" || m.Contact.Phone != "+5511977776666" {
		t.Errorf("contact with both: got %+v, want keyed by user_id with the phone kept", m.Contact)
	}
	n := parse("multi_entry")
	if len(n.Messages) != 2 || len(n.Statuses) != 1 || len(n.Skipped) != 1 {
		t.Fatalf("multi entry: got %d messages %d statuses %d skipped, want 2 1 1", len(n.Messages), len(n.Statuses), len(n.Skipped))
	}
	if n.Messages[1].Contact.Name != "Rui" || n.Statuses[0].EntryPoint != "999000111" {
		t.Errorf("multi entry: contacts or entry points mixed up: %+v %+v", n.Messages[1].Contact, n.Statuses[0])
	}
	if m := parse("future_kind").Messages[0]; m.Kind != "poll_vote" || !bytes.Contains(m.Raw, []byte(`"poll_id":"p1"`)) {
		t.Errorf("unknown kind: got kind %q raw %s, want it kept with its JSON", m.Kind, m.Raw)
	}
	st := parse("statuses").Statuses
	if len(st) != 4 || st[3].State != "failed" || st[3].Errors[0].Code != 131047 || st[0].PricingCategory != "utility" {
		t.Errorf("statuses: got %+v", st)
	}
	if m := parse("location").Messages[0]; m.Location.Latitude != -23.565 {
		t.Errorf("location: got %+v", m.Location)
	}
}

// A changed number or user id without Meta's body is still a note the agent can read, in
// Portuguese and English.
func TestIdentityNoteWithoutMetasBody(t *testing.T) {
	p := New("s", "", "t")
	for _, tc := range []struct{ fixture, pt, en string }{
		{"system_user_changed_number", "mudou de número", "changed their WhatsApp number"},
		{"system_user_changed_user_id", "identificador do cliente", "WhatsApp identifier changed"},
	} {
		raw := testutil.Fixture(t, "webhooks", "whatsapp", "testdata", tc.fixture+".json")
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		value := body["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)
		delete(value["messages"].([]any)[0].(map[string]any)["system"].(map[string]any), "body")
		raw, _ = json.Marshal(body)
		n, err := p.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Messages) != 1 || !n.Messages[0].Notice || !strings.Contains(n.Messages[0].Text, tc.pt) || !strings.Contains(n.Messages[0].Text, tc.en) {
			t.Errorf("%s without a body: %+v, want a note in Portuguese and English", tc.fixture, n.Messages)
		}
	}
}

// TestParseKeepsWhatItDoesNotUnderstand: times as numbers or strings, a message whose fields have
// unexpected types (kept raw, kind "raw"), a known kind without its object (kept raw), the change's
// errors on a message without its own, and a status of a shape it cannot read skipped alone.
func TestParseKeepsWhatItDoesNotUnderstand(t *testing.T) {
	p := New("s", "", "t")
	body := `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"100"},
		"contacts":[{"profile":{"name":"Bia"},"wa_id":"5511999990001"}],
		"messages":[
			{"from":"5511999990001","id":"m-num","timestamp":1750000000,"type":"text","text":{"body":"oi"}},
			{"from":"5511999990001","id":"m-odd","timestamp":"1750000001","type":"text","text":{"body":["not","a","string"]}},
			{"from":"5511999990001","id":"m-bare","timestamp":"1750000002","type":"interactive"}],
		"statuses":[
			{"id":"s-num","status":"read","timestamp":1750000003,"recipient_id":"5511999990001"},
			{"id":"s-odd","status":{"x":1},"timestamp":"1750000004"}],
		"errors":[{"code":"131000","title":"Something went wrong","message":"Something went wrong","error_data":{"details":"Unsupported webhook payload"}}]}}]}]}`
	n, err := p.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Messages) != 3 || len(n.Statuses) != 1 || len(n.Skipped) != 1 {
		t.Fatalf("got %d messages %d statuses %d skipped, want 3 1 1: %+v", len(n.Messages), len(n.Statuses), len(n.Skipped), n)
	}
	num, odd, bare := n.Messages[0], n.Messages[1], n.Messages[2]
	if num.Kind != "text" || num.Text != "oi" || !num.At.Equal(time.Unix(1750000000, 0)) || num.Raw != nil {
		t.Errorf("numeric timestamp: %+v", num)
	}
	if odd.Kind != "raw" || !odd.Unrecognized || !bytes.Contains(odd.Raw, []byte(`["not","a","string"]`)) ||
		!odd.At.Equal(time.Unix(1750000001, 0)) || odd.Contact.Phone != "+5511999990001" {
		t.Errorf("message of an unexpected shape: %+v raw %s, want kind raw with its JSON, time and sender", odd, odd.Raw)
	}
	if bare.Kind != "interactive" || bare.Raw == nil || len(bare.Errors) != 1 || bare.Errors[0].Code != 131000 || bare.Errors[0].Details != "Unsupported webhook payload" {
		t.Errorf("interactive without its object: %+v, want it raw with the change's error 131000", bare)
	}
	if num.Errors == nil || num.Errors[0].Code != 131000 {
		t.Errorf("the change's errors belong to every message without its own: %+v", num.Errors)
	}
	if !n.Statuses[0].At.Equal(time.Unix(1750000003, 0)) {
		t.Errorf("status with a numeric timestamp: %+v", n.Statuses[0])
	}
	// A contact of an unexpected shape costs nothing but itself.
	n, err = p.Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"100"},"contacts":[{"profile":{"name":["x"]},"wa_id":"5511999990001"}],
		"messages":[{"from":"5511999990001","id":"m-1","timestamp":"1750000000","type":"text","text":{"body":"oi"}}],
		"statuses":[{"id":"s-1","status":"read","timestamp":"1750000003"}]}}]}]}`))
	if err != nil || len(n.Messages) != 1 || n.Messages[0].Text != "oi" || n.Messages[0].Contact.Phone != "+5511999990001" ||
		len(n.Statuses) != 1 || n.Messages[0].EntryPoint != "100" {
		t.Errorf("change with an odd contact: %v %+v, want its message and status kept", err, n)
	}
	big := `{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[
		{"from":"1","id":"m-big","timestamp":"1","type":"future","future":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}]}}]}]}`
	n, err = p.Parse([]byte(big))
	if err != nil || len(n.Messages) != 1 || n.Messages[0].Raw != nil || !n.Messages[0].RawOmitted {
		t.Errorf("raw over the bound: %v %+v, want the message kept with raw omitted", err, n.Messages)
	}
}

// TestErrorDetailsOutsideErrorData: Meta's older notifications (an "unknown" message with error
// 131051, as the netflie fixture in the corpus has it) put details beside code and title instead of
// in error_data; they are the error's details all the same, on a message and on a status.
func TestErrorDetailsOutsideErrorData(t *testing.T) {
	p := New("s", "", "t")
	n, err := p.Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"100"},
		"messages":[{"from":"5511999990001","id":"m-1","timestamp":"1669233778","type":"unknown",
			"errors":[{"code":131051,"details":"Message type is not currently supported","title":"Unsupported message type"}]}],
		"statuses":[{"id":"s-1","status":"failed","timestamp":"1669233779","recipient_id":"5511999990001",
			"errors":[{"code":131026,"title":"Message undeliverable","details":"beside","error_data":{"details":"inside"}}]}]}}]}]}`))
	if err != nil || len(n.Messages) != 1 || len(n.Statuses) != 1 {
		t.Fatalf("got %+v %v, want one message and one status", n, err)
	}
	if e := n.Messages[0].Errors; len(e) != 1 || e[0].Code != 131051 || e[0].Details != "Message type is not currently supported" {
		t.Errorf("message errors %+v, want 131051 with its details", e)
	}
	if e := n.Statuses[0].Errors; len(e) != 1 || e[0].Details != "inside" {
		t.Errorf("status errors %+v, want error_data's details first", e)
	}
}

func TestParseRejects(t *testing.T) {
	p := New("s", "", "t")
	for _, tc := range []struct {
		name string
		body string
		want error
	}{
		{"not JSON", `{"object":`, webhooks.ErrInvalidJSON},
		{"another object", `{"object":"page","entry":[]}`, webhooks.ErrForeignObject},
		{"entry of the wrong type", `{"object":"whatsapp_business_account","entry":"x"}`, webhooks.ErrNotUnderstood},
	} {
		if _, err := p.Parse([]byte(tc.body)); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	n, err := p.Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"type":"text"}]}}]}]}`))
	if err != nil || len(n.Messages) != 0 || len(n.Skipped) != 1 {
		t.Errorf("message without an id: got %+v %v, want skipped", n, err)
	}
}

// TestMetaExamplesParse reads every example notification of Meta's OpenAPI description.
func TestMetaExamplesParse(t *testing.T) {
	examples := testutil.MetaSpec(t, "post", "/whatsapp/webhooks").Requests
	if len(examples) < 16 {
		t.Fatalf("found %d examples, want 16", len(examples))
	}
	p := New("s", "", "t")
	for name, ex := range examples {
		body, err := json.Marshal(ex)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n, err := p.Parse(body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(n.Messages)+len(n.Statuses)+len(n.Skipped) == 0 {
			t.Errorf("%s: parsed into nothing", name)
		}
		if strings.HasPrefix(name, "Group") {
			if len(n.Messages) != 0 || len(n.Skipped) == 0 {
				t.Errorf("%s: group events should be skipped, got %+v", name, n)
			}
			continue
		}
		if len(n.Messages) != 1 || n.Messages[0].ID == "" || n.Messages[0].EntryPoint == "" {
			t.Errorf("%s: got %+v, want one message with id and entry point", name, n.Messages)
		}
	}
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"object":"whatsapp_business_account"}`)
	f.Add(simulate.SignWhatsApp(body, "k"), body)
	f.Add("sha256=", []byte{})
	f.Add("sha256=zz", []byte("x"))
	p := New("k", "old", "t")
	f.Fuzz(func(t *testing.T, sig string, body []byte) {
		err := p.Verify(header(map[string]string{"X-Hub-Signature-256": sig}), body)
		if err == nil && sig != simulate.SignWhatsApp(body, "k") && sig != simulate.SignWhatsApp(body, "old") &&
			!strings.EqualFold(sig, simulate.SignWhatsApp(body, "k")) && !strings.EqualFold(sig, simulate.SignWhatsApp(body, "old")) {
			t.Fatalf("accepted a signature that is not the body's: %q", sig)
		}
	})
}

func FuzzParse(f *testing.F) {
	files := testutil.Fixtures(f, "webhooks", "whatsapp", "testdata", "*.json")
	files = append(files, testutil.Fixtures(f, "testdata", "whatsapp", "*.json")...)
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil && !strings.HasSuffix(file, ".golden.json") {
			f.Add(raw)
		}
	}
	p := New("k", "", "t")
	f.Fuzz(func(t *testing.T, body []byte) {
		// the reused notification, after every other input, reads as a new one
		if got, ok := parseTyped(body); ok {
			want, _ := parseTypedInto(body, new(typedNotification))
			if g, w := mustMarshal(t, got), mustMarshal(t, want); !bytes.Equal(g, w) {
				t.Fatalf("reused\n%s\nnew\n%s", g, w)
			}
		}
		n, err := p.Parse(body)
		if err != nil {
			return
		}
		if _, err := json.Marshal(n); err != nil {
			t.Fatalf("parsed notification does not marshal: %v", err)
		}
		for _, m := range n.Messages {
			if m.ID == "" || m.Channel != Channel {
				t.Fatalf("message without id or channel: %+v", m)
			}
			// the stored payload, written by hand for plain messages, is the encoder's
			if got, want := m.Inbound().Payload, mustMarshal(t, m); !bytes.Equal(got, want) {
				t.Fatalf("payload\n%s\nwant\n%s", got, want)
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := gojson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseTypedIsParseParts: on every fixture and Meta example the one-pass parser accepts, it
// gives what the part-by-part parser gives; it accepts the plain messages the intake sees most.
func TestParseTypedIsParseParts(t *testing.T) {
	bodies := map[string][]byte{}
	files := testutil.Fixtures(t, "webhooks", "whatsapp", "testdata", "*.json")
	files = append(files, testutil.Fixtures(t, "testdata", "whatsapp", "*.json")...)
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil && !strings.HasSuffix(file, ".golden.json") && !strings.HasSuffix(file, ".want.json") {
			bodies[file] = raw
		}
	}
	for name, ex := range testutil.MetaSpec(t, "post", "/whatsapp/webhooks").Requests {
		bodies[name], _ = json.Marshal(ex)
	}
	bodies["simulated text"] = simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "1", From: "+5511999990001", Name: "Maria", Text: "Oi"})
	bodies["simulated image"] = simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "1", From: "+5511999990001", ImageID: "m1", Caption: "foto"})
	typed := 0
	for name, body := range bodies {
		got, ok := parseTyped(body)
		if !ok {
			continue
		}
		typed++
		want, err := parseParts(body)
		if err != nil {
			t.Errorf("%s: one pass read it, part by part failed: %v", name, err)
			continue
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) || len(got.Skipped) != 0 {
			t.Errorf("%s: one pass gives\n%s\npart by part\n%s", name, g, w)
		}
		for i := range got.Messages { // fields the JSON form leaves out
			if got.Messages[i].Unrecognized != want.Messages[i].Unrecognized || got.Messages[i].Sender != want.Messages[i].Sender {
				t.Errorf("%s: message %d differs outside its JSON", name, i)
			}
		}
	}
	if _, ok := parseTyped(bodies["simulated text"]); !ok || typed < 10 {
		t.Errorf("the one-pass parser read %d of %d bodies, the simulated text message among them: %v", typed, len(bodies), ok)
	}
	t.Logf("one pass read %d of %d bodies", typed, len(bodies))
}

// TestParseTypedAfterAnother: a notification read into the reused one, after any other, reads as
// into a new one (nothing of the other is left in it).
func TestParseTypedAfterAnother(t *testing.T) {
	var bodies [][]byte
	files := testutil.Fixtures(t, "webhooks", "whatsapp", "testdata", "*.json")
	files = append(files, testutil.Fixtures(t, "testdata", "whatsapp", "*.json")...)
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil && !strings.HasSuffix(file, ".golden.json") && !strings.HasSuffix(file, ".want.json") {
			bodies = append(bodies, raw)
		}
	}
	bodies = append(bodies, simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "1", From: "+5511999990001", Name: "Maria", Text: "Oi"}),
		[]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"x","type":"text","text":{"body":"a"}},`+
			`{"id":"y","type":"text","text":{"body":"b"}},{"id":"z","type":"text","text":{"body":"c"}},{"id":"w","type":"text","text":{"body":"d"}},`+
			`{"id":"v","type":"text","text":{"body":"e"}}]}}]}]}`), []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}`))
	for _, b := range bodies {
		want, wantOK := parseTypedInto(b, new(typedNotification))
		w := mustMarshal(t, want)
		for _, a := range bodies {
			n := new(typedNotification)
			_, _ = parseTypedInto(a, n)
			n.reset()
			got, ok := parseTypedInto(b, n)
			if g := mustMarshal(t, got); ok != wantOK || !bytes.Equal(g, w) {
				t.Fatalf("after\n%s\n%s reads\n%s (%v)\nwant\n%s (%v)", a, b, g, ok, w, wantOK)
			}
		}
	}
}

func BenchmarkVerifyAndParse(b *testing.B) {
	body := simulate.WhatsAppNotification(simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: "+5511999990001", Name: "Maria", Text: "Oi, meu pedido chegou?"})
	h := header(map[string]string{"X-Hub-Signature-256": simulate.SignWhatsApp(body, "k")})
	p := New("k", "", "t")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.Verify(h, body); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnknownTypeIsMetasNotOurs: type "unknown" is Meta's older name for a message it does not support
// (error 131051): kept raw like "unsupported", not flagged as a kind this parser does not know; a
// message without any type is.
func TestUnknownTypeIsMetasNotOurs(t *testing.T) {
	p := New("s", "", "t")
	n, err := p.Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"100"},
		"messages":[{"from":"5511999990001","id":"m-1","timestamp":"1669233778","type":"unknown","errors":[{"code":131051,"title":"Unsupported message type"}]},
			{"from":"5511999990001","id":"m-2","timestamp":"1669233779"}]}}]}]}`))
	if err != nil || len(n.Messages) != 2 {
		t.Fatalf("got %+v %v, want two messages", n, err)
	}
	if m := n.Messages[0]; m.Kind != "unknown" || m.Unrecognized || len(m.Raw) == 0 {
		t.Errorf("type unknown: kind %q unrecognized %v raw %d bytes; want kind unknown, recognised, kept raw", m.Kind, m.Unrecognized, len(m.Raw))
	}
	if m := n.Messages[1]; m.Kind != "unknown" || !m.Unrecognized || len(m.Raw) == 0 {
		t.Errorf("no type: kind %q unrecognized %v raw %d bytes; want kind unknown, unrecognised, kept raw", m.Kind, m.Unrecognized, len(m.Raw))
	}
}
