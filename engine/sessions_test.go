package engine

import (
	"container/heap"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remedy-run/remedy/policies"
)

// The projection invariant of sessions (issue 22): the default policies keep WhatsApp
// numbers apart. Seeded random interleavings of WA_* events over N sessions go through
// the default policies; for every session k, the decisions about k (label session=k)
// are exactly — time, kind, policy, instance, state, action, alert, reason — those of a
// run that saw only k's events. So no number's logout, ban, flapping, breaker, rate
// limit or ladder changes what another's incidents do.
//
// Backoff jitter is off: its draws come from the engine's one seeded generator, so the
// delay a number draws depends on how many draws others made before it (random either
// way, and not a decision about another number); the invariant is about decisions.
func TestSessionsProjection(t *testing.T) {
	seeds := 300
	if testing.Short() || raceEnabled {
		seeds = 40
	}
	set := defaultsWithoutJitter(t)
	checked := map[string]int{}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 22))
		n := 2 + rng.IntN(4)
		events := randomSessionEvents(rng, n)
		end := events[len(events)-1].At().Add(3 * time.Hour) // the same for every run
		all := runProjected(set, events, end)
		for k := range n {
			name := sessionName(k)
			var own []Input
			for _, ev := range events {
				if ev.(Event).Labels["session"] == name {
					own = append(own, ev)
				}
			}
			got, want := about(all, name), about(runProjected(set, own, end), name)
			if !slices.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("seed %d, %d sessions: session %s's decisions differ from its run alone at #%d (of %d with all, %d alone):\n  with all: %s\n  alone:    %s",
					seed, n, name, i, len(got), len(want), at(got, i), at(want, i))
			}
			for _, d := range got {
				checked[strings.Fields(d)[1]]++
				if strings.Contains(d, " skipped ") {
					checked["skipped"]++
				}
			}
		}
	}
	// The sequences must be rich enough to mean something: incidents fire, reconnect,
	// escalate, are held by another incident and resolve.
	for _, kind := range []string{"firing", "RECONNECT_WA", "resolved", "escalated", "held", "skipped"} {
		if checked[kind] == 0 {
			t.Errorf("no %s decision in %d seeds: the generator does not exercise it (%v)", kind, seeds, checked)
		}
	}
	t.Logf("%d seeds; decisions compared by kind: %v", seeds, checked)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

func sessionName(k int) string { return string(rune('a' + k)) }

// defaultsWithoutJitter is the default policy set with every backoff's jitter off.
func defaultsWithoutJitter(t *testing.T) *policies.Set {
	t.Helper()
	set, err := policies.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range set.Policies {
		for i := range p.Actions {
			p.Actions[i].Backoff.Jitter = policies.JitterNone
		}
	}
	return set
}

