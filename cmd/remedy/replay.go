package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/remedy-run/remedy/conditions"
	"github.com/remedy-run/remedy/engine"
	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/store"
	"github.com/remedy-run/remedy/policies"
	"github.com/remedy-run/remedy/policytest"
)

func runReplay(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	from := fs.String("from", "", "recorded inputs: a JSON-lines file (- for standard input), or remedy's data directory or remedy.db")
	since := fs.String("since", "", "only the last DURATION of the recording (e.g. 24h), counted back from its newest input")
	seed := fs.Uint64("seed", 1, "seed for backoff jitter")
	quiet := fs.Bool("quiet", false, "print only the per-policy summary, not the timeline")
	tz := fs.String("timezone", "", "IANA time zone for hour() and weekday(), e.g. Asia/Kolkata (default: the configuration's; else the one the daemon recorded in the data directory; else UTC)")
	cfgPath := fs.String("config", "", "the daemon's configuration file: its timezone, and its policies when no POLICY_PATH is given")
	settle := fs.Duration("settle", 10*time.Minute, "keep time running this long after the last input, so pending timers and retries play out")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy replay --from DATA_DIR|remedy.db|FILE.jsonl [--since 24h] [--config remedy.yaml] [--timezone ZONE] [POLICY_PATH...]\n\nFeeds recorded events and samples through a policy set with no side effects: nothing runs,\nand every attempt is answered as succeeded. As in remedy run, a success is provisional: an\nincident resolves only when the recording shows its fault gone. With resolve_on, that is a\nresolve_on event, which must come within the step's timeout after the success (else the\nattempt counts as failed); for a sample policy, its condition turning false within it;\notherwise, the condition false again, or no report of the fault for the step's timeout,\nand a report of the fault before then counts the attempt as failed.\nPOLICY_PATH extends the embedded defaults as in remedy run (default: the embedded defaults,\nor the --config's policies). hour() and weekday() use --timezone, else the --config's\ntimezone, else the zone the daemon recorded in its data directory (remedy.run.json), else UTC.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *from == "" {
		fmt.Fprintln(env.stderr, "remedy replay: --from is required")
		return exitBadInput
	}
	var window time.Duration
	if *since != "" {
		d, err := conditions.ParseDuration(*since)
		if err != nil {
			fmt.Fprintf(env.stderr, "remedy replay: --since: %v\n", err)
			return exitBadInput
		}
		window = d
	}
	src, err := replaySource(*cfgPath, *tz, *from)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy replay: %v\n", err)
		return exitBadInput
	}
	loc := src.loc
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{src.policies}
	}
	set, err := policies.LoadMerged(!src.defaults, paths...)
	if err != nil {
		var errs policies.Errors
		if errors.As(err, &errs) {
			printDiags(env.stderr, errs)
		} else {
			fmt.Fprintln(env.stderr, err)
		}
		return exitBadInput
	}
	inputs, err := readRecording(ctx, *from, env)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy replay: %v\n", err)
		return exitBadInput
	}
	inputs = policytest.Since(inputs, window)
	if len(inputs) == 0 {
		fmt.Fprintln(env.stdout, "no inputs to replay")
		return exitOK
	}
	sim := &policytest.Simulator{Engine: engine.New(set, engine.Options{Seed: *seed, Location: loc})}
	start := inputs[0].At()
	sim.Run(inputs, inputs[len(inputs)-1].At().Add(*settle))
	if !*quiet {
		fmt.Fprint(env.stdout, policytest.FormatTimeline(sim.Timeline, start))
		fmt.Fprintln(env.stdout)
	}
	fmt.Fprintf(env.stdout, "replayed %d inputs from %s to %s through %d policies; hour() and weekday() in %s (%s)\n", len(inputs),
		start.UTC().Format(time.RFC3339), inputs[len(inputs)-1].At().UTC().Format(time.RFC3339), len(set.Policies), loc, src.zoneFrom)
	for _, s := range policytest.Summarize(sim.Timeline) {
		fmt.Fprintln(env.stdout, s)
	}
	return exitOK
}

