// Package config reads remedy.yaml and REMEDY_* environment variables. With neither,
// remedy runs on defaults: ./data/, the embedded policies, the dashboard on
// 127.0.0.1:8080, WhatsApp off until paired.
package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/remedy-run/remedy/internal/yamlerr"
)

// Config is remedy's configuration.
type Config struct {
	DataDir  string `yaml:"data_dir"`
	Policies string `yaml:"policies"` // a file or directory; empty: the embedded defaults
	// DefaultPolicies keeps the embedded defaults under the operator's policies (a
	// policy of a default's name replaces it); false loads only Policies. Default true.
	DefaultPolicies bool `yaml:"default_policies"`
	// WatchPolicies reloads when a policy file changes (as SIGHUP does).
	WatchPolicies bool   `yaml:"watch_policies"`
	Timezone      string `yaml:"timezone"`
	Listen        string `yaml:"listen"`
	// Token guards the API and dashboard; required unless Listen is a loopback address.
	// Prefer TokenEnv (or REMEDY_TOKEN) to keep it out of the file.
	Token    string `yaml:"token"`
	TokenEnv string `yaml:"token_env"`
	// ReadToken lets dashboard viewers read (GET requests and the live stream) but
	// change nothing; it needs Token. ReadTokenEnv (or REMEDY_READ_TOKEN) as for Token.
	ReadToken    string `yaml:"read_token"`
	ReadTokenEnv string `yaml:"read_token_env"`
	// AllowedHosts are the Host names the server answers besides localhost, IP
	// addresses and the listen host: a reverse proxy's public name ("remedy.example.com";
	// ".example.com" for every subdomain). Others are refused (DNS rebinding).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// Ingest rules the events programs post to the API.
	Ingest Ingest `yaml:"ingest"`
	// ExecPassEnv are the names of remedy's environment variables EXEC actions get, on
	// top of the clean base (PATH, HOME, LANG, TZ, …).
	ExecPassEnv []string `yaml:"exec_pass_env"`
	// WebhookHosts are the hosts a policy's WEBHOOK may post to when its url is a
	// template ("x.example.com", or ".example.com" for its subdomains too); a templated
	// url naming another host is refused before it is sent. Empty: templated urls are
	// refused; urls written out in the policy file are never checked.
	WebhookHosts []string `yaml:"webhook_hosts"`
	// DryRun records every action without running it.
	DryRun         bool          `yaml:"dry_run"`
	Log            Log           `yaml:"log"`
	SampleInterval time.Duration `yaml:"sample_interval"`
	HealthInterval time.Duration `yaml:"health_interval"`
	// CheckInterval is how often the databases, the services and the queues are checked.
	CheckInterval  time.Duration    `yaml:"check_interval"`
	ReportSchedule string           `yaml:"report_schedule"`
	WhatsApp       WhatsApp         `yaml:"whatsapp"`
	Alerts         Alerts           `yaml:"alerts"`
	Services       []Service        `yaml:"services"`
	Queues         map[string]Queue `yaml:"queues"`

	// SessionList is `sessions:`: the WhatsApp numbers, each inheriting `whatsapp:`'s
	// keys it leaves out; empty: the one session "default" (Sessions).
	SessionList []SessionConfig `yaml:"sessions"`

	// Retention is how long remedy.db keeps each table's rows (retention.go).
	Retention Retention `yaml:"retention"`

	// StopTimeout bounds how long a shutdown waits for recovery actions in flight before
	// it abandons them (each recorded as interrupted), as systemd's TimeoutStopSec bounds
	// a unit's stop. Default 10s, so the whole stop fits packaging/remedy.service's
	// TimeoutStopSec=30s.
	StopTimeout time.Duration `yaml:"stop_timeout"`

	File string `yaml:"-"` // where it was read from ("" for defaults)
	// at gives a key's position ("file:line:col", or the variable that set it), for
	// errors found after loading (Position).
	at func(path string) string
}

// Ingest rules the events posted to the API.
type Ingest struct {
	// AllowCodes are codes of remedy's own adapters (WA_*, DB_*, STORE_*, SERVICE_*, QUEUE_* of
	// remedy's queues, HEALTH_CHECK_*, ALERT_*) that programs may post anyway, e.g. a
	// separate bot reporting its own WhatsApp connection. They keep the poster's source.
	AllowCodes []string `yaml:"allow_codes"`
	// AllowMetrics are metrics of remedy's own sampler (cpu_percent, disk_free_percent,
	// queue_inbound_depth, …: policies.OwnMetric) that programs may post anyway.
	AllowMetrics []string `yaml:"allow_metrics"`
}

