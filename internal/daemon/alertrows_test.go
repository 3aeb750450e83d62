package daemon

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
)

// loadPolicies are two sample policies an API client can fire and resolve at will.
const loadPolicies = `policies:
  - name: load-a
    on: [sample]
    when: 'metrics.load_a > 5'
    severity: critical
    annotations: {summary: 'load a is high'}
  - name: load-b
    on: [sample]
    when: 'metrics.load_b > 5'
    severity: warning
    annotations: {summary: 'load b is high'}
`

func startWithLoadPolicies(t *testing.T) *running {
	t.Helper()
	return startDaemon(t, func(c *config.Config) {
		dir := filepath.Join(t.TempDir(), "policies")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "load.yaml"), []byte(loadPolicies), 0o644)
		c.Policies, c.WhatsApp.Enabled = dir, false
	})
}

type alertRow struct {
	ID       int64
	Policy   string
	State    string
	Severity string
	Ackable  bool
	AckedBy  string `json:"acked_by"`
}

func (r *running) alertRows() []alertRow {
	r.t.Helper()
	_, b := r.do("GET", "/api/v1/alerts?limit=100", "")
	var rows []alertRow
	if err := json.Unmarshal([]byte(b), &rows); err != nil {
		r.t.Fatalf("alerts: %v: %s", err, b)
	}
	return rows
}

// latestState is the state of policy's newest alert row ("" if none).
func latestState(rows []alertRow, policy string) string {
	for _, a := range rows { // newest first
		if a.Policy == policy {
			return a.State
		}
	}
	return ""
}

// Issue 25: an old alert row's Ack button answered 404 and the page said nothing. The
// rule: a row offers Ack exactly when the ack can work. Over seeded sequences of
// incidents firing and resolving, every row's ackable agrees with what POST ack answers
// (an ack that worked is withdrawn again, to keep the sequence going).
func TestAckableIsExactlyWhereAckWorks(t *testing.T) {
	t.Parallel()
	r := startWithLoadPolicies(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 26))
	high := map[string]bool{}
	offered, refused := 0, 0
	for step := range 16 {
		p := []string{"load-a", "load-b"}[rng.IntN(2)]
		high[p] = rng.IntN(2) == 0
		v := 0
		if high[p] {
			v = 9
		}
		metric := map[string]string{"load-a": "load_a", "load-b": "load_b"}[p]
		if code, b := r.do("POST", "/api/v1/samples", fmt.Sprintf(`{"values":{%q:%d}}`, metric, v)); code/100 != 2 {
			t.Fatalf("post sample: %d %s", code, b)
		}
		want := map[bool]string{true: "firing", false: "resolved"}
		r.eventually(fmt.Sprintf("step %d: %s %s", step, p, want[high[p]]), func() bool {
			for _, q := range []string{"load-a", "load-b"} {
				if st := latestState(r.alertRows(), q); st != want[high[q]] && (st != "" || high[q]) {
					return false
				}
			}
			return true
		})
		for _, a := range r.alertRows() {
			code, b := r.do("POST", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), `{"by":"ops"}`)
			if worked := code == 200; worked != a.Ackable {
				t.Fatalf("seed %d step %d: alert #%d (%s %s): ackable %v, but POST ack answered %d %s", seed, step, a.ID, a.Policy, a.State, a.Ackable, code, b)
			}
			if code == 200 {
				offered++
				if code, b := r.do("DELETE", fmt.Sprintf("/api/v1/alerts/%d/ack", a.ID), ""); code != 200 {
					t.Fatalf("unack #%d: %d %s", a.ID, code, b)
				}
			} else {
				refused++
			}
		}
	}
	t.Logf("%d acks offered and taken, %d rows without the button refused", offered, refused)
}
