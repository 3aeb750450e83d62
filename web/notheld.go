package web

// OutcomeNotHeld is the outcome of an audit row that says an attempt's reported success
// did not hold (the fault was reported again, or its resolving evidence did not come in
// time); the row carries the attempt's decision ID and, in Error, why.
const OutcomeNotHeld = "did not hold"

// foldNotHeld shows each attempt once: a "did not hold" row is folded into the row of
// the attempt it is about (same decision ID, outcome "succeeded"), which then reads
// "succeeded, did not hold" with the reason, so the recovery actions agree with the
// incident (an escalation after "every recovery step failed" next to rows that say
// "succeeded" told two stories). A row whose attempt is not in rows is kept as it is.
func foldNotHeld(rows []ActionRecord) []ActionRecord {
	why := map[int64]string{}
	for _, r := range rows {
		if r.Outcome == OutcomeNotHeld {
			why[r.DecisionID] = r.Error
		}
	}
	if len(why) == 0 {
		return rows
	}
	found := map[int64]bool{}
	for i, r := range rows {
		if reason, ok := why[r.DecisionID]; ok && r.Outcome == "succeeded" {
			rows[i].Outcome, rows[i].Error = "succeeded, "+OutcomeNotHeld, reason
			found[r.DecisionID] = true
		}
	}
	out := rows[:0]
	for _, r := range rows {
		if r.Outcome != OutcomeNotHeld || !found[r.DecisionID] {
			out = append(out, r)
		}
	}
	return out
}
