// Package monitor measures the host, remedy's own process and the bot's pipeline, and
// turns the readings into one engine.Sample per interval; it also exposes them, with the
// engine's own figures, to Prometheus.
package monitor

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/remedy-run/remedy/engine"
)

// Source adds values to each sample (queue depths, the database pools, WhatsApp state).
type Source func(ctx context.Context) map[string]float64

// SamplerOptions configure a Sampler.
type SamplerOptions struct {
	Interval time.Duration // default 10 s
	DataDir  string        // disk_free_* are measured where it lives
	Host     Host          // the machine and this process; default GopsutilHost()
	Counters *Counters
	Sources  []Source
	Logger   *slog.Logger
}

// Host reads the machine and remedy's own process for a sample: cpu_percent,
// mem_percent, disk_free_percent and disk_free_mb (of the disk holding dir), load1,
// process_rss_mb and open_files. A reading that fails is left out (absent, not zero).
// It is called from one goroutine at a time, and the sampler adds to the map it returns:
// return a new map each call.
type Host func(ctx context.Context, dir string) map[string]float64

// GopsutilHost reads the real host and this process through gopsutil (about 75 µs a
// call); it is the sampler's default. cpu_percent is the CPU use since the previous call.
func GopsutilHost() Host {
	p, _ := process.NewProcess(int32(os.Getpid()))
	// cpu.Percent with no interval compares with the previous call: make the first real
	// sample meaningful.
	_, _ = cpu.Percent(0, false)
	return func(ctx context.Context, dir string) map[string]float64 {
		v := map[string]float64{}
		if pc, err := cpu.PercentWithContext(ctx, 0, false); err == nil && len(pc) == 1 {
			v["cpu_percent"] = pc[0]
		}
		if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
			v["mem_percent"] = vm.UsedPercent
		}
		if du, err := disk.UsageWithContext(ctx, dir); err == nil && du.Total > 0 {
			v["disk_free_percent"] = 100 * float64(du.Free) / float64(du.Total)
			v["disk_free_mb"] = float64(du.Free) / (1 << 20)
		}
		if la, err := load.AvgWithContext(ctx); err == nil {
			v["load1"] = la.Load1
		}
		if p != nil {
			if mi, err := p.MemoryInfoWithContext(ctx); err == nil {
				v["process_rss_mb"] = float64(mi.RSS) / (1 << 20)
			}
			if n, err := p.NumFDsWithContext(ctx); err == nil {
				v["open_files"] = float64(n)
			}
		}
		return v
	}
}

// FixedHost always reads the given values (copied), whatever the machine is doing:
// for tests, whose outcome must not depend on the load of the machine running them.
func FixedHost(values map[string]float64) Host {
	values = maps.Clone(values)
	return func(context.Context, string) map[string]float64 { return maps.Clone(values) }
}

// HealthyHost is a host well inside every default policy's thresholds: 5% CPU, 30%
// memory, 80% of the disk free (50 GB), load 0.2, 40 MB resident, 20 open files.
func HealthyHost() Host {
	return FixedHost(map[string]float64{"cpu_percent": 5, "mem_percent": 30, "disk_free_percent": 80,
		"disk_free_mb": 50 << 10, "load1": 0.2, "process_rss_mb": 40, "open_files": 20})
}

// Sampler takes samples. It is safe for concurrent use.
type Sampler struct {
	opts SamplerOptions

	mu   sync.Mutex
	last engine.Sample
	read sync.Mutex // the Host is called by one goroutine at a time
}

// NewSampler returns a sampler of this process and host.
func NewSampler(opts SamplerOptions) *Sampler {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	if opts.DataDir == "" {
		opts.DataDir = "."
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Host == nil {
		opts.Host = GopsutilHost()
	}
	return &Sampler{opts: opts}
}

// Sample reads every metric now. A reading that fails is left out (absent, not zero), so
// policies on it do not fire on a fake value.
func (s *Sampler) Sample(ctx context.Context) engine.Sample {
	s.read.Lock()
	v := s.opts.Host(ctx, s.opts.DataDir)
	s.read.Unlock()
	if v == nil {
		v = map[string]float64{}
	}
	v["goroutines"] = float64(runtime.NumGoroutine())
	var gc debug.GCStats
	debug.ReadGCStats(&gc)
	if len(gc.Pause) > 0 {
		v["gc_pause_ms"] = float64(gc.Pause[0]) / float64(time.Millisecond)
	}
	if s.opts.Counters != nil {
		maps.Copy(v, s.opts.Counters.Values())
	}
	for _, src := range s.opts.Sources {
		maps.Copy(v, src(ctx))
	}
	smp := engine.Sample{Time: time.Now(), Values: v}
	s.mu.Lock()
	s.last = smp
	s.mu.Unlock()
	return smp
}

// Last is the latest sample taken.
func (s *Sampler) Last() engine.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Run takes a sample now and then every interval, handing each to out, until ctx ends.
func (s *Sampler) Run(ctx context.Context, out func(engine.Sample)) {
	out(s.Sample(ctx))
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			out(s.Sample(ctx))
		}
	}
}
