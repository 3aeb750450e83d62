package bench

import (
	"slices"
	"testing"
	"time"
)

// latencies collects the time of each operation of a benchmark, so that it reports
// percentiles, not a mean: a mean hides the slow tail that an operator waits for.
type latencies []time.Duration

// quantile is the nearest-rank q-quantile (0 < q <= 1) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median is the nearest-rank median.
func median(l latencies) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return quantile(s, 0.5)
}

// report adds <name>_p50_ms, <name>_p99_ms and <name>_max_ms to the benchmark's figures.
func (l latencies) report(b *testing.B, name string) {
	if len(l) == 0 {
		return
	}
	s := slices.Clone(l)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(quantile(s, 0.50)), name+"_p50_ms")
	b.ReportMetric(ms(quantile(s, 0.99)), name+"_p99_ms")
	b.ReportMetric(ms(s[len(s)-1]), name+"_max_ms")
}

func TestQuantile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0.001: 1} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile %v = %v, want %v", q, got, want)
		}
	}
	if got := quantile(s[:1], 0.99); got != 1 {
		t.Errorf("one value: %v", got)
	}
}

// The nearest-rank definition, checked on every size up to 200 and awkward quantiles:
// the q-quantile is the smallest value with at least q·n values at or below it.
func TestQuantileIsNearestRank(t *testing.T) {
	for n := 1; n <= 200; n++ {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(i + 1) // distinct, so the rank is the value
		}
		for _, q := range []float64{0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
			want := time.Duration(n)
			for r := 1; r <= n; r++ {
				if float64(r) >= q*float64(n)-1e-9 {
					want = time.Duration(r)
					break
				}
			}
			if got := quantile(s, q); got != want {
				t.Fatalf("n %d, q %v: %v, want %v", n, q, got, want)
			}
		}
	}
	l := latencies{3, 1, 2}
	if m := median(l); m != 2 || l[0] != 3 {
		t.Fatalf("median %v of %v (the input must stay unsorted)", m, l)
	}
}
