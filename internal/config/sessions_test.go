package config

import (
	"errors"
	"github.com/remedy-run/remedy/internal/store"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Without `sessions:` the `whatsapp:` block is the session "default", on the store and
// with the settings it always had; with WhatsApp off there is none.
func TestNoSessionsListIsTheDefaultSession(t *testing.T) {
	c, err := Parse("remedy.yaml", []byte("data_dir: /d\nwhatsapp:\n  admins: [\"+6281100000001\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sessions()
	if len(got) != 1 || got[0].Name != "default" || got[0].Store != filepath.Join("/d", "whatsapp.db") ||
		!slices.Equal(got[0].Admins, []string{"+6281100000001"}) {
		t.Fatalf("sessions %+v", got)
	}
	c, err = Parse("remedy.yaml", []byte("whatsapp:\n  enabled: false\nsessions:\n  - name: sales\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sessions(); len(got) != 0 {
		t.Fatalf("WhatsApp off: sessions %+v, want none", got)
	}
}

// Each session inherits what it leaves out from `whatsapp:` and overrides what it sets,
// send key by send key; its store defaults under DATA_DIR/sessions/NAME.
func TestSessionsInheritWhatsApp(t *testing.T) {
	c, err := Parse("remedy.yaml", []byte(`data_dir: /d
whatsapp:
  handler: {url: "http://127.0.0.1:9000/bot"}
  admins: ["+6281100000001"]
  command_prefix: "/"
  send: {per_minute: 40, burst: 7}
sessions:
  - name: sales
    admins: ["+6281100000002"]
    send: {per_minute: 12}
  - name: support
    store: /elsewhere/support.db
    handler: {url: "http://127.0.0.1:9001/support", reply_outcomes: true}
    command_prefix: "!"
  - name: default
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Sessions()
	if len(got) != 3 {
		t.Fatalf("%d sessions, want 3", len(got))
	}
	sales, support, def := got[0], got[1], got[2]
	if sales.Name != "sales" || sales.Store != filepath.Join("/d", "sessions", "sales", "whatsapp.db") ||
		!slices.Equal(sales.Admins, []string{"+6281100000002"}) || sales.Handler.URL != "http://127.0.0.1:9000/bot" ||
		sales.CommandPrefix != "/" || sales.Send.PerMinute != 12 || sales.Send.Burst != 7 {
		t.Errorf("sales %+v", sales)
	}
	if support.Store != "/elsewhere/support.db" || support.Handler.URL != "http://127.0.0.1:9001/support" || !support.Handler.ReplyOutcomes ||
		support.CommandPrefix != "!" || !slices.Equal(support.Admins, []string{"+6281100000001"}) || support.Send.PerMinute != 40 {
		t.Errorf("support %+v", support)
	}
	if def.Name != "default" || def.Store != filepath.Join("/d", "whatsapp.db") {
		t.Errorf("default %+v", def)
	}
}

// Every mistake in `sessions:` is reported at its position, all in one round.
func TestSessionErrorsHaveTheirPosition(t *testing.T) {
	_, err := Parse("remedy.yaml", []byte(`data_dir: /d
sessions:
  - name: Sales
  - name: support
    admins: ["call me"]
  - name: support
  - name: two
    store: /d/sessions/three/whatsapp.db
  - name: three
  - store: /x.db
  - name: four
    handler: {url: "ftp://x"}
    allowed_actions: [FLY]
    send: {per_minute: -1}
    colour: red
queues:
  inbound_support: {workers: 2}
  inbound_nobody: {workers: 2}
`))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v, want Errors", err)
	}
	want := []string{
		`remedy.yaml:3:11: sessions[0].name: "Sales" is not a session name`,
		`remedy.yaml:5:14: sessions[1].admins: "call me" is not a phone number`,
		`remedy.yaml:6:11: sessions[2].name: session "support" is listed twice`,
		`remedy.yaml:9:5: sessions[4].store: sessions "two" and "three" would share the device store`,
		`remedy.yaml:10:5: sessions[5]: a session needs a name`,
		`remedy.yaml:12:20: sessions[6].handler.url: "ftp://x" is not an http(s) URL`,
		`remedy.yaml:13:23: sessions[6].allowed_actions: unknown action "FLY"`,
		`remedy.yaml:14:11: sessions[6].send: limits are positive numbers`,
		`remedy.yaml:15:5: sessions[6]: unknown key "colour"`,
		`remedy.yaml:18:19: queues: unknown queue "inbound_nobody"`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.HasPrefix(e, w) }) {
			t.Errorf("missing %q", w)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(errs), len(want), strings.Join(errs, "\n"))
	}
}

// A device store on one of remedy's own databases is refused (whatsmeow would write its
// tables and keys into remedy.db), for a session and for whatsapp.store alike.
func TestStoreOnRemedysOwnDatabaseIsRefused(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"data_dir: /d\nsessions:\n  - name: sales\n    store: /d/remedy.db\n  - name: ops\n    store: /d/./monitoring_metrics.sqlite\n",
			"remedy.yaml:4:12: sessions[0].store: /d/remedy.db is one of remedy's own databases|remedy.yaml:6:12: sessions[1].store: /d/./monitoring_metrics.sqlite is one of remedy's own databases"},
		{"data_dir: /d\nwhatsapp:\n  store: /d/remedy.db\n", "remedy.yaml:3:10: whatsapp.store: /d/remedy.db is one of remedy's own databases"},
	} {
		_, err := Parse("remedy.yaml", []byte(c.yaml))
		for _, w := range strings.Split(c.want, "|") {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want %q", c.yaml, err, w)
			}
		}
	}
}

func TestRemedyFilesAreStores(t *testing.T) {
	if !slices.Equal([]string{store.RemedyFile, store.MetricsFile}, []string{"remedy.db", "monitoring_metrics.sqlite"}) {
		t.Fatal("remedyFile's names are not the store's: update Config.remedyFile")
	}
}