// readRecording reads inputs from a JSON-lines file, standard input, or the databases:
// a data directory (remedy.db and monitoring_metrics.sqlite) or a remedy.db file.
func readRecording(ctx context.Context, from string, env *cliEnv) ([]engine.Input, error) {
	if from == "-" {
		return policytest.ReadJSONLines(env.stdin, "stdin")
	}
	st, err := os.Stat(from)
	if err != nil {
		return nil, err
	}
	mainDB, metricsDB := "", ""
	switch {
	case st.IsDir():
		mainDB, metricsDB = filepath.Join(from, store.RemedyFile), filepath.Join(from, store.MetricsFile)
	case strings.HasSuffix(from, ".db") || strings.HasSuffix(from, ".sqlite"):
		mainDB, metricsDB = from, filepath.Join(filepath.Dir(from), store.MetricsFile)
	default:
		f, err := os.Open(from)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return policytest.ReadJSONLines(f, from)
	}
	return readDatabases(ctx, mainDB, metricsDB)
}

func readDatabases(ctx context.Context, mainDB, metricsDB string) ([]engine.Input, error) {
	if _, err := os.Stat(mainDB); err != nil {
		return nil, err
	}
	all := [2]time.Time{time.Unix(0, 0), time.Now().Add(100 * 365 * 24 * time.Hour)}
	db, err := store.Open(ctx, store.Options{Path: mainDB, Schema: store.RemedySchema, Readers: 1})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	evs, err := db.Events(ctx, all[0], all[1])
	if err != nil {
		return nil, err
	}
	var out []engine.Input
	for _, ev := range evs {
		out = append(out, ev)
	}
	if _, err := os.Stat(metricsDB); err == nil {
		m, err := store.OpenMetrics(ctx, store.Options{Path: metricsDB, Readers: 1})
		if err != nil {
			return nil, err
		}
		defer m.Close()
		samples, err := m.Samples(ctx, all[0], all[1])
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At().Before(out[j].At()) })
	return out, nil
}

// replayConfig is what a replay takes from the daemon's configuration.
type replayConfig struct {
	loc      *time.Location
	zoneFrom string // where the zone came from, for the summary line
	policies string // the configuration's policy path ("" for the defaults alone)
	defaults bool   // the embedded defaults under the policy files
}

// replaySource resolves the time zone and the policy source: --timezone, else the
// --config file's, else the one the daemon recorded in the data directory --from names
// (config.RunInfo), else UTC. The policy path and default_policies come from --config
// or the recording likewise.
func replaySource(cfgPath, tz, from string) (replayConfig, error) {
	rc := replayConfig{loc: time.UTC, zoneFrom: "the default: no --timezone, --config or recorded zone", defaults: true}
	zone := ""
	switch {
	case cfgPath != "":
		cfg, err := config.Load(cfgPath, os.Getenv)
		if err != nil {
			return rc, fmt.Errorf("--config: %w", err)
		}
		zone, rc.zoneFrom = cfg.Timezone, "from "+cfgPath
		rc.policies, rc.defaults = cfg.Policies, cfg.DefaultPolicies
	default:
		dir := from
		if st, err := os.Stat(from); err == nil && !st.IsDir() {
			dir = filepath.Dir(from)
		}
		info, err := config.ReadRunInfo(dir)
		if err == nil {
			zone, rc.zoneFrom = info.Timezone, "recorded by the daemon in "+filepath.Join(dir, config.RunInfoFile)
			rc.policies, rc.defaults = info.Policies, info.DefaultPolicies
		} else if !errors.Is(err, fs.ErrNotExist) {
			return rc, err
		}
	}
	if tz != "" {
		zone, rc.zoneFrom = tz, "--timezone"
	}
	if zone != "" {
		if zone == "Local" {
			rc.loc = time.Local
		} else {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				return rc, fmt.Errorf("time zone %q (%s): %w", zone, rc.zoneFrom, err)
			}
			rc.loc = loc
		}
	}
	return rc, nil
}
