package engine

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmark workload: 100 policies of four kinds over 20 event codes and 20 metrics,
// and an input stream of 85% events, 10% samples and 5% ticks. Thresholds are such that
// conditions are evaluated but do not fire: that is steady state, where a bot spends its
// life. The same rules are written by hand in handRules, the lower bound.
const (
	benchCodes   = 20
	benchMetrics = 20
)

func benchPolicies() string {
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := 0; i < 40; i++ { // label and value checks
		fmt.Fprintf(&b, "  - name: ev-%d\n    on: [CODE_%d]\n    when: 'event.labels.reason != \"r%d\" && event.value > %d'\n    resolve_on: [OK_%d]\n",
			i, i%benchCodes, i, 1000+i, i)
	}
	for i := 0; i < 20; i++ { // bursts
		fmt.Fprintf(&b, "  - name: burst-%d\n    on: [CODE_%d]\n    when: 'count(\"CODE_%d\", \"5m\") > 100000'\n", i, i, i)
	}
	for i := 0; i < 30; i++ { // thresholds
		fmt.Fprintf(&b, "  - name: thr-%d\n    on: [sample]\n    when: 'metrics.m%d > %d'\n    for: 1m\n", i, i%benchMetrics, 1000+i)
	}
	for i := 0; i < 10; i++ { // windows
		fmt.Fprintf(&b, "  - name: win-%d\n    on: [sample]\n    when: 'avg_over(\"m%d\", \"5m\") > %d'\n", i, i, 1000+i)
	}
	return b.String()
}

func benchInputs(n int) []Input {
	reasons := []string{"network", "server", "timeout", "reset"}
	labels := make([]map[string]string, len(reasons))
	for i, r := range reasons {
		labels[i] = map[string]string{"reason": r}
	}
	values := make([]map[string]float64, 8)
	for i := range values {
		values[i] = map[string]float64{}
		for m := 0; m < benchMetrics; m++ {
			values[i][fmt.Sprintf("m%d", m)] = float64((i*7 + m*13) % 100)
		}
	}
	codes := make([]string, benchCodes+5)
	for i := range codes {
		codes[i] = fmt.Sprintf("CODE_%d", i) // CODE_20..24 wake no policy
	}
	in := make([]Input, n)
	t := t0
	for i := range in {
		t = t.Add(100 * time.Millisecond)
		switch r := i % 20; {
		case r == 0 || r == 10:
			in[i] = Sample{Time: t, Values: values[(i/20)%len(values)]}
		case r == 5:
			in[i] = Tick{Time: t}
		default:
			in[i] = Event{Time: t, Code: codes[(i*7)%len(codes)], Source: "bench", Labels: labels[i%len(labels)], Value: float64(i % 50)}
		}
	}
	return in
}

// benchLoop runs the inputs again and again with time moving forward, as a live stream.
// Inputs are pointers updated in place, so the loop itself does not allocate.
func benchLoop(b *testing.B, in []Input, process func(Input)) {
	ptrs, shiftAll := loopInputs(in)
	// Warm up: fill the history windows and caches (steady state).
	for _, x := range ptrs {
		process(x)
	}
	shiftAll()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		process(ptrs[i])
		i++
		if i == len(ptrs) {
			i = 0
			shiftAll()
		}
	}
}

// loopInputs returns pointers to copies of in, and a function that moves them all one
// span later, so a stream can be replayed with time moving forward.
func loopInputs(in []Input) ([]Input, func()) {
	span := in[len(in)-1].At().Sub(in[0].At()) + 100*time.Millisecond
	ptrs := make([]Input, len(in))
	for i, x := range in {
		switch v := x.(type) {
		case Event:
			ptrs[i] = &v
		case Sample:
			ptrs[i] = &v
		case Tick:
			ptrs[i] = &v
		}
	}
	shiftAll := func() {
		for _, x := range ptrs {
			switch v := x.(type) {
			case *Event:
				v.Time = v.Time.Add(span)
			case *Sample:
				v.Time = v.Time.Add(span)
			case *Tick:
				v.Time = v.Time.Add(span)
			}
		}
	}
	return ptrs, shiftAll
}

