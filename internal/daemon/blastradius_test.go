package daemon

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remedy-run/remedy/internal/whatsapp/wafake"
)

// sessionFault is one way a session fails (issue 22, "Blast radius").
type sessionFault int

const (
	faultCorruptStore   sessionFault = iota // its device store is garbage at open
	faultLogout                             // the phone unlinked it: every login answers 401
	faultTempBan                            // every login answers 402 (a temporary ban)
	faultReplaced                           // another client took the number (stream error, conflict replaced)
	faultReconnectStorm                     // its connection drops every 50–150 ms
	faultStuckHandler                       // its bot never answers (its inbound queue is stuck)
	faultFailingHandler                     // its bot answers 500 to everything
	faultHandlerPanic                       // its messages panic in the in-process handler (500s from a webhook)
	numFaults
)

func (f sessionFault) String() string {
	return [...]string{"corrupt store", "logout", "temporary ban", "stream replaced", "reconnect storm",
		"stuck handler", "failing handler", "handler panic"}[f]
}

// blastSeeds is the seeds a run tries: a handful, or REMEDY_BLAST_SEEDS of them (random,
// printed), or the one REMEDY_BLAST_SEED names to replay a failure.
func blastSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("REMEDY_BLAST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("REMEDY_BLAST_SEED=%q", s)
		}
		return []uint64{seed}
	}
	n := 3
	if s := os.Getenv("REMEDY_BLAST_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("REMEDY_BLAST_SEEDS=%q", s)
		}
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = rand.Uint64()
	}
	return seeds
}

// The blast-radius invariant (issue 22): over random seeded fault sequences on four
// sessions — one faulty at a time, or several — every healthy session keeps delivering
// while the faults last: each customer message reaches its own handler exactly once, each
// message sent through the API leaves from its own device exactly once, and no alert,
// decision, action or fault event names it. A healthy session that waited on a faulty one
// would not deliver until the fault ended, which it does not during the phase: the test
// would time out (its bound only catches "never"; no speed is asserted). A failure
// prints its seed; REMEDY_BLAST_SEED=<seed> replays it, REMEDY_BLAST_SEEDS=<n> tries n.
func TestOneSessionsFaultsStayInside(t *testing.T) {
	t.Parallel()
	if raceEnabled {
		// Its faults drop sockets under sends, where whatsmeow races with itself
		// (FrameSocket.Close against SendFrame; see TestScenarios): a CI run under -race
		// failed two seeds at once on a report outside remedy's code. .ci/run runs it
		// without -race, beside the other WhatsApp fault tests.
		t.Skip("the blast-radius faults run without -race (whatsmeow's own data race)")
	}
	for _, seed := range blastSeeds(t) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			blastRun(t, seed)
		})
	}
}

func blastRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 22))
	names := []string{"s0", "s1", "s2", "s3"}
	nFaulty := 1
	if rng.IntN(2) == 1 {
		nFaulty = 1 + rng.IntN(len(names)-1) // several at once, always one healthy
	}
	perm := rng.Perm(len(names))
	faulty, healthy := map[string][]sessionFault{}, []string(nil)
	for i, p := range perm {
		if i < nFaulty {
			seq := make([]sessionFault, 1+rng.IntN(3))
			for j := range seq {
				seq[j] = sessionFault(rng.IntN(int(numFaults)))
			}
			faulty[names[p]] = seq
		} else {
			healthy = append(healthy, names[p])
		}
	}
	slices.Sort(healthy)
	plan := fmt.Sprintf("seed %d: faults %v, healthy %v", seed, faulty, healthy)
	t.Log(plan)
	defer func() {
		if t.Failed() {
			t.Logf("replay with REMEDY_BLAST_SEED=%d (%s)", seed, plan)
		}
	}()
	corrupt := map[string]bool{}
	for n, seq := range faulty {
		if seq[0] == faultCorruptStore {
			corrupt[n] = true
		}
	}
	bot := newSessionBot(t, false)
	bot.inproc = rng.IntN(2) == 1 // the webhooks, or remedy's in-process handler for every session
	plan += fmt.Sprintf(", in-process handler %v", bot.inproc)
	bed := startSessions(t, names, corrupt, bot, "")
	s := bed.s
	var sent []string // inbound texts per healthy session, all phases
	// handlerHurt: a session whose handler already fails or hangs; its queue is held
	// back (retries, a hung attempt), so a later handler fault shows no new request.
	handlerHurt := map[string]bool{}
	apiIDs := map[string][]string{}
	for phase := range 3 {
		var storms sync.WaitGroup
		stop := make(chan struct{})
		effects := map[string]func() bool{} // per faulty session: has this phase's fault taken hold?
		for n, seq := range faulty {
			if phase >= len(seq) || corrupt[n] {
				continue
			}
			user := bed.devs[n].User
			gone := func() bool { return s.ConnOf(user) == nil }
			switch seq[phase] {
			case faultCorruptStore: // only at open; later in a sequence it is a no-op
			case faultLogout:
				// The phone unlinked the device: the server says so on the open stream, and
				// refuses every later login.
				s.OnLoginOf(user, func(c *wafake.Conn) { c.Failure(401, nil) })
				s.EachOf(user, func(c *wafake.Conn) { c.StreamError("401", "device_removed") })
				effects[n] = gone
			case faultTempBan:
				// A ban is told at login: the connection drops, and the next login is refused.
				s.OnLoginOf(user, func(c *wafake.Conn) { c.Failure(402, map[string]string{"code": "101", "expire": "3600"}) })
				s.DropDevice(user)
				effects[n] = gone
			case faultReplaced:
				s.EachOf(user, func(c *wafake.Conn) { c.StreamError("", "replaced") })
				effects[n] = gone
			case faultReconnectStorm:
				every := time.Duration(50+rng.IntN(100)) * time.Millisecond
				var ticks atomic.Int64
				storms.Go(func() {
					tick := time.NewTicker(every)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							s.DropDevice(user) // whenever it is connected again
							ticks.Add(1)
						}
					}
				})
				effects[n] = func() bool { return ticks.Load() > 0 && gone() }
			case faultStuckHandler:
				bot.block(n, true)
				held, _ := bot.counts(n)
				hurt := handlerHurt[n]
				effects[n] = func() bool { h, _ := bot.counts(n); return h > held || hurt || gone() }
				handlerHurt[n] = true
			case faultFailingHandler, faultHandlerPanic:
				if seq[phase] == faultFailingHandler {
					bot.fail(n, true)
				} else {
					bot.panic(n)
				}
				_, failed := bot.counts(n)
				hurt := handlerHurt[n]
				effects[n] = func() bool { _, f := bot.counts(n); return f > failed || hurt || gone() }
				handlerHurt[n] = true
			}
		}
		// The faulty sessions' traffic first: their queues fill as they would, and a
		// stuck or failing handler is seen stuck or failing before the healthy traffic.
		for n := range faulty {
			for i := range 2 {
				bed.inbound(t, n, fmt.Sprintf("in %d %s %d", phase, n, i))
			}
		}
		bed.r.eventually(fmt.Sprintf("phase %d's faults in effect (%s)", phase, plan), func() bool {
			for _, ok := range effects {
				if !ok() {
					return false
				}
			}
			return true
		})
		for _, n := range healthy {
			for i := range 2 {
				text := fmt.Sprintf("in %d %s %d", phase, n, i)
				if !bed.inbound(t, n, text) {
					t.Fatalf("%s: healthy session %s has no connection at phase %d", plan, n, phase)
				}
				sent = append(sent, text)
			}
			apiIDs[n] = append(apiIDs[n], bed.send(t, n, fmt.Sprintf("out %d %s", phase, n)))
		}
		// While the faults last (storms still running, handlers still stuck), every healthy
		// session delivers everything, once.
		bed.r.eventually(fmt.Sprintf("phase %d delivered on the healthy sessions (%s)", phase, plan), func() bool {
			for _, n := range healthy {
				for _, text := range sent {
					if strings.Contains(text, " "+n+" ") && !slices.Contains(bed.texts(n), text) {
						return false
					}
				}
				if _, ok := once(bed.sentIDs(n), apiIDs[n]); !ok {
					return false
				}
			}
			return true
		})
		close(stop)
		storms.Wait()
	}
	// The faults that page at once (a logout or a replaced stream, told on the open
	// connection) have their incident before the healthy sessions are checked for none.
	for n, seq := range faulty {
		if corrupt[n] {
			continue
		}
		for i, f := range seq {
			if i < 3 && (f == faultLogout || f == faultReplaced) {
				bed.r.eventually(fmt.Sprintf("%s's incident (%s)", n, plan), func() bool { return bed.hasIncident(n) })
				break
			}
		}
	}
	for _, n := range healthy {
		var want []string
		for _, text := range sent {
			if strings.Contains(text, " "+n+" ") {
				want = append(want, text)
			}
		}
		if what, ok := once(bed.texts(n), want); !ok || len(bed.texts(n)) != len(want) {
			t.Fatalf("%s: %s's handler: %s; got %v, want %v", plan, n, what, bed.texts(n), want)
		}
		for _, d := range bot.messages(n) {
			if d.Session != n || d.Header != n {
				t.Errorf("%s: %s's handler got a delivery for session %q (header %q)", plan, n, d.Session, d.Header)
				break
			}
		}
		if what, ok := once(bed.sentIDs(n), apiIDs[n]); !ok || len(bed.sentIDs(n)) != len(apiIDs[n]) {
			t.Fatalf("%s: %s's device sent %v, want %v once each (%s)", plan, n, bed.sentIDs(n), apiIDs[n], what)
		}
	}
	if got := bed.incidentsOf(healthy); len(got) > 0 {
		t.Fatalf("%s: incidents on healthy sessions:\n%s", plan, strings.Join(got, "\n"))
	}
	if got := bed.faultEventsOf(healthy); len(got) > 0 {
		t.Fatalf("%s: fault events on healthy sessions:\n%s", plan, strings.Join(got, "\n"))
	}
}