// randomSessionEvents draws WhatsApp events of n sessions over about six hours: mostly
// disconnects and reconnects, with now and then a terminal event (logout, replaced
// session, ban, outdated client, refused login), its way out, keepalive trouble,
// decryption and sending failures.
func randomSessionEvents(rng *rand.Rand, n int) []Input {
	type kind struct {
		code   string
		weight int
		labels []string // label=value pairs, a value picked at random among |-separated ones
	}
	kinds := []kind{
		{"WA_DISCONNECTED", 20, []string{"reason=network|server|remote"}},
		{"WA_CONNECTED", 14, nil},
		{"WA_STREAM_ERROR", 3, []string{"code=500|503"}},
		{"WA_STALE", 3, []string{"reason=login_timeout|not_connected"}},
		{"WA_REACHABLE", 4, nil},
		{"WA_KEEPALIVE_TIMEOUT", 6, []string{"error_count=1|2|3"}},
		{"WA_KEEPALIVE_RESTORED", 2, nil},
		{"WA_LOGGED_OUT", 2, []string{"reason=401|device_removed"}},
		{"WA_PAIR_SUCCESS", 2, nil},
		{"WA_STREAM_REPLACED", 1, nil},
		{"WA_TEMP_BAN", 1, []string{"code=101", "expire=2026-01-05T12:00:00Z"}},
		{"WA_TEMP_BAN_EXPIRED", 2, nil},
		{"WA_CLIENT_OUTDATED", 1, nil},
		{"WA_CONNECT_FAILURE", 2, []string{"reason=503|403"}},
		{"WA_DECRYPT_FAILED", 5, []string{"sender=6281100000077", "chat=6281100000077@s.whatsapp.net", "kind=bad_ciphertext"}},
		{"WA_SEND_FAILED", 6, []string{"reason=refused|timeout", "chat=6281100000004@s.whatsapp.net|120363000000000001@g.us"}},
		{"WA_SEND_STOPPED", 1, []string{"chat=6281100000004@s.whatsapp.net|120363000000000001@g.us"}},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	var out []Input
	now := t0
	for range 40 + rng.IntN(160) {
		// Bursts (several events in a second) and quiet spells (up to half an hour).
		switch rng.IntN(4) {
		case 0:
			now = now.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
		case 1:
			now = now.Add(time.Duration(rng.IntN(30*60)) * time.Second)
		default:
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
		}
		w := rng.IntN(total)
		k := kinds[0]
		for _, c := range kinds {
			if w < c.weight {
				k = c
				break
			}
			w -= c.weight
		}
		labels := map[string]string{"session": sessionName(rng.IntN(n))}
		for _, kv := range k.labels {
			name, vals, _ := strings.Cut(kv, "=")
			opts := strings.Split(vals, "|")
			labels[name] = opts[rng.IntN(len(opts))]
		}
		out = append(out, Event{Time: now, Code: k.code, Source: "whatsapp", Labels: labels})
	}
	return out
}

// runProjected runs the inputs through a new engine until end,
// answering each action with an outcome that depends on the attempt alone (its session,
// policy, step, attempt and time), never on what other sessions did: both runs of the
// invariant see the same outcomes for the same attempt.
func runProjected(set *policies.Set, inputs []Input, end time.Time) []Decision {
	e := New(set, Options{Seed: 7})
	var log []Decision
	var results simResults
	seq := 0
	process := func(in Input) {
		for _, d := range e.Process(in) {
			log = append(log, d)
			if d.Kind != KindAction || d.Action.Skipped != "" {
				continue
			}
			h := fnv.New64a()
			fmt.Fprintf(h, "%s|%s|%s|%d|%d|%d", d.Labels["session"], d.Policy, d.Action.Do, d.Action.Step, d.Action.Attempt, d.Time.UnixNano())
			x := h.Sum64()
			code, after := CodeActionSucceeded, time.Duration(x>>8%3000)*time.Millisecond
			switch x % 20 {
			case 0: // no result: the engine's own timeout
				continue
			case 1, 2:
				code, after = CodeActionTimeout, d.Action.Timeout
			case 3, 4, 5, 6, 7, 8, 9, 10:
				code = CodeActionFailed
			}
			seq++
			heap.Push(&results, simResult{seq: seq, ev: Event{Time: d.Time.Add(after), Code: code, Source: "executor",
				Labels: map[string]string{LabelPolicy: d.Policy, LabelInstance: d.Instance,
					LabelDecision: strconv.FormatUint(d.ID, 10), LabelAction: d.Action.Do,
					LabelStep: strconv.Itoa(d.Action.Step), LabelAttempt: strconv.Itoa(d.Action.Attempt)}}})
		}
	}
	i := 0
	for {
		var next time.Time
		kind := ""
		if i < len(inputs) {
			next, kind = inputs[i].At(), "input"
		}
		if len(results) > 0 && (kind == "" || !results[0].ev.Time.After(next)) {
			next, kind = results[0].ev.Time, "result"
		}
		if d := e.NextDeadline(); !d.IsZero() && (kind == "" || !d.After(next)) && !d.After(end) {
			kind, next = "timer", d
		}
		switch kind {
		case "":
			process(Tick{Time: end})
			return log
		case "timer":
			process(Tick{Time: next})
		case "result":
			process(heap.Pop(&results).(simResult).ev)
		case "input":
			process(inputs[i])
			i++
		}
	}
}

type simResult struct {
	ev  Event
	seq int
}

type simResults []simResult

func (q simResults) Len() int { return len(q) }
func (q simResults) Less(i, j int) bool {
	if !q[i].ev.Time.Equal(q[j].ev.Time) {
		return q[i].ev.Time.Before(q[j].ev.Time)
	}
	return q[i].seq < q[j].seq
}
func (q simResults) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simResults) Push(x any)   { *q = append(*q, x.(simResult)) }
func (q *simResults) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

var decisionID = regexp.MustCompile(`decision="[0-9]+"`)

// about is the decisions about one session, each as a line with everything but the
// decision IDs (which count every session's decisions; a result event's reason quotes
// its decision label).
func about(log []Decision, session string) []string {
	var out []string
	for _, d := range log {
		if d.Labels["session"] != session {
			continue
		}
		what := string(d.State)
		switch {
		case d.Kind == KindAction:
			what = fmt.Sprintf("%s step %d attempt %d params %v", d.Action.Do, d.Action.Step, d.Action.Attempt, d.Action.Params)
			if d.Action.Skipped != "" {
				what += " skipped " + d.Action.Skipped
			}
		case d.Kind == KindAlert:
			what = fmt.Sprintf("alert %s %s suppressed %d repeat %v", d.State, d.Alert.Summary, d.Alert.Suppressed, d.Alert.Repeat)
			if d.Alert.Held != "" {
				what = "held " + what + " (" + d.Alert.Held + ")"
			}
		case d.Of != nil:
			what += fmt.Sprintf(" of %s step %d attempt %d", d.Of.Do, d.Of.Step, d.Of.Attempt)
		}
		out = append(out, fmt.Sprintf("%s %s %s{%s} %v %s — %s", d.Time.Sub(t0), strings.Fields(what)[0], d.Policy, d.Instance,
			d.Labels, d.Severity, what+" — "+decisionID.ReplaceAllString(d.Reason.String(), `decision="…"`)))
	}
	return out
}