// BenchmarkEngine feeds the mixed stream through the engine with 100 policies.
func BenchmarkEngine(b *testing.B) {
	e := New(loadSet(b, benchPolicies()), Options{Seed: 1})
	in := benchInputs(20000)
	benchLoop(b, in, func(x Input) {
		if len(e.Process(x)) != 0 {
			b.Fatal("steady-state workload produced a decision")
		}
	})
	b.ReportMetric(float64(e.Stats().Evaluations)/float64(e.Stats().Inputs), "evals/input")
}

// BenchmarkHandWritten is the same rules written directly in Go: the lower bound.
func BenchmarkHandWritten(b *testing.B) {
	h := newHandRules()
	in := benchInputs(20000)
	benchLoop(b, in, func(x Input) {
		if h.process(x) {
			b.Fatal("fired")
		}
	})
}

// BenchmarkEngineVsHand runs the engine and the hand-written rules in alternating rounds
// of the same inputs in one process, and reports the ratio of their best rounds: on a
// shared machine, load that comes and goes hits both alike. One op is one round of
// 20,000 inputs through each.
func BenchmarkEngineVsHand(b *testing.B) {
	e := New(loadSet(b, benchPolicies()), Options{Seed: 1})
	h := newHandRules()
	in := benchInputs(20000)
	var bestE, bestH time.Duration
	round := func(run func(Input)) func() time.Duration {
		ptrs, shift := loopInputs(in)
		for _, x := range ptrs { // warm up
			run(x)
		}
		shift()
		return func() time.Duration {
			start := time.Now()
			for _, x := range ptrs {
				run(x)
			}
			d := time.Since(start)
			shift()
			return d
		}
	}
	eng := round(func(x Input) {
		if len(e.Process(x)) != 0 {
			b.Fatal("steady-state workload produced a decision")
		}
	})
	hand := round(func(x Input) {
		if h.process(x) {
			b.Fatal("fired")
		}
	})
	b.ReportAllocs()
	for b.Loop() {
		de, dh := eng(), hand()
		if bestE == 0 || de < bestE {
			bestE = de
		}
		if bestH == 0 || dh < bestH {
			bestH = dh
		}
	}
	n := float64(len(in))
	b.ReportMetric(float64(bestE.Nanoseconds())/n, "engine_ns/input")
	b.ReportMetric(float64(bestH.Nanoseconds())/n, "hand_ns/input")
	b.ReportMetric(float64(bestE)/float64(bestH), "ratio")
}

// handRules implements benchPolicies without the engine: a switch on the input, the
// conditions as Go expressions, and ring buffers for count and avg_over.
type handRules struct {
	byCode  map[string][]int // event rule indexes
	counts  map[string]*ring
	avgs    [10]*ring
	latest  [benchMetrics]float64
	pending [30]time.Time
	names   [benchMetrics]string
	reasons [40]string
}

// ring keeps a window with a running sum, as a careful hand-written version would.
type ring struct {
	ts  []time.Time
	vs  []float64
	off int
	sum float64
}

func (r *ring) add(t time.Time, v float64, keep time.Duration) {
	r.ts, r.vs = append(r.ts, t), append(r.vs, v)
	r.sum += v
	for r.off < len(r.ts) && r.ts[r.off].Before(t.Add(-keep)) {
		r.sum -= r.vs[r.off]
		r.off++
	}
	if r.off > len(r.ts)/2 {
		n := copy(r.ts, r.ts[r.off:])
		copy(r.vs, r.vs[r.off:])
		r.ts, r.vs, r.off = r.ts[:n], r.vs[:n], 0
	}
}

