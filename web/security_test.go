package web

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

const silenceAll = `{"matchers":{"policy":"*"},"duration":"720h","author":"x"}`

// Issue 15, item 1: with the default configuration (loopback, no token) a page in the
// operator's browser cannot change anything: not with a "simple" request (text/plain,
// no preflight), not with JSON from another site, not from another port of localhost
// (same-site, still another origin). The dashboard's own requests and programs such as
// curl still work.
func TestCrossSiteRequestsChangeNothing(t *testing.T) {
	f, srv := serve(t, Options{})
	evil := []string{"Origin", "http://evil.example"}
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"issue's curl: text/plain from evil.example", "POST", "/api/v1/silences", silenceAll, append([]string{"Content-Type", "text/plain"}, evil...), 403},
		{"JSON with the browser's cross-site mark", "POST", "/api/v1/silences", silenceAll, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"}, 403},
		{"another port of localhost (same-site)", "POST", "/api/v1/silences", silenceAll, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-site", "Origin", "http://localhost:3000"}, 403},
		{"fake logout from a page", "POST", "/api/v1/events", `{"code":"BOT_X"}`, append([]string{"Content-Type", "application/json"}, evil...), 403},
		{"reload from a page, no body", "POST", "/api/v1/reload", "", evil, 403},
		{"ack from a page", "POST", "/api/v1/alerts/1/ack", `{"by":"x"}`, []string{"Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"}, 403},
		{"expire from a page", "DELETE", "/api/v1/silences/1", "", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"Origin mismatching Host, no Fetch Metadata", "POST", "/api/v1/silences", silenceAll, []string{"Content-Type", "application/json", "Origin", "http://127.0.0.1:1"}, 403},
		{"text/plain without Origin (an old browser's form)", "POST", "/api/v1/silences", silenceAll, []string{"Content-Type", "text/plain"}, 415},
		{"the form type from a page (no-cors fetch, Fetch Metadata)", "POST", "/api/v1/events", `{"code":"BOT_X"}`, []string{"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Mode", "no-cors"}, 415},
		{"the form type with a Referer", "POST", "/api/v1/events", `{"code":"BOT_X"}`, []string{"Content-Type", "application/x-www-form-urlencoded", "Referer", "http://evil.example/"}, 415},
		{"no type from a page (a Blob body)", "POST", "/api/v1/events", `{"code":"BOT_X"}`, []string{"Sec-Fetch-Site", "same-origin"}, 415},
		{"multipart", "POST", "/api/v1/events", `{"code":"BOT_X"}`, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, srv, tc.method, tc.path, tc.body, tc.hdr...)
			if code != tc.status || !strings.Contains(body, `"error"`) {
				t.Fatalf("%d %s", code, body)
			}
			if n := f.changes(); n != 0 {
				t.Fatalf("%d state change(s) got through", n)
			}
		})
	}
	// The dashboard (same origin, JSON) and programs (no Origin, JSON) still work.
	self := strings.TrimPrefix(srv.URL, "http://")
	for i, hdr := range [][]string{
		{"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin", "Origin", srv.URL},
		{"Content-Type", "application/json; charset=utf-8", "Origin", "http://" + self},
		{"Content-Type", "application/json"},
	} {
		if code, _, body := call(t, srv, "POST", "/api/v1/silences", silenceAll, hdr...); code != 201 {
			t.Fatalf("legitimate request %d refused: %d %s", i, code, body)
		}
	}
	if code, _, _ := call(t, srv, "POST", "/api/v1/reload", ""); code != 200 {
		t.Fatal("POST /reload without a body (curl -X POST) refused")
	}
	// `curl -d '{…}'` sends the form type and no browser header: read as JSON.
	if code, _, body := call(t, srv, "POST", "/api/v1/events", `{"code":"BOT_X"}`, "Content-Type", "application/x-www-form-urlencoded"); code != 202 {
		t.Fatalf("curl -d: %d %s", code, body)
	}
	if f.changes() != 5 {
		t.Fatalf("%d changes, want 5", f.changes())
	}
}

