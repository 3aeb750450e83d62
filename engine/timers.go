package engine

import (
	"container/heap"
	"time"
)

// The engine keeps its instances' deadlines in a min-heap ordered by (time, policy order,
// instance key), so an input costs O(log n) in the number of instances instead of a scan
// of all of them, and timers that fall due together run in the same order on every run
// (map order would differ from run to run, and with it the jitter each draw gets).
//
// Entries are invalidated lazily: an instance records the sequence number of its live
// entry, and an entry whose number is stale, or whose instance was collected or belongs
// to a replaced policy state, is skipped when it reaches the top.

type timerEntry struct {
	at   time.Time
	ps   *policyState
	inst *instance
	seq  uint64
}

type timerHeap []timerEntry

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.ps.idx != b.ps.idx {
		return a.ps.idx < b.ps.idx
	}
	return a.inst.key < b.inst.key
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return x
}

// dirtyInst is an instance whose deadline must be recomputed.
type dirtyInst struct {
	ps   *policyState
	inst *instance
}

// touch marks an instance's deadline stale after it changed.
func (e *Engine) touch(ps *policyState, inst *instance) {
	if inst.dirty {
		return
	}
	inst.dirty = true
	e.dirty = append(e.dirty, dirtyInst{ps, inst})
}

func (e *Engine) live(ps *policyState, inst *instance) bool {
	return e.named[ps.p.Name] == ps && ps.instances[inst.key] == inst
}

func (e *Engine) valid(t *timerEntry) bool {
	return t.seq == t.inst.dueSeq && e.live(t.ps, t.inst)
}

// flushDirty recomputes the deadlines of changed instances.
func (e *Engine) flushDirty() {
	for i, d := range e.dirty {
		e.dirty[i] = dirtyInst{}
		d.inst.dirty = false
		if !e.live(d.ps, d.inst) {
			continue
		}
		if d.inst.collectible(d.ps.p, e.now) {
			e.forget(d.ps, d.inst)
			continue
		}
		at := d.inst.deadline(d.ps.p, e.opts.ResultGrace, e.now)
		if at.Equal(d.inst.due) {
			continue // its entry is still in the heap
		}
		d.inst.due = at
		d.inst.dueSeq++
		if !at.IsZero() {
			heap.Push(&e.timers, timerEntry{at: at, ps: d.ps, inst: d.inst, seq: d.inst.dueSeq})
		}
	}
	e.dirty = e.dirty[:0]
	// Every change of a deadline leaves a stale entry behind until its time comes; a
	// busy instance would grow the heap by one per input. Rebuilt when mostly stale
	// (amortised O(1) per push).
	if n := len(e.timers); n > 1024 {
		live := 0
		for _, ps := range e.pols {
			live += len(ps.instances)
		}
		if n > 4*live {
			e.compactTimers()
		}
	}
}

// compactTimers drops the heap's stale entries.
func (e *Engine) compactTimers() {
	kept := e.timers[:0]
	for _, t := range e.timers {
		if e.valid(&t) {
			kept = append(kept, t)
		}
	}
	clear(e.timers[len(kept):])
	e.timers = kept
	heap.Init(&e.timers)
}

// NextDeadline is when the engine next needs a Tick (zero if nothing is scheduled).
func (e *Engine) NextDeadline() time.Time {
	e.flushDirty()
	for len(e.timers) > 0 {
		if top := &e.timers[0]; e.valid(top) {
			return top.at
		}
		heap.Pop(&e.timers)
	}
	return time.Time{}
}

// runTimers advances every timer due at or before t, each at its own time, instances
// due at the same time in policy order and then key order.
func (e *Engine) runTimers(t time.Time) {
	for guard := 0; guard < 1_000_000; guard++ {
		next := e.NextDeadline()
		if next.IsZero() || next.After(t) {
			return
		}
		if next.After(e.now) {
			e.now = next
		}
		var due []dirtyInst
		for len(e.timers) > 0 {
			top := e.timers[0]
			if !e.valid(&top) {
				heap.Pop(&e.timers)
				continue
			}
			if top.at.After(e.now) {
				break
			}
			heap.Pop(&e.timers)
			top.inst.due = time.Time{}
			top.inst.dueSeq++
			due = append(due, dirtyInst{top.ps, top.inst})
		}
		for _, d := range due {
			if e.live(d.ps, d.inst) {
				e.stats.TimerVisits++
				e.advance(d.ps, d.inst)
				e.touch(d.ps, d.inst)
			}
		}
	}
}

// rebuildTimers drops every heap entry and recomputes every deadline (after a Swap or a
// Restore, when the policy states were replaced).
func (e *Engine) rebuildTimers() {
	e.timers = e.timers[:0]
	e.dirty = e.dirty[:0]
	for _, ps := range e.pols {
		for _, key := range ps.sortedKeys() {
			inst := ps.instances[key]
			inst.due, inst.dirty = time.Time{}, false
			e.touch(ps, inst)
		}
	}
}

// forget drops an instance that holds nothing a fresh one would not.
func (e *Engine) forget(ps *policyState, inst *instance) {
	delete(ps.instances, inst.key)
	if inst.key == OverflowKey {
		ps.limitHit = false
	}
}