// Log configures the structured log.
type Log struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// WhatsApp configures the WhatsApp connection and the admin chat.
type WhatsApp struct {
	Enabled        bool     `yaml:"enabled"`
	Store          string   `yaml:"store"` // device store; default DATA_DIR/whatsapp.db
	Admins         []string `yaml:"admins"`
	AllowedActions []string `yaml:"allowed_actions"` // for the admin chat's `run`
	SendPerMinute  int      `yaml:"send_per_minute"`
	// Handler receives the messages that are not admin commands (JSON POST, signed).
	Handler *Handler `yaml:"handler"`
	// CommandPrefix starts remedy's admin commands ("!" by default: "!status"). Only
	// remedy's own command names from admins are remedy's; every other message, "!menu"
	// included, goes to the bot.
	CommandPrefix string `yaml:"command_prefix"`
	// Send paces the bot's messages (the send API); zero values keep the defaults.
	Send Send `yaml:"send"`
}

// Alerts configures the alert channels.
type Alerts struct {
	Webhook       *Endpoint      `yaml:"webhook"`
	Alertmanager  *Endpoint      `yaml:"alertmanager"`
	PerMinute     map[string]int `yaml:"per_minute"`
	InstanceLabel string         `yaml:"instance_label"` // remedy_instance for Alertmanager
}

// Endpoint is an HTTP destination.
type Endpoint struct {
	URL       string `yaml:"url"`
	SecretEnv string `yaml:"secret_env"`
}

// Handler is the bot's webhook: an Endpoint, and which deliveries it asked for besides
// messages.
type Handler struct {
	URL       string `yaml:"url"`
	SecretEnv string `yaml:"secret_env"`
	// ReplyOutcomes asks for a "send_outcome" delivery for each answer the handler gave
	// as {"reply": …} too, not only for the messages it sent through the send API
	// (default false: an answering bot would get a second delivery for every message).
	ReplyOutcomes bool `yaml:"reply_outcomes"`
}

// Endpoint is the handler's address and secret (nil for no handler).
func (h *Handler) Endpoint() *Endpoint {
	if h == nil {
		return nil
	}
	return &Endpoint{URL: h.URL, SecretEnv: h.SecretEnv}
}

// Service is an external process to supervise.
type Service struct {
	Name    string            `yaml:"name"`
	Command []string          `yaml:"command"`
	Dir     string            `yaml:"dir"`
	Env     map[string]string `yaml:"env"`
	// PassEnv are names of remedy's environment variables the process gets (systemd's
	// PassEnvironment=); besides them it gets only a clean base and Env.
	PassEnv   []string      `yaml:"pass_env"`
	HealthURL string        `yaml:"health_url"`
	Grace     time.Duration `yaml:"grace"`
	Autostart *bool         `yaml:"autostart"`
	// MaxMemoryMB: a resident size above it fails the health check (0: no limit).
	MaxMemoryMB int `yaml:"max_memory_mb"`
}

// Queue tunes a queue.
type Queue struct {
	Capacity    int           `yaml:"capacity"`
	Workers     int           `yaml:"workers"`
	ItemTimeout time.Duration `yaml:"item_timeout"`
	MaxAttempts int           `yaml:"max_attempts"`
	StuckAfter  time.Duration `yaml:"stuck_after"`
}

// Default is the configuration with no file.
func Default() *Config {
	return &Config{DataDir: "data", Listen: "127.0.0.1:8080", DefaultPolicies: true, Timezone: "Local", Log: Log{Format: "text", Level: "info"},
		SampleInterval: 10 * time.Second, HealthInterval: 5 * time.Minute, CheckInterval: 15 * time.Second, ReportSchedule: "0 9 * * *",
		StopTimeout: 10 * time.Second,
		// WhatsApp is on but does nothing on the network until the device is paired, so a
		// first `remedy run` shows the Pair card instead of asking for a config file.
		WhatsApp: WhatsApp{Enabled: true, SendPerMinute: 10}}
}

// Errors is every problem found, each "file:line:col: message".
type Errors []string

func (e Errors) Error() string { return strings.Join(e, "\n") }

