package monitor

import "github.com/prometheus/client_golang/prometheus"

// StateSet is a one-hot state gauge in the style of kube-state-metrics'
// kube_pod_status_phase: one series per possible state, 1 for the current one and 0 for
// the others, present from the first scrape whatever the state. A query such as
// `remedy_whatsapp_state{state="unpaired"} == 1` then finds the never-paired instances of
// a fleet, which an absent series cannot.
type StateSet struct {
	desc    *prometheus.Desc
	states  []string
	current func() string
}

// NewStateSet describes the gauge name{label="…"} over states (in the order given);
// current returns the state now (a state not in the list is exposed as an extra series
// with 1, so it is never hidden). Register it with the registry that serves /metrics.
func NewStateSet(name, help, label string, states []string, current func() string) *StateSet {
	return &StateSet{desc: prometheus.NewDesc(name, help, []string{label}, nil), states: states, current: current}
}

// Describe implements prometheus.Collector.
func (s *StateSet) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *StateSet) Collect(ch chan<- prometheus.Metric) {
	now, known := s.current(), false
	for _, st := range s.states {
		v := 0.0
		if st == now {
			v, known = 1, true
		}
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, v, st)
	}
	if !known {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, 1, now)
	}
}

// KeyedStateSet is StateSet for several things of one kind (the WhatsApp sessions): one
// series per thing and state, name{key="…",label="…"}.
type KeyedStateSet struct {
	desc    *prometheus.Desc
	states  []string
	current func() map[string]string
}

// NewKeyedStateSet describes the gauge name{key="…",label="…"} over states; current
// returns each thing's state now (by its key value). A state not in the list is
// exposed as an extra series with 1.
func NewKeyedStateSet(name, help, key, label string, states []string, current func() map[string]string) *KeyedStateSet {
	return &KeyedStateSet{desc: prometheus.NewDesc(name, help, []string{key, label}, nil), states: states, current: current}
}

// Describe implements prometheus.Collector.
func (s *KeyedStateSet) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *KeyedStateSet) Collect(ch chan<- prometheus.Metric) {
	for k, now := range s.current() {
		known := false
		for _, st := range s.states {
			v := 0.0
			if st == now {
				v, known = 1, true
			}
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, v, k, st)
		}
		if !known {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, 1, k, now)
		}
	}
}