// Issue 15, item 2: a DNS-rebinding page (its own name now pointing at 127.0.0.1) reads
// nothing, on any route; the names remedy is reached by are served.
func TestHostHeaderAllowList(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("remedy_up 1\n")) })
	_, srv := serve(t, Options{AllowedHosts: []string{"remedy.example.com", ".corp.example"}, Metrics: metrics})
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	for _, path := range []string{"/api/v1/status", "/metrics", "/", "/app.js", "/api/v1/nope"} {
		for _, host := range []string{"evil.example:" + port, "evil.example", "127.0.0.1.evil.example", "remedy.example.com.evil.example", "localhost.evil.example"} {
			code, _, body := call(t, srv, "GET", path, "", "Host", host)
			if code != http.StatusMisdirectedRequest || strings.Contains(body, "version") || strings.Contains(body, "remedy_up") || !strings.Contains(body, "allowed_hosts") {
				t.Fatalf("GET %s with Host %s: %d %s", path, host, code, body)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "LOCALHOST", "[::1]:" + port, "10.1.2.3:8080",
		"remedy.example.com", "Remedy.Example.Com.", "bot.corp.example:443", "corp.example", "dash.localhost"} {
		if code, _, body := call(t, srv, "GET", "/api/v1/status", "", "Host", host); code != 200 || !strings.Contains(body, "version") {
			t.Fatalf("Host %s: %d %s", host, code, body)
		}
	}
}

// Issue 15, item 3: the API refuses remedy's own codes and sources, for every owner and
// for codes in an owner's namespace that are not catalogued yet; an allowed code keeps
// the poster's source.
func TestForgedInternalCodesAreRefused(t *testing.T) {
	f, srv := serve(t, Options{AllowCodes: []string{"WA_LOGGED_OUT"}})
	post := func(body string) (int, string) {
		code, _, b := call(t, srv, "POST", "/api/v1/events", body, "Content-Type", "application/json")
		return code, b
	}
	for _, tc := range []string{
		`{"code":"SERVICE_UP","labels":{"service":"bot"}}`,
		`{"code":"DB_OK","labels":{"db":"remedy"}}`,
		`{"code":"QUEUE_OK","labels":{"queue":"inbound"}}`,
		`{"code":"QUEUE_OK"}`,
		`{"code":"DRILL_PROBE_OK"}`,
		`{"code":"ACTION_SUCCEEDED","labels":{"policy":"x"}}`,
		`{"code":"POLICY_RELOADED"}`,
		`{"code":"WA_CONNECTED","source":"node-bot"}`,
		`{"code":"WA_SOMETHING_NEW"}`,
		`{"code":"HEALTH_CHECK_OK","labels":{"check":"database_writable"}}`,
		`{"code":"BOT_X","source":"whatsapp"}`,
		`{"code":"BOT_X","source":" Service"}`,
		`[{"code":"BOT_X"},{"code":"DB_OK"}]`, // all or nothing
	} {
		if code, body := post(tc); code != 403 || !strings.Contains(body, `"reserved"`) {
			t.Fatalf("%s: %d %s", tc, code, body)
		}
	}
	// A source that only looks like remedy's (an invisible character added).
	for _, tc := range []string{`{"code":"BOT_X","source":"whatsapp\u200b"}`, `{"code":"BOT_X","source":"\u2060store"}`} {
		if code, body := post(tc); code != 422 {
			t.Fatalf("%s: %d %s", tc, code, body)
		}
	}
	if n := f.changes(); n != 0 {
		t.Fatalf("%d forged events got through", n)
	}
	for _, tc := range []string{
		`{"code":"QUEUE_STUCK","source":"node-bot","labels":{"queue":"orders"}}`,
		`{"code":"HANDLER_ERROR","labels":{"queue":"inbound"}}`,
		`{"code":"WA_LOGGED_OUT","source":"bot2"}`,
		`{"code":"WA_LOGGED_OUT"}`,
	} {
		if code, body := post(tc); code != 202 {
			t.Fatalf("%s: %d %s", tc, code, body)
		}
	}
	var sources []string
	for _, in := range f.inputs {
		sources = append(sources, in.(engine.Event).Source)
	}
	if got := strings.Join(sources, " "); got != "node-bot api bot2 api" {
		t.Fatalf("sources %s", got)
	}
}

// The provenance rule over random events (seeded, printed on failure): an event is
// accepted exactly when its code is nobody's or explicitly allowed and its source is not
// remedy's, and what is accepted never carries an internal source.
func TestProvenanceRandomized(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	allowed := []string{"WA_CONNECTED", "SERVICE_DOWN"}
	f, srv := serve(t, Options{AllowCodes: allowed})
	codes := []string{"BOT_X", "ORDER_FAILED", "HANDLER_ERROR", "WA_NEW"}
	for _, c := range policies.Codes {
		codes = append(codes, c.Code)
	}
	sources := []string{"", "node-bot", "api", "whatsapp", "store", "queue", "service", "executor", "daemon", "remedy", "bot2"}
	queues := []string{"", "inbound", "outbound", "orders"}
	for i := 0; i < 300; i++ {
		e := EventIn{Code: codes[rng.IntN(len(codes))], Source: sources[rng.IntN(len(sources))]}
		if q := queues[rng.IntN(len(queues))]; q != "" {
			e.Labels = map[string]string{"queue": q}
		}
		body, _ := json.Marshal(e)
		before := len(f.inputs)
		code, _, resp := call(t, srv, "POST", "/api/v1/events", string(body), "Content-Type", "application/json")
		owner := policies.CodeOwner(e.Code, e.Labels)
		want := (owner == "" || slices.Contains(allowed, e.Code)) && !policies.InternalSource(e.Source)
		if (code == 202) != want {
			t.Fatalf("seed %d: %s: %d %s (owner %q)", seed, body, code, resp, owner)
		}
		if code == 202 {
			ev := f.inputs[before].(engine.Event)
			if policies.InternalSource(ev.Source) || ev.Source == "" {
				t.Fatalf("seed %d: %s accepted with source %q", seed, body, ev.Source)
			}
		} else if len(f.inputs) != before {
			t.Fatalf("seed %d: refused but ingested", seed)
		}
	}
}

// Issue 15, item 5: ?token= is taken only on the WebSocket upgrade; the read token reads
// and changes nothing.
func TestTokenRules(t *testing.T) {
	const tok, view = "operator-0123456789", "viewer-0123456789"
	f, srv := serve(t, Options{Token: tok, ReadToken: view})
	bearer := func(s string) []string {
		return []string{"Authorization", "Bearer " + s, "Content-Type", "application/json"}
	}
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"no token", "GET", "/api/v1/status", "", nil, 401},
		{"query token on a plain route", "GET", "/api/v1/status?token=" + tok, "", nil, 401},
		{"query token on a change", "POST", "/api/v1/silences?token=" + tok, silenceAll, []string{"Content-Type", "application/json"}, 401},
		{"wrong token", "GET", "/api/v1/status", "", bearer("operator-012345678"), 401},
		{"token as a prefix", "GET", "/api/v1/status", "", bearer(tok + "x"), 401},
		{"operator reads", "GET", "/api/v1/status", "", bearer(tok), 200},
		{"viewer reads", "GET", "/api/v1/alerts", "", bearer(view), 200},
		{"viewer silences", "POST", "/api/v1/silences", silenceAll, bearer(view), 403},
		{"viewer reloads", "POST", "/api/v1/reload", "", bearer(view), 403},
		{"viewer posts an event", "POST", "/api/v1/events", `{"code":"BOT_X"}`, bearer(view), 403},
		{"operator silences", "POST", "/api/v1/silences", silenceAll, bearer(tok), 201},
		{"stream without a token", "GET", "/api/v1/stream", "", nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, srv, tc.method, tc.path, tc.body, tc.hdr...)
			if code != tc.status || (code >= 400 && !strings.Contains(body, `"error"`)) {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	if f.changes() != 1 {
		t.Fatalf("%d changes, want the operator's one", f.changes())
	}
	// On the stream the query token is what a browser can send; without an upgrade the
	// handler answers gorilla's 400, which shows the token was accepted.
	if code, _, _ := call(t, srv, "GET", "/api/v1/stream?token="+view, ""); code != 400 {
		t.Fatalf("read token on the stream: %d", code)
	}
}

// Issue 15, item 6: every error is the JSON error, the router's 404 and 405 included, and
// an internal error says nothing about its cause.
func TestEveryErrorIsJSON(t *testing.T) {
	_, srv := serve(t, Options{})
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/api/v1/nope", "", 404, "not_found"},
		{"GET", "/no-such-file.js", "", 404, "not_found"},
		{"POST", "/api/v1/status", "", 405, "method_not_allowed"},
		{"DELETE", "/api/v1/events", "", 405, "method_not_allowed"},
		{"PUT", "/nope", "{}", 405, "method_not_allowed"},
		{"GET", "/api/v1/report", "", 404, "not_found"},
		{"POST", "/api/v1/policies/nope/try", `{"event":{"code":"X"}}`, 404, "not_found"},
		{"POST", "/api/v1/alerts/7/ack", `{"by":"me"}`, 404, "not_found"},
		{"DELETE", "/api/v1/silences/7", "", 404, "not_found"},
		{"GET", "/api/v1/actions", "", 500, "internal"},
		{"POST", "/api/v1/events", `{"code":`, 400, "bad_json"},
		{"POST", "/api/v1/drills", `{"scenario":"queue"}`, 404, "no_drills"},
		{"GET", "/api/v1/stream", "", 400, "bad_handshake"}, // not an upgrade
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, hdr, body := call(t, srv, tc.method, tc.path, tc.body, "Content-Type", "application/json")
			var e apiError
			if err := json.Unmarshal([]byte(body), &e); err != nil || code != tc.status || e.Error.Code != tc.code ||
				!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %q %s", code, hdr.Get("Content-Type"), body)
			}
			if strings.Contains(body, "secret-path") {
				t.Fatalf("internal details leaked: %s", body)
			}
			if code == 405 && hdr.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
	// A WebSocket upgrade from another site's page is refused in the same shape.
	code, hdr, body := call(t, srv, "GET", "/api/v1/stream", "", "Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Origin", "http://evil.example")
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != 403 || e.Error.Code != "cross_origin" ||
		!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("cross-site upgrade: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	// The dashboard itself is still served.
	if code, hdr, body := call(t, srv, "GET", "/", ""); code != 200 || !strings.Contains(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "<") {
		t.Fatalf("dashboard: %d %s", code, hdr.Get("Content-Type"))
	}
}

// Samples have the same provenance rule as events: the metrics remedy measures itself
// (disk_free_percent fires disk-low's CLEAN_DATA; a posted 50 would hide a full disk) are
// refused from the API, all or nothing, unless the configuration allows one by name; a
// bot's own metrics, its own queues' included, pass.
func TestForgedOwnMetricsAreRefused(t *testing.T) {
	f, srv := serve(t, Options{AllowMetrics: []string{"cpu_percent"}})
	post := func(body string) (int, string) {
		code, _, b := call(t, srv, "POST", "/api/v1/samples", body, "Content-Type", "application/json")
		return code, b
	}
	for _, tc := range []string{
		`{"values":{"disk_free_percent":1}}`,
		`{"values":{"mem_percent":99}}`,
		`{"values":{"queue_inbound_depth":0}}`,
		`{"values":{"service_bot_up":1}}`,
		`{"values":{"wa_connected":1}}`,
		`{"values":{"queue_jobs_depth":3,"process_rss_mb":900}}`, // all or nothing
	} {
		if code, body := post(tc); code != 403 || !strings.Contains(body, `"reserved"`) {
			t.Fatalf("%s: %d %s", tc, code, body)
		}
	}
	if n := f.changes(); n != 0 {
		t.Fatalf("%d forged samples got through", n)
	}
	for _, tc := range []string{
		`{"values":{"queue_jobs_depth":12}}`,
		`{"values":{"bot_rss_mb":120,"queue_orders_fill":0.5}}`,
		`{"values":{"cpu_percent":42}}`, // allowed by name
	} {
		if code, body := post(tc); code != 202 {
			t.Fatalf("%s: %d %s", tc, code, body)
		}
	}
}
