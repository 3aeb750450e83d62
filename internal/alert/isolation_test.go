package alert

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/store"
)

// behaviour is what a scripted channel does with one Send.
type behaviour int

const (
	ok   behaviour = iota
	fail           // an error at once (connection refused)
	hang           // no answer: returns only when the send's time is up
)

// scriptedChannel follows its mode for every Send; it records what it delivered.
type scriptedChannel struct {
	name string
	mu   sync.Mutex
	mode behaviour
	got  map[string]int // alert key -> deliveries
}

func newScripted(name string) *scriptedChannel {
	return &scriptedChannel{name: name, got: map[string]int{}}
}

func (c *scriptedChannel) Name() string { return c.name }
func (c *scriptedChannel) set(m behaviour) {
	c.mu.Lock()
	c.mode = m
	c.mu.Unlock()
}
func (c *scriptedChannel) Send(ctx context.Context, alerts []Alert) error {
	c.mu.Lock()
	mode := c.mode
	c.mu.Unlock()
	switch mode {
	case fail:
		return errors.New("connection refused")
	case hang:
		<-ctx.Done()
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range alerts {
		c.got[a.Instance]++
	}
	return nil
}
func (c *scriptedChannel) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[key] > 0
}

// The rule behind "a channel that hangs holds every other channel": each channel
// delivers on its own, as each integration of an Alertmanager receiver does. For
// random sequences (seeded) of alerts and of channels turning hung, failing and
// healthy, after every step:
//   - every alert submitted is stored at once (no time passes): storing never waits
//     for a delivery;
//   - a channel healthy since before an alert was submitted has it at once, whatever
//     the others do;
//   - on every channel, every alert is delivered or waiting in the outbox (visible);
//
// and once every channel is healthy again, every channel gets every alert.
func TestEachChannelDeliversOnItsOwn(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REMEDY_ALERT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	runs := 8
	if testing.Short() {
		runs = 3
	}
	t.Logf("seed %d (REMEDY_ALERT_SEED reruns it)", seed)
	for run := range runs {
		isolationSequence(t, seed+uint64(run))
	}
}

func isolationSequence(t *testing.T, seed uint64) {
	synctest.Test(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(seed, 3))
		db := openDB(t)
		var chans []*scriptedChannel
		var list []Channel
		for i := range 2 + r.IntN(3) {
			c := newScripted(fmt.Sprintf("c%d", i))
			chans, list = append(chans, c), append(list, c)
		}
		p, err := New(context.Background(), Options{DB: db, Channels: list})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		healthy := map[string]bool{}
		for _, c := range chans {
			healthy[c.name] = true
		}
		var keys []string
		for step := range 30 {
			switch r.IntN(4) {
			case 0: // a channel changes
				c := chans[r.IntN(len(chans))]
				m := behaviour(r.IntN(3))
				c.set(m)
				healthy[c.name] = m == ok
			case 1: // time passes
				time.Sleep(time.Duration(r.IntN(40_000)) * time.Millisecond)
			default: // an alert
				key := "q" + strconv.Itoa(step)
				keys = append(keys, key)
				// A channel that is healthy with nothing of its own waiting (a failed
				// batch's retry, a send still hanging) must not wait for anything.
				pending, _ := p.Pending(ctx)
				clear := map[string]bool{}
				for _, c := range chans {
					clear[c.name] = healthy[c.name] && !slices.ContainsFunc(pending, func(e OutboxEntry) bool { return e.Channel == c.name })
				}
				start := time.Now()
				p.Submit(alertDecision("queue-stuck", key, engine.Firing, "error", start))
				synctest.Wait()
				var n int
				if err := db.Get(ctx, &n, `SELECT count(*) FROM alerts`); err != nil || n != len(keys) {
					t.Fatalf("seed %d step %d: %d of %d alerts stored at once (%v)", seed, step, n, len(keys), err)
				}
				for _, c := range chans {
					if clear[c.name] && !c.has(key) {
						t.Fatalf("seed %d step %d: %s, healthy with nothing waiting, does not have %s at once", seed, step, c.name, key)
					}
				}
				if time.Since(start) != 0 {
					t.Fatalf("seed %d: time passed while storing", seed)
				}
			}
			synctest.Wait()
			visible(t, seed, p, chans, keys)
		}
		for _, c := range chans {
			c.set(ok)
		}
		// Within 6 minutes (the longest retry delay is 5), on the bubble's clock: a second
		// at a time until every channel has every alert.
		all := func() bool {
			for _, c := range chans {
				for _, k := range keys {
					if !c.has(k) {
						return false
					}
				}
			}
			return true
		}
		for end := time.Now().Add(6 * time.Minute); !all() && time.Now().Before(end); {
			time.Sleep(time.Second)
			synctest.Wait()
		}
		for _, c := range chans {
			for _, k := range keys {
				if !c.has(k) {
					t.Fatalf("seed %d: %s never got %s once healthy", seed, c.name, k)
				}
			}
		}
	})
}