func newHandRules() *handRules {
	h := &handRules{byCode: map[string][]int{}, counts: map[string]*ring{}}
	for i := 0; i < 40; i++ {
		c := fmt.Sprintf("CODE_%d", i%benchCodes)
		h.byCode[c] = append(h.byCode[c], i)
		h.reasons[i] = fmt.Sprintf("r%d", i)
	}
	for i := 0; i < 20; i++ {
		h.counts[fmt.Sprintf("CODE_%d", i)] = &ring{}
	}
	for i := range h.avgs {
		h.avgs[i] = &ring{}
	}
	for i := range h.names {
		h.names[i] = fmt.Sprintf("m%d", i)
	}
	return h
}

func (h *handRules) process(x Input) bool {
	switch in := x.(type) {
	case *Event:
		fired := false
		if r := h.counts[in.Code]; r != nil {
			r.add(in.Time, 0, 5*time.Minute)
			fired = len(r.ts)-r.off > 100000
		}
		for _, i := range h.byCode[in.Code] {
			if in.Labels["reason"] != h.reasons[i] && in.Value > float64(1000+i) {
				fired = true
			}
		}
		return fired
	case *Sample:
		fired := false
		for m, name := range h.names {
			if v, ok := in.Values[name]; ok {
				h.latest[m] = v
			}
		}
		for i := range h.avgs {
			r := h.avgs[i]
			r.add(in.Time, h.latest[i], 5*time.Minute)
			if r.sum/float64(len(r.vs)-r.off) > float64(1000+i) {
				fired = true
			}
		}
		for i := 0; i < 30; i++ {
			if h.latest[i%benchMetrics] > float64(1000+i) {
				if h.pending[i].IsZero() {
					h.pending[i] = in.Time
				}
			} else {
				h.pending[i] = time.Time{}
			}
		}
		return fired
	}
	return false
}

// BenchmarkUnrelatedEventWithManyInstances: one event of an unrelated policy while a
// group_by policy holds n instances with timers pending (issue 14, field case b2-10).
// The time per event should not grow with n.
func BenchmarkUnrelatedEventWithManyInstances(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			set := loadSet(b, `
policies:
  - name: user
    on: [USER_SESSION_ERROR]
    group_by: [user]
    max_instances: 20000
    alert: {rate_limit: {count: 1, per: 1h}}
  - name: canary
    on: [CANARY]
`)
			e := New(set, Options{Seed: 1})
			for i := 0; i < n; i++ {
				e.Process(Event{Time: t0, Code: "USER_SESSION_ERROR", Labels: map[string]string{"user": strconv.Itoa(i)}})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.Process(Event{Time: t0.Add(time.Duration(i) * time.Microsecond), Code: "CANARY"})
			}
		})
	}
}

// BenchmarkCountPerInstance: events of 100 groups through a group_by policy whose count()
// reads each instance's own events (issue 25), and one that counts across them. Steady
// state allocates nothing per input.
func BenchmarkCountPerInstance(b *testing.B) {
	e := New(loadSet(b, `
policies:
  - name: own
    on: [DB_TIMEOUT]
    when: 'count("DB_TIMEOUT", "5m") > 100000'
    group_by: [db]
  - name: across
    on: [DB_TIMEOUT]
    when: 'count("DB_TIMEOUT", "5m", "by ()") > 100000'
    group_by: [db]
`), Options{Seed: 1})
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = Event{Code: "DB_TIMEOUT", Labels: map[string]string{"db": "db" + strconv.Itoa(i)}}
	}
	now := t0
	for i := range 60_000 { // fill the windows (5 min at 100 events a second)
		now = now.Add(10 * time.Millisecond)
		evs[i%len(evs)].Time = now
		e.Process(&evs[i%len(evs)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(10 * time.Millisecond)
		ev := &evs[i%len(evs)]
		ev.Time = now
		if len(e.Process(ev)) != 0 {
			b.Fatal("fired")
		}
	}
}
