package policies

import (
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
)

// CodeInfo documents one event code that remedy's sources emit.
type CodeInfo struct {
	Code        string
	Source      string
	Labels      string
	Description string
}

// MetricInfo documents one metric of the samples.
type MetricInfo struct {
	Name        string
	Unit        string
	Description string
}

// Codes is the catalogue of event codes. Programs that post events through the ingest
// API may use their own codes; `remedy check --strict` warns about codes not listed here.
var Codes = []CodeInfo{
	{"WA_CONNECTED", "whatsapp", "session", "logged in and connected"},
	{"WA_DISCONNECTED", "whatsapp", "reason, session", "not connected: the socket closed unexpectedly (reason remote; after_<state> when it follows a logout, replacement or ban), or the start did not log in (connect_failed; login_budget: the budget allows no login yet)"},
	{"WA_KEEPALIVE_TIMEOUT", "whatsapp", "error_count, session", "a keepalive ping went unanswered; the link is degraded"},
	{"WA_KEEPALIVE_RESTORED", "whatsapp", "session", "keepalive pings work again"},
	{"WA_LOGGED_OUT", "whatsapp", "reason, on_connect, session", "the device was logged out (reason: the server's code, or store_corrupt: the session store was unreadable at start and moved aside); never reconnect, re-pair"},
	{"WA_STREAM_REPLACED", "whatsapp", "session", "another client took over the session; do not reconnect"},
	{"WA_STREAM_ERROR", "whatsapp", "code, session", "unknown stream error from the server"},
	{"WA_TEMP_BAN", "whatsapp", "code, expire, session", "temporarily banned; value is the seconds until expiry"},
	{"WA_TEMP_BAN_EXPIRED", "whatsapp", "session", "the expiry of a temporary ban has passed (reported once by the adapter)"},
	{"WA_CLIENT_OUTDATED", "whatsapp", "session", "the server rejected the client version (405); upgrade whatsmeow"},
	{"WA_CONNECT_FAILURE", "whatsapp", "reason, session", "the server refused the login with another failure code"},
	{"WA_STALE", "whatsapp", "reason, session", "liveness: wanted connected, not connected, nothing under way for 20 s; reason login_timeout, pair_restart_failed, restart_failed, reconnect_failed, not_connected (zombie socket) or no_recovery; repeats with doubling spacing; value is the report's number in this outage"},
	{"WA_DECRYPT_FAILED", "whatsapp", "sender, chat, kind, fail_mode, session", "an incoming message could not be decrypted (Bad MAC, no session); it never reached the bot; no content is recorded"},
	{"WA_REACHABLE", "whatsapp", "session", "while disconnected, WhatsApp's server answers again after it did not (a TCP probe, not a login)"},
	{"WA_SEND_FAILED", "whatsapp", "reason, chat, code, session", "a try to send a bot's message failed; reason not_connected, timeout, server_error (retried), refused (a 4xx answer: dead-lettered), invalid, media, chat_stopped, unknown; code is the server's error code; value is the try's number"},
	{"WA_SEND_STOPPED", "whatsapp", "chat, session", "WhatsApp refused 3 messages to one chat within 10 minutes (whatsapp.send): its messages are dead-lettered unsent for an hour, doubling each time it trips again"},
	{"WA_PAIR_SUCCESS", "whatsapp", "session", "pairing succeeded"},
	{"WA_PAIR_ERROR", "whatsapp", "reason, session", "pairing failed; reason unreachable, timed_out, phone_refused, outdated, failed, or pair_error (refused after the scan); the message says what to do next"},
	{"DB_BUSY", "store", "db", "a query met a locked database and is retrying"},
	{"DB_IOERR", "store", "db", "a query met SQLITE_IOERR (the kernel refused a read, write or sync), or a commit's sync of the WAL failed, and it is retrying (a failed sync as a checkpoint); value counts such waits"},
	{"DB_TIMEOUT", "store", "db", "a query hit its deadline"},
	{"DB_RETRY_EXHAUSTED", "store", "db", "a query gave up after its retries"},
	{"DB_CONN_LOST", "store", "db, reason", "the database handle is gone or broken (file replaced, I/O error)"},
	{"DB_CORRUPT", "store", "db", "SQLITE_CORRUPT, SQLITE_NOTADB or a failed integrity check"},
	{"DB_FULL", "store", "db", "SQLITE_FULL: the disk or the page limit is full"},
	{"DB_ROWS_LOST", "store", "db", "a rebuild of a damaged database could not copy every row: value is the rows lost, the message the report (they stay in the moved remedy.db.corrupt-… file)"},
	{"DB_CHECK_UNFINISHED", "store", "db", "the scheduled integrity check (quick_check, every page) did not end within its 10-minute budget: the pages are unchecked"},
	{"DB_OK", "store", "db", "the health check passed again"},
	{"WA_MEDIA_FULL", "whatsapp", "dir, session", "an upload to the send API was refused (507): DATA_DIR/media is at whatsapp.send.media_total_mb or the disk below media_min_free_mb; value is the directory's bytes"},
	{"QUEUE_STUCK", "queue", "queue, session", "the oldest item has not moved, or workers make no progress"},
	{"QUEUE_FULL", "queue", "queue, session", "the queue is near its capacity; value is the fill ratio"},
	{"QUEUE_OK", "queue", "queue, session", "the queue moves again"},
	{"QUEUE_DEAD_LETTER", "queue", "queue, session", "items were moved to the dead-letter table (retries used up, or CLEAR_QUEUE); value is how many; `remedy deadletter replay` puts them back"},
	{"SERVICE_DOWN", "service", "service, reason, exit_code", "a supervised service exited (reason exited, with exit_code) or failed its health check (reason unhealthy, or memory above max_memory_mb)"},
	{"SERVICE_UP", "service", "service", "a supervised service is running and healthy"},
	{"HANDLER_PANIC", "queue", "queue, session", "a message handler panicked; the stack is in the audit"},
	{"HANDLER_ERROR", "queue", "queue, session", "a message handler returned an error"},
	{"HEALTH_CHECK_FAILED", "monitor", "check", "a scheduled health probe failed"},
	{"HEALTH_CHECK_OK", "monitor", "check", "a scheduled health probe passed"},
	{"ACTION_SUCCEEDED", "executor", "policy, instance, action, step, attempt, decision", "a recovery attempt succeeded"},
	{"ACTION_FAILED", "executor", "policy, instance, action, step, attempt, decision, outcome", "a recovery attempt failed (outcome=refused: it could not apply to its target and did not run)"},
	{"ACTION_TIMEOUT", "executor", "policy, instance, action, step, attempt, decision", "a recovery attempt ran out of time"},
	{"POLICY_RELOAD_FAILED", "daemon", "", "a reload found errors; the old policies keep running"},
	{"POLICY_RELOADED", "daemon", "", "a new policy set was swapped in"},
	{"POLICY_STATE_LOST", "daemon", "", "the engine's saved state could not be read at start: incidents, timers, ladders, breakers and budgets start fresh; the incidents it had notified are resolved"},
	{"POLICY_EVAL_BUDGET", "daemon", "policy", "a policy's condition stopped at its evaluation budget (counted work: loop runs and the bytes they build) and was skipped as not met; raised once until it answers again"},
	{"POLICY_INSTANCE_LIMIT", "daemon", "policy", "a group_by policy reached its max_instances; new label values share one overflow instance"},
	{"ALERT_UNDELIVERED", "alert", "channel", "an alert could not be delivered and stays in the outbox"},
	{"SESSION_OPEN_FAILED", "daemon", "session", "a configured WhatsApp session could not be opened (its device store locked by another process, damaged beyond rebuild, a queue unreadable); the other sessions run"},
	{"SESSION_OPENED", "daemon", "session", "a session listed in sessions: opened (at start, or added by a reload): resolves its SESSION_OPEN_FAILED"},
	{"SESSION_RELOADED", "daemon", "", "a reload read the configuration's sessions again after one that found errors: resolves SESSION_RELOAD_FAILED"},
	{"SESSION_RELOAD_FAILED", "daemon", "", "a reload (SIGHUP) found errors in the configuration: the sessions run on unchanged; the message is the first error with file:line:col, the value how many"},
	{"SESSION_REMOVED", "daemon", "session, inbound, outbound", "a reload removed a session: it stopped; its queued items (labels inbound and outbound, value their sum) stay in remedy.db, not delivered until it is configured again"},
	{"STORE_BACKLOG", "store", "writer", "remedy's own rows (journal, audit, samples, alerts) wait after a failed write; value is the rows kept"},
	{"STORE_BACKLOG_CLEARED", "store", "writer", "a writer's backlog is written"},
	{"DRILL_STARTED", "drill", "scenario", "a fire drill injected its fault (`remedy drill`)"},
	{"DRILL_PROBE_OK", "drill", "scenario", "the database drill's writes went through once the lock was released; value is the seconds they waited"},
	{"DRILL_PROBE_FAILED", "drill", "scenario", "the database drill's writes failed despite the retries"},
}