// visible checks that on every channel each alert is delivered or in the outbox.
func visible(t *testing.T, seed uint64, p *Pipeline, chans []*scriptedChannel, keys []string) {
	t.Helper()
	pending, err := p.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		ID       int64  `db:"id"`
		Instance string `db:"instance"`
	}
	if err := p.opts.DB.Select(context.Background(), &rows, `SELECT id, instance FROM alerts`); err != nil {
		t.Fatal(err)
	}
	inst := map[int64]string{}
	for _, r := range rows {
		inst[r.ID] = r.Instance
	}
	for _, c := range chans {
		for _, k := range keys {
			waiting := slices.ContainsFunc(pending, func(e OutboxEntry) bool { return e.Channel == c.name && inst[e.AlertID] == k })
			if !c.has(k) && !waiting {
				t.Fatalf("seed %d: %s neither has %s nor shows it waiting", seed, c.name, k)
			}
		}
	}
}

// The field report: a webhook that does not answer held the log (and WhatsApp, and
// the storing of later alerts) for 30 s a try. Now the log has the alert at once and a
// second alert is stored at once while the webhook still hangs.
func TestHangingChannelDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		db := openDB(t)
		hung, logc := newScripted("hook"), newScripted("log")
		hung.set(hang)
		p, err := New(context.Background(), Options{DB: db, Channels: []Channel{hung, logc}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.Run(ctx)
		start := time.Now()
		p.Submit(alertDecision("queue-stuck", "a", engine.Firing, "error", start))
		synctest.Wait()
		p.Submit(alertDecision("queue-stuck", "b", engine.Firing, "critical", start))
		synctest.Wait()
		var n int
		if err := db.Get(ctx, &n, `SELECT count(*) FROM alerts`); err != nil || n != 2 {
			t.Fatalf("stored %d of 2 while the webhook hangs (%v)", n, err)
		}
		if !logc.has("a") || !logc.has("b") {
			t.Fatalf("the log waited for the hung webhook: has a %v, b %v after %s", logc.has("a"), logc.has("b"), time.Since(start))
		}
	})
}

// signalChannel tells of each delivery on a channel.
type signalChannel struct {
	name string
	got  chan struct{}
}

func (c *signalChannel) Name() string { return c.name }
func (c *signalChannel) Send(_ context.Context, alerts []Alert) error {
	for range alerts {
		c.got <- struct{}{}
	}
	return nil
}

// BenchmarkDeliveryBesideAHungChannel: one alert from Submit to the log channel while
// the webhook never answers (real time, a real SQLite file): the time is storing plus
// the log's own delivery, with no 30 s try of the webhook in it.
func BenchmarkDeliveryBesideAHungChannel(b *testing.B) {
	db, err := store.Open(context.Background(), store.Options{Path: filepath.Join(b.TempDir(), "remedy.db"), Schema: store.RemedySchema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	hung := newScripted("hook")
	hung.set(hang)
	logc := &signalChannel{name: "log", got: make(chan struct{}, 1)}
	p, err := New(context.Background(), Options{DB: db, Channels: []Channel{hung, logc}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	i := 0
	for b.Loop() {
		i++
		p.Submit(alertDecision("queue-stuck", "q"+strconv.Itoa(i), engine.Firing, "error", time.Now()))
		<-logc.got
	}
}
