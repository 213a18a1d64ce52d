package learn

import (
	"errors"
	"time"
)

// Loop is one iteration's decision procedure over shared knowledge: judge
// the change under trial, roll it back if the window after it is worse,
// then plan and admit at most one new change, so that every verdict is
// about one change. In recommendation-only mode it admits nothing and
// returns the recommendations for an operator to apply or reject.
type Loop struct {
	Guard     Guardrails
	Tolerance Tolerance
	// Settle is how long a change runs before it is judged (default 5
	// minutes).
	Settle time.Duration
	// Memory is how long a rolled-back change keeps the loop from trying
	// the same direction on its setting again (default 30 minutes).
	Memory time.Duration
	// RecommendOnly keeps every recommendation open instead of applying it.
	RecommendOnly bool
	Knowledge     *Knowledge
	// Trial is the change being judged, if any (the shell persists it with
	// the knowledge).
	Trial *Change
}

// Refusal is a recommendation the guardrails did not admit.
type Refusal struct {
	Recommendation Recommendation `json:"recommendation"`
	Reason         string         `json:"reason"`
}

// StepResult is what one iteration decided.
type StepResult struct {
	Applied    []Change         `json:"applied,omitempty"`
	RolledBack []Change         `json:"rolledBack,omitempty"` // the rollbacks themselves
	Kept       []Change         `json:"kept,omitempty"`       // trials judged no worse
	Open       []Recommendation `json:"open,omitempty"`
	Refused    []Refusal        `json:"refused,omitempty"`
}

// Step runs one iteration on observation o. The changes it returns are
// already recorded in the knowledge; the shell applies them to the system
// (and records them) in order.
func (l *Loop) Step(o Observation) (StepResult, error) {
	var res StepResult
	settle := l.Settle
	if settle <= 0 {
		settle = 5 * time.Minute
	}
	if l.Trial != nil {
		if o.At.Sub(l.Trial.At) < settle {
			return res, nil
		}
		worse, why, ok := Judge(l.Trial.Before, o.Outcome(), l.Tolerance)
		if !ok {
			return res, nil
		}
		if !worse {
			res.Kept = append(res.Kept, *l.Trial)
			l.Trial = nil
		} else {
			rb, err := l.Guard.Rollback(*l.Trial, l.Knowledge, o.At, Evidence{Metric: "Outcome", Note: why})
			if err != nil {
				if errors.Is(err, ErrKillSwitch) {
					return res, nil
				}
				return res, err
			}
			if err := l.Knowledge.Apply(rb); err != nil {
				return res, err
			}
			res.RolledBack = append(res.RolledBack, rb)
			l.Trial = nil
			return res, nil
		}
	}
	o.Undone = l.undone(o.At)
	for _, r := range Plan(o) {
		if o.Undone[r.Setting.Key()].Blocks(r.From, r.To) {
			res.Refused = append(res.Refused, Refusal{r, "a change in this direction was rolled back as worse within the loop's memory"})
			continue
		}
		if l.RecommendOnly {
			res.Open = append(res.Open, r)
			continue
		}
		if len(res.Applied) > 0 {
			res.Refused = append(res.Refused, Refusal{r, "one change at a time: another change is under trial"})
			continue
		}
		c, err := l.Guard.Admit(r, l.Knowledge, o.At, o.Outcome())
		if err != nil {
			res.Refused = append(res.Refused, Refusal{r, err.Error()})
			continue
		}
		if err := l.Knowledge.Apply(c); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, c)
		l.Trial = &c
	}
	return res, nil
}

// undone is, by setting, the directions of the changes rolled back as
// worse within the loop's memory before now.
func (l *Loop) undone(now time.Time) map[string]Undone {
	memory := l.Memory
	if memory <= 0 {
		memory = 30 * time.Minute
	}
	out := map[string]Undone{}
	if l.Knowledge == nil {
		return out
	}
	for _, c := range l.Knowledge.Changes {
		if c.RollbackOf == "" || now.Sub(c.At) > memory || now.Before(c.At) {
			continue
		}
		// The rollback moves opposite to the change it undoes.
		u := out[c.Setting.Key()]
		switch {
		case c.Value < c.Previous:
			u.Up = true
		case c.Value > c.Previous:
			u.Down = true
		}
		out[c.Setting.Key()] = u
	}
	return out
}
