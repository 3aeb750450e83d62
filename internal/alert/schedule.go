package alert

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Daily is the daily report's schedule: exactly one report per calendar day in its time
// zone, at the first time of that day the cron spec names. The spec is matched against
// the wall clock, so a time that does not exist on a daylight-saving day (02:30 on the
// night the clock jumps from 02:00 to 03:00) runs when the clock jumps past it, and a
// time that happens twice (02:30 on the night it goes back) runs the first time —
// what systemd timers and Vixie cron do; robfig/cron in the zone skips the first and
// repeats the second (field case 13).
type Daily struct {
	spec cron.Schedule
	loc  *time.Location
}

// ParseDaily parses a five-field cron spec ("30 2 * * *"); loc nil means UTC. It returns
// the parser's error for a bad spec.
func ParseDaily(spec string, loc *time.Location) (*Daily, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("report schedule %q: %w", spec, err)
	}
	if loc == nil {
		loc = time.UTC
	}
	return &Daily{spec: s, loc: loc}, nil
}

// Next is when the report after the one sent at last (zero: none yet) is due, seen at
// now: the first scheduled time on a calendar day after last's. If that time has
// passed (remedy was down), the report is due now, so a restart neither loses nor
// repeats a day; with no previous report, the first scheduled time after now.
func (d *Daily) Next(now, last time.Time) time.Time {
	floor := wall(now, d.loc)
	if !last.IsZero() {
		lw := wall(last, d.loc)
		floor = time.Date(lw.Year(), lw.Month(), lw.Day()+1, 0, 0, 0, 0, time.UTC).Add(-time.Second)
	}
	for i := 0; i < 400; i++ {
		w := d.spec.Next(floor) // in UTC, which has no daylight saving: the wall clock
		if w.IsZero() {
			return time.Time{}
		}
		t := d.instant(w)
		if !last.IsZero() && !day(t, d.loc).After(day(last, d.loc)) {
			floor = w // folded onto last's day by a clock change; take the next one
			continue
		}
		if t.Before(now) {
			if last.IsZero() {
				floor = w
				continue
			}
			return now
		}
		return t.In(d.loc)
	}
	return time.Time{}
}

// wall is t's wall clock in loc, as a UTC time with the same fields.
func wall(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

func day(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC)
}

// instant is the first moment at which loc's wall clock shows w, or — if the clock
// skips w — the moment it jumps past it.
func (d *Daily) instant(w time.Time) time.Time {
	var cands []time.Time
	for _, probe := range []time.Duration{-36 * time.Hour, 36 * time.Hour} {
		_, off := w.Add(probe).In(d.loc).Zone()
		c := w.Add(-time.Duration(off) * time.Second)
		if wall(c, d.loc).Equal(w) {
			cands = append(cands, c)
		}
	}
	switch {
	case len(cands) == 2 && cands[1].Before(cands[0]):
		return cands[1]
	case len(cands) > 0:
		return cands[0]
	}
	// A gap: the first instant whose wall clock is at or past w.
	_, off1 := w.Add(-36 * time.Hour).In(d.loc).Zone()
	_, off2 := w.Add(36 * time.Hour).In(d.loc).Zone()
	lo := w.Add(-time.Duration(max(off1, off2)) * time.Second)
	hi := w.Add(-time.Duration(min(off1, off2)) * time.Second)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if wall(mid, d.loc).Before(w) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if t := hi.Truncate(time.Second); !wall(t, d.loc).Before(w) {
		return t // clock changes happen on whole seconds
	}
	return hi
}
