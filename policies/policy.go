// Package policies reads and validates policy files: the YAML schema, positions for
// every error, the embedded default policies and the catalogue of event codes and
// metrics. It knows nothing about the daemon.
package policies

import (
	"fmt"
	"text/template"
	"time"

	"github.com/remedy-run/remedy/conditions"
)

// Severity orders how bad an incident is.
type Severity string

// The severities, from least to most urgent.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Error    Severity = "error"
	Critical Severity = "critical"
)

// Rank orders severities (info = 1 … critical = 4; 0 for an unknown one).
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warning:
		return 2
	case Error:
		return 3
	case Critical:
		return 4
	}
	return 0
}

// Mode says whether a policy's actions run.
type Mode string

// Policy modes.
const (
	Enforce Mode = "enforce"
	DryRun  Mode = "dry_run"
)

// Jitter is how backoff delays are randomised.
type Jitter string

// Jitter kinds: full draws from [0, d], equal from [d/2, d], none uses d.
const (
	JitterFull  Jitter = "full"
	JitterEqual Jitter = "equal"
	JitterNone  Jitter = "none"
)

// Pos is a position in a policy file; Line and Col count from 1.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// SampleCode in `on:` means every metrics sample.
const SampleCode = "sample"

// Policy is one validated policy. It is immutable once loaded.
type Policy struct {
	Name          string
	Description   string
	On            []string
	When          string
	Cond          *conditions.Condition // nil when `when` is absent (always true)
	For           time.Duration
	KeepFiringFor time.Duration
	GroupBy       []string
	// MaxInstances bounds the instances a group_by policy keeps (default
	// DefaultMaxInstances); past it, new label values share one overflow instance.
	MaxInstances int
	Severity     Severity
	ResolveOn    []string
	// RetryOn are events that cut a waiting ladder's backoff short: the next attempt runs
	// at once (for example WA_REACHABLE: the network is back, try now).
	RetryOn []string
	// Rearm, if set, lets a retry_on event also restart an exhausted ladder (rearm.go).
	Rearm       *Rearm
	StableFor   time.Duration
	Actions     []Step
	Escalate    *Escalate
	Breaker     *Breaker
	Alert       Alert
	Inhibits    []Inhibit // see Inhibit
	Labels      map[string]string
	Annotations map[string]string
	Mode        Mode
	Enabled     bool

	Pos     Pos // where the policy starts
	WhenPos Pos
	// Hash identifies the definition: a reload keeps the state of a policy whose hash is
	// unchanged. Description and annotations are not part of it.
	Hash string
	// Origin says whether the policy is an embedded default, the operator's own, or the
	// operator's replacement of a default (set by LoadMerged; "" elsewhere).
	Origin Origin

	annotations map[string]*template.Template
	// switchOff marks an entry with only name and enabled: false, which switches off the
	// embedded default of that name.
	switchOff bool
}

// IsSample reports whether the policy is a standing condition over samples.
func (p *Policy) IsSample() bool { return len(p.On) == 1 && p.On[0] == SampleCode }

// IsInstant reports whether an event policy fires and resolves on each event: it has
// neither actions nor resolve_on.
func (p *Policy) IsInstant() bool {
	return !p.IsSample() && len(p.Actions) == 0 && len(p.ResolveOn) == 0
}

// Step is one rung of the recovery ladder.
type Step struct {
	Do       string
	With     map[string]string
	Timeout  time.Duration
	Attempts int
	Backoff  Backoff
	Pos      Pos

	params map[string]*template.Template
	// timeoutSet records whether the file gave a timeout (strict mode warns otherwise).
	timeoutSet bool
}

// Backoff is the delay schedule between failed attempts of a step.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     Jitter
}

// Escalate raises the instance's severity after consecutive failures.
type Escalate struct {
	AfterFailures int
	Severity      Severity
}

// Breaker stops automatic recovery of an instance after too many failures.
type Breaker struct {
	Failures int
	Within   time.Duration
	OpenFor  time.Duration
}

// Alert says when and how the policy notifies.
type Alert struct {
	NotifyOn  []string
	RateLimit RateLimit
	Repeat    time.Duration
	Channels  []string
	Flapping  Flapping
}

// Flapping is flap detection for one policy's instances (Icinga's flapping thresholds,
// counted in time because a policy's inputs are events, not checks at a fixed
// interval): an instance whose state changed (fired or resolved) Threshold times
// within Window is flapping; its notifications are held until its state has held for
// Settle, and then one notification tells the state it settled in, if that differs from
// the last one sent. Threshold 0 turns detection off.
type Flapping struct {
	Window    time.Duration // default 5m, Alertmanager's group_interval
	Threshold int           // state changes within Window; default 6, three fire/resolve cycles
	// Settle is how long the state must hold to end flapping; 0 (the default) is twice
	// the longest a state held while flapping, within [DefaultFlapSettleMin, Window]:
	// a slow flap needs a longer quiet spell to be over than a fast one.
	Settle time.Duration
}

// DefaultFlapping is alert.flapping when absent.
var DefaultFlapping = Flapping{Window: 5 * time.Minute, Threshold: 6}

// DefaultFlapSettleMin is the least quiet spell that ends flapping when settle is 0.
const DefaultFlapSettleMin = 5 * time.Second

// Notifies reports whether state is in notify_on.
func (a Alert) Notifies(state string) bool {
	for _, s := range a.NotifyOn {
		if s == state {
			return true
		}
	}
	return false
}

// RateLimit is a token bucket per instance: Count notifications per Per.
type RateLimit struct {
	Count int
	Per   time.Duration
}

// Defaults applied when a key is absent.
const (
	DefaultTimeout  = 30 * time.Second
	DefaultAttempts = 1
)

// DefaultMaxInstances is max_instances for a policy with group_by: enough for every
// queue, service or database of one bot, small enough that a label carrying user ids
// cannot grow the engine without bound (Prometheus's per-rule `limit` has the same aim).
const DefaultMaxInstances = 1000

// DefaultBackoff is used for a step without `backoff`.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2, Jitter: JitterFull}

// DefaultRateLimit is one notification per instance per 5 minutes; resolved messages
// are never held back by it.
var DefaultRateLimit = RateLimit{Count: 1, Per: 5 * time.Minute}

// DefaultNotifyOn is the states that notify when notify_on is absent.
var DefaultNotifyOn = []string{"firing", "escalated", "resolved"}

// Channels that an alert may name.
var knownChannels = []string{"whatsapp", "webhook", "alertmanager", "log", "dashboard"}

// Channels returns the alert channel names, in the order the docs list them.
func Channels() []string { return append([]string(nil), knownChannels...) }
