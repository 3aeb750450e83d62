// Package policytest runs policies offline: the test-file runner (`remedy test`) and
// replay of recorded inputs (`remedy replay`). Both drive the real engine through one
// Simulator whose executor is scripted; nothing is run and nothing leaves the process.
package policytest

import (
	"container/heap"
	"strconv"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/policies"
)

// Simulator feeds timed inputs to an engine, ticking at every deadline between them, and
// answers each action decision with a scripted outcome reported as the executor would:
// an ACTION_SUCCEEDED, ACTION_FAILED or ACTION_TIMEOUT event.
type Simulator struct {
	Engine *engine.Engine
	// Outcomes are consumed in order per action name; when a list runs out, Always
	// applies, and without that, attempts succeed at once.
	Outcomes map[string][]policies.Outcome
	Always   map[string]policies.Outcome
	// Timeline is every decision, in order.
	Timeline []engine.Decision
	// Attempts counts outcomes used per action.
	queue resultQueue
	seq   int
}

type result struct {
	ev  engine.Event
	seq int
}

type resultQueue []result

func (q resultQueue) Len() int { return len(q) }
func (q resultQueue) Less(i, j int) bool {
	if !q[i].ev.Time.Equal(q[j].ev.Time) {
		return q[i].ev.Time.Before(q[j].ev.Time)
	}
	return q[i].seq < q[j].seq
}
func (q resultQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *resultQueue) Push(x any)   { *q = append(*q, x.(result)) }
func (q *resultQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Run processes the inputs (sorted by time) and then lets time run on to end, so that
// timers and scripted results after the last input still happen.
func (s *Simulator) Run(inputs []engine.Input, end time.Time) {
	i := 0
	// A bound on steps, so that a policy that keeps scheduling work at the same instant
	// cannot hang the tester.
	for steps := 0; steps < 10_000_000; steps++ {
		// The next thing to happen: an input, a result, or a timer.
		var next time.Time
		kind := ""
		if i < len(inputs) {
			next, kind = inputs[i].At(), "input"
		}
		if len(s.queue) > 0 && (kind == "" || !s.queue[0].ev.Time.After(next)) {
			next, kind = s.queue[0].ev.Time, "result"
		}
		if d := s.Engine.NextDeadline(); !d.IsZero() && (kind == "" || !d.After(next)) {
			if kind != "" || !d.After(end) {
				next, kind = d, "timer"
			}
		}
		switch kind {
		case "":
			if end.After(s.Engine.Now()) {
				s.process(engine.Tick{Time: end})
			}
			return
		case "timer":
			s.process(engine.Tick{Time: next})
		case "result":
			r := heap.Pop(&s.queue).(result)
			s.process(r.ev)
		case "input":
			s.process(inputs[i])
			i++
		}
	}
}

func (s *Simulator) process(in engine.Input) {
	for _, d := range s.Engine.Process(in) {
		s.Timeline = append(s.Timeline, d)
		if d.Kind == engine.KindAction && d.Action.Skipped == "" {
			s.answer(d)
		}
	}
}

func (s *Simulator) answer(d engine.Decision) {
	o := policies.Outcome{Result: "ok"}
	if a, ok := s.Always[d.Action.Do]; ok {
		o = a
	}
	if list := s.Outcomes[d.Action.Do]; len(list) > 0 {
		o = list[0]
		s.Outcomes[d.Action.Do] = list[1:]
	}
	code := engine.CodeActionSucceeded
	after := o.After
	switch o.Result {
	case "none":
		return
	case "fail":
		code = engine.CodeActionFailed
	case "timeout":
		code = engine.CodeActionTimeout
		if after == 0 {
			after = d.Action.Timeout
		}
	}
	s.seq++
	heap.Push(&s.queue, result{seq: s.seq, ev: engine.Event{
		Time: d.Time.Add(after), Code: code, Source: "executor",
		Labels: map[string]string{
			engine.LabelPolicy: d.Policy, engine.LabelInstance: d.Instance,
			engine.LabelDecision: strconv.FormatUint(d.ID, 10), engine.LabelAction: d.Action.Do,
			engine.LabelStep: strconv.Itoa(d.Action.Step), engine.LabelAttempt: strconv.Itoa(d.Action.Attempt),
		},
	}})
}
