package policies

import (
	"strings"
	"testing"
)

// check flags a count() or since() over a code that cannot carry the labels it ties to
// the instance (group_by, or by (…)) or that its matchers read.
func TestHistoryOverCodeWithoutGroupLabel(t *testing.T) {
	set, err := ParseFiles([]string{"h.yaml"}, map[string][]byte{"h.yaml": []byte(`
codes:
  - code: PAYMENT_ERROR
    description: a charge was refused
    labels: [provider]
policies:
  - name: crash-by-host
    on: [SERVICE_DOWN]
    when: 'count("SERVICE_DOWN", "10m") >= 5'
    group_by: [host]
  - name: db-by-queue
    on: [QUEUE_STUCK]
    when: 'count("DB_BUSY", "1m", "{queue=\"inbound\"}") >= 1 && since("PAYMENT_ERROR") < 60'
    group_by: [queue]
  - name: fine
    on: [PAYMENT_ERROR]
    when: 'count("PAYMENT_ERROR", "10m") >= 5 && count("DB_BUSY", "1m", "by ()") > 0 && count("MY_OWN", "1m") > 0'
    group_by: [provider]
`)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range set.Warnings {
		if !strings.Contains(w.Message, "unknown event code") {
			got = append(got, w.String())
		}
	}
	want := []string{
		`h.yaml:9:11: warning: policy "crash-by-host": count("SERVICE_DOWN", "10m"): SERVICE_DOWN events carry no label host (their labels: service, reason, exit_code), so no instance of group_by [host] sees its own; count across instances with by (), or group by a label the code has`,
		`h.yaml:13:11: warning: policy "db-by-queue": count("DB_BUSY", "1m", "{queue=\"inbound\"}"): DB_BUSY events carry no label queue (their labels: db), so no instance of group_by [queue] sees its own; count across instances with by (), or group by a label the code has`,
		`h.yaml:13:11: warning: policy "db-by-queue": count("DB_BUSY", "1m", "{queue=\"inbound\"}"): DB_BUSY events carry no label queue (their labels: db), so the matcher queue="inbound" reads "" on every one`,
		`h.yaml:13:11: warning: policy "db-by-queue": since("PAYMENT_ERROR"): PAYMENT_ERROR events carry no label queue (their labels: provider), so no instance of group_by [queue] sees its own; count across instances with by (), or group by a label the code has`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