// Parse reads a configuration over the defaults, without the environment: REMEDY_*
// overrides are not applied and secret_env names are not looked up (Load does both).
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, nil) }

// Load reads the file at path (none: the defaults) and applies the environment. It is
// the one validation that `remedy config check` and `remedy run` share: it returns
// Errors with every problem, decoding and values together, each "file:line:col: …".
func Load(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if path == "" {
		return parse("", nil, getenv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, getenv)
}

// LoadAll is Load for a checker that goes on past the configuration's errors: it returns
// the configuration as decoded (the defaults where a value failed) together with every
// error, so `remedy config check` can also load the policies it names and report every
// stage's errors at once. The configuration is nil only when the file cannot be read or
// is not YAML. Never run a configuration that came with errors.
func LoadAll(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	}
	c, errs := decodeAndValidate(path, data, getenv)
	if len(errs) > 0 {
		return c, errs
	}
	return c, nil
}

// parse decodes data (none: the defaults), applies the environment when getenv is given,
// and validates; a value that failed to decode is not validated again.
func parse(file string, data []byte, getenv func(string) string) (*Config, error) {
	c, errs := decodeAndValidate(file, data, getenv)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// decodeAndValidate is parse's work: the configuration as decoded, and every error
// (sorted by position). The configuration is nil after a YAML syntax error.
func decodeAndValidate(file string, data []byte, getenv func(string) string) (*Config, Errors) {
	c := Default()
	c.File = file
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, col, msg := yamlerr.Locate(data, err)
		return nil, Errors{fmt.Sprintf("%s:%d:%d: invalid YAML: %s", file, line, col, msg)}
	}
	d := &decoder{file: file, failed: map[string]bool{}}
	if len(doc.Content) > 0 {
		d.decode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
	}
	if getenv != nil {
		c.applyEnv(getenv)
	}
	where := file
	if where == "" {
		where = "environment"
	}
	errs := Errors(d.errs)
	errs = append(errs, c.validate(where, &doc, d.failed, getenv)...)
	sortErrors(errs)
	return c, errs
}

// envOverrides names the variable applyEnv reads for each key it overrides.
var envOverrides = map[string]string{"data_dir": "REMEDY_DATA_DIR", "policies": "REMEDY_POLICIES",
	"listen": "REMEDY_LISTEN", "timezone": "REMEDY_TIMEZONE", "log.format": "REMEDY_LOG_FORMAT",
	"log.level": "REMEDY_LOG_LEVEL"}

// applyEnv lets REMEDY_* variables override the file.
func (c *Config) applyEnv(getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	set := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set("REMEDY_DATA_DIR", &c.DataDir)
	set("REMEDY_POLICIES", &c.Policies)
	set("REMEDY_LISTEN", &c.Listen)
	set("REMEDY_TIMEZONE", &c.Timezone)
	set("REMEDY_LOG_FORMAT", &c.Log.Format)
	set("REMEDY_LOG_LEVEL", &c.Log.Level)
	if v := getenv("REMEDY_ADMINS"); v != "" {
		c.WhatsApp.Admins = strings.Split(v, ",")
	}
	if v := getenv("REMEDY_TOKEN"); v != "" {
		c.Token = v
	} else if c.TokenEnv != "" {
		c.Token = getenv(c.TokenEnv)
	}
	if v := getenv("REMEDY_READ_TOKEN"); v != "" {
		c.ReadToken = v
	} else if c.ReadTokenEnv != "" {
		c.ReadToken = getenv(c.ReadTokenEnv)
	}
}

var phoneRE = regexp.MustCompile(`^\+?[0-9]{6,16}$`)

