package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatgate/chatgate/internal/redistest"
	"github.com/chatgate/chatgate/internal/simulate"
	"github.com/chatgate/chatgate/internal/testutil"
)

// shotOf saves a screenshot of one element (a chart).
func (b *browser) shotOf(name, sel string) {
	b.t.Helper()
	b.n++
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot of %s: %v", sel, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// The Reports page: a supervisor reads today's conversations and presence, the three charts are
// drawn from them, the CSV comes with its byte-order mark, and the page passes axe. Agents, queues,
// channels and dispositions are named as people know them, not by their ids.
func TestReportsPageInTheBrowser(t *testing.T) {
	fake := startFakeWhatsApp(t)
	cfg := exampleConfig(t, map[string]string{"CHATGATE_REDIS_URL": redistest.URL(t), "CHATGATE_WHATSAPP_API_BASE_URL": fake.URL()})
	tg := startTestGateway(t, cfg, nil)
	ana, bruno := mintFor(t, cfg, "ana"), mintFor(t, cfg, "bruno")
	put := func(tok, ch, body string) {
		t.Helper()
		if code, raw := do(t, "PUT", tg.base+"/v1/agents/me/channels/"+ch, tok, strings.NewReader(body)); code != 200 {
			t.Fatalf("%s %s: %d %s", ch, body, code, raw)
		}
	}
	put(bruno, "whatsapp", `{"state":"online"}`)
	put(bruno, "whatsapp", `{"state":"paused","reason":"lunch"}`)
	put(ana, "whatsapp", `{"state":"online"}`)
	for i, name := range []string{"Maria", "João", "Rui"} {
		postWhatsApp(t, tg.base, cfg, simulate.WhatsAppMessage{PhoneNumberID: "100200300", From: fmt.Sprintf("+551199999000%d", i+1), Name: name, Text: "Oi"})
	}
	var cards []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	testutil.EventuallyNoError(t, 10*time.Second, "three cards offered to ana", func() error {
		_, raw := do(t, "GET", tg.base+"/v1/agents/me/cards", ana, nil)
		var body struct {
			Cards []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"cards"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return err
		}
		if len(body.Cards) != 3 {
			return fmt.Errorf("%d cards", len(body.Cards))
		}
		cards = body.Cards
		return nil
	})
	sue := cliToken(t, "sue", "supervisor")
	for i, c := range cards {
		if i < 2 {
			if code, raw := do(t, "POST", tg.base+"/v1/cards/"+c.ID+"/accept", ana, nil); code != 200 {
				t.Fatalf("accept: %d %s", code, raw)
			}
			var body io.Reader
			if i == 0 {
				body = strings.NewReader(`{"disposition":"resolved"}`)
			}
			if code, raw := do(t, "POST", tg.base+"/v1/cards/"+c.ID+"/close", ana, body); code != 200 {
				t.Fatalf("close: %d %s", code, raw)
			}
			continue
		}
		// The third customer gives up before anyone answers: a supervisor closes it.
		if code, raw := do(t, "POST", tg.base+"/v1/cards/"+c.ID+"/close", sue, nil); code != 200 {
			t.Fatalf("supervisor's close: %d %s", code, raw)
		}
	}

	b := newBrowser(t)
	loc, _ := time.LoadLocation(cfg.Reports.Timezone)
	today := time.Now().In(loc).Format("2006-01-02")
	b.run("open the page", chromedp.Navigate(tg.base+"/reports/?from="+today))
	b.type_("paste the token", "#signin-form textarea[name=token]", sue)
	b.click("sign in", "#signin-form button[type=submit]")
	b.until("the summary's total", `document.querySelector('#summary tfoot th')?.textContent === 'Total'
		&& document.querySelectorAll('#summary tfoot td')[0].textContent === '3'
		&& document.querySelector('#summary tbody tr[data-key="sales"]') !== null`)
	b.until("the hours chart stacks 2 handled and 1 abandoned", `document.querySelectorAll('#chart-hours rect[data-outcome="handled"]').length >= 1
		&& [...document.querySelectorAll('#chart-hours rect[data-outcome="abandoned"]')].length >= 1
		&& document.querySelector('#chart-hours svg').getAttribute('aria-label').startsWith('3 conversations')`)
	b.until("the wait chart", `document.querySelectorAll('#chart-wait rect[data-bucket]').length === 8
		&& document.querySelector('#chart-wait svg').getAttribute('role') === 'img'`)
	b.until("each agent's day", `document.querySelector('#chart-timeline g[data-agent="ana"] rect[data-state="online"]') !== null
		&& document.querySelector('#chart-timeline g[data-agent="bruno"] rect[data-state="paused"]') !== null
		&& document.querySelector('#chart-timeline g[data-agent="carla"] rect[data-state="offline"]') !== null
		&& document.querySelector('#chart-timeline .legend').textContent.includes('Paused — Lunch')`)
	b.until("the presence table", `document.querySelector('#presence tr[data-key="bruno"] td:nth-of-type(4)')?.textContent === '1'`)
	b.until("the listing, contacts masked for a supervisor", `document.querySelectorAll('#listing tbody tr').length === 3
		&& [...document.querySelectorAll('#listing tbody tr td:nth-child(5)')].every((td) => td.textContent.includes('•'))
		&& document.querySelectorAll('#listing td[data-outcome="abandoned"]').length === 1
		&& document.querySelector('#page').textContent === '1–3 of 3'`)
	b.until("names, not ids: queue, agent, channel, disposition", `document.querySelector('#summary tbody tr[data-key="sales"] th').textContent === 'Sales'
		&& document.querySelector('#presence tr[data-key="bruno"] th').textContent === 'Bruno'
		&& [...document.querySelectorAll('#listing tbody tr')].every((tr) => tr.children[1].textContent === 'WhatsApp' && tr.children[2].textContent === 'Sales')
		&& [...document.querySelectorAll('#listing tbody tr')].filter((tr) => tr.children[3].textContent === 'Ana').length === 2
		&& [...document.querySelectorAll('#listing tbody tr')].some((tr) => tr.children[12].textContent === 'Resolved')
		&& [...document.querySelector('#filters [name=channel]').options].map((o) => o.textContent).join() === 'All,WebChat,WhatsApp'`)
	b.axe("reports")
	b.shot("reports")
	b.shotOf("chart-hours", "#chart-hours")
	b.shotOf("chart-wait", "#chart-wait")
	b.shotOf("chart-timeline", "#chart-timeline")

	// The CSV the download button fetches: BOM, one header row, three rows.
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const res = await fetch('/v1/reports/conversations?from=`+today+`&format=csv', {headers: {Authorization: 'Bearer ' + chatgate.token()}});
		const bytes = new Uint8Array(await res.arrayBuffer());
		const text = new TextDecoder().decode(bytes.slice(3));
		return [bytes[0], bytes[1], bytes[2]].join(',') + '|' + res.headers.get('Content-Disposition').startsWith('attachment') + '|' + text.trim().split('\n').length;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || got != "239,187,191|true|4" {
		t.Errorf("CSV: %s (%v), want the BOM, an attachment and 4 lines", got, err)
	}

	// In Portuguese.
	b.eval("switch to Portuguese", `(() => { const s = document.querySelector('#lang'); s.value = 'pt-BR'; s.dispatchEvent(new Event('change')); return s.value; })()`)
	b.until("the page in Portuguese", `document.querySelector('#listing td[data-outcome="abandoned"]')?.textContent === 'abandonada'
		&& [...document.querySelectorAll('#listing tbody tr')].some((tr) => tr.children[12].textContent === 'Resolvido')
		&& document.querySelector('#f-channel').options[0].textContent === 'Todos' && document.querySelector('#f-agent').options[0].textContent === 'Todos'
		&& document.querySelector('#f-group').selectedOptions[0].textContent === 'fila'
		&& document.querySelector('#chart-timeline .legend').textContent.includes('Em pausa — Almoço')`)
	b.axe("reports in Portuguese")
	b.shot("reports-pt-BR")

	// An agent's token cannot open the page.
	b2 := newBrowser(t)
	b2.run("open the page", chromedp.Navigate(tg.base+"/reports/"))
	b2.type_("paste an agent's token", "#signin-form textarea[name=token]", ana)
	b2.click("sign in", "#signin-form button[type=submit]")
	b2.until("refused for its role", `document.querySelector('#notice').textContent !== '' && document.querySelector('#dashboard').hidden`)
}