// faultCodes are the events that say something went wrong with a session or its queues.
var faultCodes = []string{"WA_DISCONNECTED", "WA_LOGGED_OUT", "WA_TEMP_BAN", "WA_STREAM_REPLACED", "WA_STREAM_ERROR",
	"WA_KEEPALIVE_TIMEOUT", "WA_STALE", "WA_CONNECT_FAILURE", "WA_DECRYPT_FAILED", "WA_SEND_FAILED", "WA_SEND_STOPPED",
	"QUEUE_STUCK", "QUEUE_FULL", "QUEUE_DEAD_LETTER", "HANDLER_ERROR", "HANDLER_PANIC"}

// faultEventsOf lists the fault events whose session or queue label names one of sessions.
func (b *sessionBed) faultEventsOf(sessions []string) []string {
	b.r.t.Helper()
	_, body := b.r.do("GET", "/api/v1/events?limit=1000", "")
	var evs []struct {
		Code   string
		Labels map[string]string
	}
	if err := json.Unmarshal([]byte(body), &evs); err != nil {
		b.r.t.Fatalf("events: %v: %s", err, body)
	}
	var out []string
	for _, e := range evs {
		if !slices.Contains(faultCodes, e.Code) {
			continue
		}
		for _, n := range sessions {
			if concerns(e.Labels["session"], n) || concerns(e.Labels["queue"], n) {
				out = append(out, fmt.Sprintf("%s %v", e.Code, e.Labels))
			}
		}
	}
	return out
}