// validate checks values; doc (when from a file) gives positions.
func (c *Config) validate(file string, doc *yaml.Node, failed map[string]bool, getenv func(string) string) Errors {
	var errs Errors
	at := func(path string) string {
		// A value a REMEDY_* variable set is not where the file says: name the variable.
		if v := envOverrides[path]; v != "" && getenv != nil && getenv(v) != "" {
			return v + " (environment)"
		}
		if n := find(doc, path); n != nil {
			return fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column)
		}
		return file
	}
	c.at = at
	bad := func(path, format string, args ...any) {
		if !decodeFailed(failed, path) {
			errs = append(errs, at(path)+": "+fmt.Sprintf(format, args...))
		}
	}
	c.validateValues(bad, getenv)
	c.validateSessions(bad)
	if c.Timezone != "Local" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			bad("timezone", "timezone: %v", err)
		}
	}
	host, _, _ := net.SplitHostPort(c.Listen)
	err := CheckListen(c.Listen) // the address run binds, checked as it will bind it
	if err != nil {
		bad("listen", "listen: %v", err)
	} else if !IsLoopback(host) && c.Token == "" {
		bad("listen", "listen: %s is reachable from other machines; set a token (token_env or REMEDY_TOKEN) or listen on 127.0.0.1", c.Listen)
	}
	errs = append(errs, c.validateAccess(at, err == nil && !IsLoopback(host))...)
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "log.format must be text or json")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "log.level must be debug, info, warn or error")
	}
	if c.SampleInterval < time.Second {
		bad("sample_interval", "sample_interval must be at least 1s")
	}
	if c.CheckInterval < 100*time.Millisecond {
		bad("check_interval", "check_interval must be at least 100ms")
	}
	if c.StopTimeout < 0 {
		bad("stop_timeout", "stop_timeout must not be negative")
	}
	for i, a := range c.WhatsApp.Admins {
		if !phoneRE.MatchString(strings.TrimSpace(a)) {
			bad(fmt.Sprintf("whatsapp.admins[%d]", i), "whatsapp.admins: %q is not a phone number (digits, optional +)", a)
		}
	}
	for name, ep := range map[string]*Endpoint{"alerts.webhook": c.Alerts.Webhook, "alerts.alertmanager": c.Alerts.Alertmanager,
		"whatsapp.handler": c.WhatsApp.Handler.Endpoint()} {
		if ep == nil {
			continue
		}
		if u, err := url.Parse(ep.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(name+".url", "%s.url: %q is not an http(s) URL", name, ep.URL)
		}
	}
	names := map[string]bool{}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			bad(p, "%s: a service needs a name", p)
		case names[s.Name]:
			bad(p+".name", "%s: service %q defined twice", p, s.Name)
		}
		names[s.Name] = true
		if len(s.Command) == 0 {
			bad(p, "%s: service %q needs a command", p, s.Name)
		}
		if s.MaxMemoryMB < 0 {
			bad(p+".max_memory_mb", "%s: max_memory_mb must not be negative", p)
		}
		errs = append(errs, checkEnvNames(at, p+".pass_env", s.PassEnv)...)
	}
	for name, q := range c.Queues {
		p := "queues." + name
		if name != "inbound" && name != "outbound" && !c.sessionQueue(name) {
			bad(p, "queues: unknown queue %q (known: inbound, outbound, and inbound_NAME, outbound_NAME of a session)", name)
		}
		if q.Capacity < 0 || q.Workers < 0 || q.MaxAttempts < 0 || q.ItemTimeout < 0 || q.StuckAfter < 0 {
			bad(p, "%s: values must not be negative", p)
		}
	}
	return errs
}

// Position is where a key's value came from, as errors print it: "file:line:col", the
// variable that set it ("REMEDY_LISTEN (environment)"), or the file's name when the file
// does not set it. For a problem found after loading (config check --bind).
func (c *Config) Position(key string) string {
	if c.at == nil {
		return cmp.Or(c.File, "environment")
	}
	return c.at(key)
}

// IsLoopback reports whether host is a loopback name or address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// find returns the node at a dotted path ("alerts.webhook.url", "services[1].name").
func find(doc *yaml.Node, path string) *yaml.Node {
	if doc == nil || len(doc.Content) == 0 {
		return nil
	}
	n := doc.Content[0]
	for _, part := range strings.Split(path, ".") {
		key, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			key = part[:i]
			fmt.Sscanf(part[i:], "[%d]", &idx)
		}
		var next *yaml.Node
		if n.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == key {
					next = n.Content[j+1]
					if idx < 0 {
						next = n.Content[j+1]
					}
				}
			}
		}
		if next == nil {
			return n
		}
		n = next
		if idx >= 0 && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
			n = n.Content[idx]
		}
	}
	return n
}

// Location is the configured time zone.
func (c *Config) Location() *time.Location {
	if c.Timezone == "" || c.Timezone == "Local" {
		return time.Local
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// WhatsAppStore is the WhatsApp device store's path: whatsapp.store, or whatsapp.db in
// the data directory.
func (c *Config) WhatsAppStore() string {
	if c.WhatsApp.Store != "" {
		return c.WhatsApp.Store
	}
	return filepath.Join(c.DataDir, "whatsapp.db")
}