// Metrics is the catalogue of sample metrics. <name> stands for a queue, service or path.
var Metrics = []MetricInfo{
	{"cpu_percent", "%", "host CPU use"},
	{"mem_percent", "%", "host memory use"},
	{"disk_free_percent", "%", "free space on the data directory's file system"},
	{"disk_free_mb", "MB", "free space on the data directory's file system"},
	{"load1", "", "1-minute load average"},
	{"process_rss_mb", "MB", "remedy's resident memory"},
	{"goroutines", "", "remedy's goroutines"},
	{"open_files", "", "remedy's open file descriptors"},
	{"gc_pause_ms", "ms", "last GC pause"},
	{"msgs_received_per_min", "1/min", "inbound messages"},
	{"msgs_processed_per_min", "1/min", "inbound messages handled"},
	{"msgs_failed_per_min", "1/min", "inbound messages whose handler failed"},
	{"msgs_sent_per_min", "1/min", "outbound messages sent"},
	{"msgs_undecryptable_per_min", "1/min", "inbound messages that could not be decrypted"},
	{"error_rate", "ratio", "(failed + undecryptable) / (received + undecryptable) over the last minute (0..1)"},
	{"wa_logins_last_min", "", "WhatsApp logins in the last minute (the login budget allows 6)"},
	{"wa_logins_last_hour", "", "WhatsApp logins in the last hour (the login budget allows 30)"},
	{"wa_login_wait_seconds", "s", "how long until the login budget allows the next login (0: now)"},
	{"queue_<name>_depth", "items", "items waiting in a queue"},
	{"queue_<name>_oldest_seconds", "s", "age of a queue's oldest item"},
	{"queue_<name>_fill", "ratio", "depth / capacity (0..1)"},
	{"service_<name>_rss_mb", "MB", "resident memory of a supervised process"},
	{"service_<name>_up", "0/1", "whether a supervised service runs"},
	{"wa_connected", "0/1", "WhatsApp connected and logged in"},
	{"wa_connected_<name>", "0/1", "wa_connected of the session <name> (config sessions:; the session default has the names without a suffix)"},
	{"wa_logins_last_min_<name>", "", "wa_logins_last_min of the session <name>"},
	{"wa_logins_last_hour_<name>", "", "wa_logins_last_hour of the session <name>"},
	{"wa_login_wait_seconds_<name>", "s", "wa_login_wait_seconds of the session <name>"},
	{"db_open_conns", "", "open database connections"},
	{"db_in_use", "", "database connections in use"},
	{"db_wait_count", "", "waits for a database connection (counter)"},
	{"dashboard_clients", "", "connected dashboard WebSocket clients"},
}

