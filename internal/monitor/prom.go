package monitor

import (
	"net/http"
	"regexp"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/remedy-run/remedy/engine"
)

// Metrics is remedy's Prometheus exposition: every sample value, and the engine's,
// executor's and alert pipeline's own figures. The registry is injected.
type Metrics struct {
	gatherer prometheus.Gatherer
	engine   atomic.Pointer[engine.Stats]

	PolicyFiring     *prometheus.GaugeVec
	PolicyFlapping   *prometheus.GaugeVec
	ReloadSuccess    prometheus.Gauge
	ReloadTimestamp  prometheus.Gauge
	ActionOutcomes   *prometheus.CounterVec
	ActionDuration   *prometheus.HistogramVec
	AlertsSent       *prometheus.CounterVec
	AlertsSuppressed *prometheus.CounterVec
	AlertsFailed     *prometheus.CounterVec
	OutboxPending    prometheus.Gauge
	// Events counts every event by code: errors by code, reconnects, restarts.
	Events *prometheus.CounterVec
	// SendFailures counts failed tries of the send API's messages by session and reason
	// (WA_SEND_FAILED's labels).
	SendFailures *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg; last supplies the latest sample.
func NewMetrics(reg *prometheus.Registry, last func() engine.Sample) *Metrics {
	m := &Metrics{gatherer: reg,
		PolicyFiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "remedy_policy_firing_instances",
			Help: "Instances of a policy that are firing."}, []string{"policy"}),
		PolicyFlapping: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "remedy_policy_flapping_instances",
			Help: "Instances of a policy that are flapping (alert.flapping): their notifications are held until they settle."}, []string{"policy"}),
		ReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "remedy_policy_reload_success",
			Help: "Whether the last policy reload succeeded (1) or failed (0)."}),
		ReloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "remedy_policy_reload_timestamp_seconds",
			Help: "Time of the last successful policy load."}),
		ActionOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_action_attempts_total",
			Help: "Recovery attempts by action and outcome."}, []string{"action", "outcome"}),
		ActionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "remedy_action_duration_seconds",
			Help: "Duration of recovery attempts.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}, []string{"action"}),
		AlertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_alerts_sent_total",
			Help: "Alerts delivered, by channel."}, []string{"channel"}),
		AlertsSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_alerts_suppressed_total",
			Help: "Notifications held back by a rate limit, silence or inhibition, by reason."}, []string{"reason"}),
		AlertsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_alert_delivery_failures_total",
			Help: "Failed delivery tries, by channel (the alert stays in the outbox)."}, []string{"channel"}),
		OutboxPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "remedy_alert_outbox_pending",
			Help: "Alerts waiting in the outbox."}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_events_total",
			Help: "Events seen by the engine, by code."}, []string{"code"}),
		SendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "remedy_whatsapp_send_failures_total",
			Help: "Failed tries to send a bot's message, by session and reason (not_connected, timeout, server_error, refused, invalid, media, chat_stopped, unknown)."}, []string{"session", "reason"}),
	}
	reg.MustRegister(m.PolicyFiring, m.PolicyFlapping, m.ReloadSuccess, m.ReloadTimestamp, m.ActionOutcomes, m.ActionDuration,
		m.AlertsSent, m.AlertsSuppressed, m.AlertsFailed, m.OutboxPending, m.Events, m.SendFailures,
		&sampleCollector{last: last}, &engineCollector{m: m})
	return m
}

// ObserveEngine records the engine's counters (the engine's goroutine calls it; the
// scrape reads the copy).
func (m *Metrics) ObserveEngine(st engine.Stats) { m.engine.Store(&st) }

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{})
}

var (
	engineDescs = map[string]*prometheus.Desc{
		"inputs":      prometheus.NewDesc("remedy_engine_inputs_total", "Inputs processed by the engine.", nil, nil),
		"evaluations": prometheus.NewDesc("remedy_engine_evaluations_total", "Condition evaluations.", nil, nil),
		"errors":      prometheus.NewDesc("remedy_engine_evaluation_errors_total", "Condition evaluations that failed (counted as false).", nil, nil),
		"decisions":   prometheus.NewDesc("remedy_engine_decisions_total", "Decisions made.", nil, nil),
		"suppressed":  prometheus.NewDesc("remedy_engine_notifications_rate_limited_total", "Notifications held back by policy rate limits.", nil, nil),
	}
)

type engineCollector struct{ m *Metrics }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range engineDescs {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.engine.Load()
	if st == nil {
		st = &engine.Stats{}
	}
	for k, v := range map[string]uint64{"inputs": st.Inputs, "evaluations": st.Evaluations, "errors": st.EvalErrors,
		"decisions": st.Decisions, "suppressed": st.Suppressed} {
		ch <- prometheus.MustNewConstMetric(engineDescs[k], prometheus.CounterValue, float64(v))
	}
}

// sampleCollector exposes the latest sample: queue_<name>_<x> becomes
// remedy_queue_<x>{queue="<name>"}, service_<name>_<x> becomes remedy_service_<x>
// {service="<name>"}, and any other metric remedy_<metric>.
type sampleCollector struct{ last func() engine.Sample }

var familyRE = regexp.MustCompile(`^(queue|service)_([a-z0-9]+(?:_[a-z0-9]+)*?)_(depth|oldest_seconds|fill|rss_mb|up)$`)

func (c *sampleCollector) Describe(ch chan<- *prometheus.Desc) {} // unchecked: names come from samples

func (c *sampleCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.last()
	for name, v := range s.Values {
		var desc *prometheus.Desc
		var labels []string
		if m := familyRE.FindStringSubmatch(name); m != nil {
			desc = prometheus.NewDesc("remedy_"+m[1]+"_"+m[3], "Sampled "+m[1]+" "+m[3]+".", []string{m[1]}, nil)
			labels = []string{m[2]}
		} else {
			desc = prometheus.NewDesc("remedy_"+name, "Sampled "+name+".", nil, nil)
		}
		if mt, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- mt
		}
	}
}