var metricPatterns = func() []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, m := range Metrics {
		pat := "^" + strings.ReplaceAll(regexp.QuoteMeta(m.Name), "<name>", "[a-z0-9_]+") + "$"
		out = append(out, regexp.MustCompile(pat))
	}
	return out
}()

// KnownCode reports whether code (or, for a glob, some code it matches) is catalogued.
func KnownCode(code string) bool {
	prefix, glob := strings.CutSuffix(code, "*")
	for _, c := range Codes {
		if c.Code == code || (glob && strings.HasPrefix(c.Code, prefix)) {
			return true
		}
	}
	return false
}

// MetricUnit is the catalogued unit of a metric ("percent", "ratio", "MB", …; "" for a
// plain count or an unknown metric).
func MetricUnit(name string) string {
	for i, re := range metricPatterns {
		if re.MatchString(name) {
			return Metrics[i].Unit
		}
	}
	return ""
}

// KnownMetric reports whether a metric name is catalogued.
func KnownMetric(name string) bool {
	for _, re := range metricPatterns {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// Owner is one of remedy's adapters and the code prefixes that only it emits. Events
// with these codes are remedy's own signals: the ingest API refuses them from other
// programs (unless the configuration allows a code by name, and then the event keeps
// the poster's source), so nobody outside remedy can mask a fault or stop a recovery
// by posting, say, WA_LOGGED_OUT or SERVICE_UP.
type Owner struct {
	Source   string
	Prefixes []string
}

// Owners lists the adapters that own code prefixes; TestOwnersMatchTheCatalogue keeps
// it in step with Codes. QUEUE_* is owned only for remedy's own queues (RemedyQueues):
// a bot reports the queues it runs itself with the same codes.
var Owners = []Owner{
	{"whatsapp", []string{"WA_"}},
	{"store", []string{"DB_", "STORE_"}},
	{"queue", []string{"QUEUE_"}},
	{"service", []string{"SERVICE_"}},
	{"monitor", []string{"HEALTH_CHECK_"}},
	{"executor", []string{"ACTION_"}},
	{"daemon", []string{"POLICY_", "SESSION_"}},
	{"alert", []string{"ALERT_"}},
	{"drill", []string{"DRILL_"}},
}

// SessionLabel is the label every event of a WhatsApp session carries (the number's
// session name, "default" without `sessions:`): the whatsapp codes, and the queue codes
// of remedy's message queues.
const SessionLabel = "session"

// The catalogue lists SessionLabel among the labels of every code a session emits,
// once, so that group_by: [session] and firing("x", "session") check against it.
func init() {
	for i, c := range Codes {
		if c.Source != "whatsapp" && c.Source != "queue" {
			continue
		}
		has := false
		for _, l := range strings.Split(c.Labels, ",") {
			has = has || strings.TrimSpace(l) == SessionLabel
		}
		if !has {
			Codes[i].Labels = strings.TrimPrefix(c.Labels+", "+SessionLabel, ", ")
		}
	}
}

// RemedyQueues are the queues remedy runs (the WhatsApp message pipeline) for the
// session "default"; every other session has inbound_NAME and outbound_NAME
// (RemedyQueue).
var RemedyQueues = []string{"inbound", "outbound"}

// sessionQueues are the running sessions' queues besides RemedyQueues (SetSessionQueues).
var sessionQueues atomic.Pointer[[]string]

// SetSessionQueues tells the catalogue the queues of the sessions that run (the daemon,
// at start and at each reload), so that their QUEUE_* events and queue_* metrics are
// remedy's own: a program cannot post them. A bot's queue of another name stays its own.
func SetSessionQueues(names []string) {
	names = slices.Clone(names)
	sessionQueues.Store(&names)
}

// RemedyQueue reports whether a queue of that name is remedy's own: RemedyQueues, or a
// running session's inbound_NAME / outbound_NAME.
func RemedyQueue(name string) bool {
	if slices.Contains(RemedyQueues, name) {
		return true
	}
	l := sessionQueues.Load()
	return l != nil && slices.Contains(*l, name)
}

// SharedCodes are catalogued codes that remedy emits and other programs may post too,
// about their own handlers (the README's example: a Node.js bot's HANDLER_ERROR).
var SharedCodes = []string{"HANDLER_PANIC", "HANDLER_ERROR"}

// CodeOwner returns the source of the adapter that owns an event with this code and
// labels, or "" when any program may post it.
func CodeOwner(code string, labels map[string]string) string {
	for _, o := range Owners {
		for _, p := range o.Prefixes {
			if !strings.HasPrefix(code, p) {
				continue
			}
			if o.Source == "queue" && labels["queue"] != "" && !RemedyQueue(labels["queue"]) {
				return "" // the poster's own queue
			}
			return o.Source
		}
	}
	return ""
}

// OwnMetric reports whether remedy's own sampler produces the metric: every catalogued
// metric, except queue_<name>_* of a queue that is not remedy's (RemedyQueues), which a
// bot reports about its own queues, as with the QUEUE_* codes. The ingest API refuses
// such metrics from other programs (unless the configuration allows one by name), so
// nobody can fire disk-low's CLEAN_DATA with a posted disk_free_percent, nor hide a full
// disk behind a posted 50.
func OwnMetric(name string) bool {
	for i, re := range metricPatterns {
		if !re.MatchString(name) {
			continue
		}
		if suffix, ok := strings.CutPrefix(Metrics[i].Name, "queue_<name>"); ok {
			q := strings.TrimSuffix(strings.TrimPrefix(name, "queue_"), suffix)
			return RemedyQueue(q)
		}
		return true
	}
	return false
}

// SourceOf is the source of an event written without one — in a policy test file, a
// recording written by hand, a dry run from the dashboard: the adapter that owns its
// code (so the default policies see it as remedy's own), else source as given.
func SourceOf(code, source string, labels map[string]string) string {
	if source != "" {
		return source
	}
	return CodeOwner(code, labels)
}

// InternalSource reports whether name is the source of one of remedy's adapters (or
// "remedy"), which a posted event may not claim.
func InternalSource(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "remedy" {
		return true
	}
	for _, c := range Codes {
		if c.Source == name {
			return true
		}
	}
	for _, o := range Owners {
		if o.Source == name {
			return true
		}
	}
	return false
}
