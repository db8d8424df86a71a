package main

import (
	"math"
	"testing"
)

// TestColdPooledBeforeGoal: the pooled goal is the median of every first
// GET of the four cases over the -baseline's, not a mean of the cases'
// ratios; it is missing without a baseline or with a case unmeasured.
func TestColdPooledBeforeGoal(t *testing.T) {
	r := &Report{Tools: map[string]string{targetBaseline: "c5cd3cb"}}
	// The same twelve first GETs, dealt to other cases: the cases' p50
	// ratios are 0.4x, 2.5x, 0.73x and 1.38x (a mean of 1.25x), the pooled
	// medians are equal.
	samples := map[string][2][]float64{
		coldCase(byTag, formatLegacy):    {{1, 2, 3}, {4, 5, 6}},
		coldCase(byTag, formatBundle):    {{4, 5, 6}, {1, 2, 3}},
		coldCase(byDigest, formatLegacy): {{7, 8, 9}, {10, 11, 12}},
		coldCase(byDigest, formatBundle): {{10, 11, 12}, {7, 8, 9}},
	}
	for c, s := range samples {
		r.add(Metric{Phase: "cold", Case: c, Target: targetPortcullis, Name: "p50", Value: median(s[0]), Samples: s[0]},
			Metric{Phase: "cold", Case: c, Target: targetBaseline, Name: "p50", Value: median(s[1]), Samples: s[1]})
	}
	if v, _, ok := coldPooledBeforeGoal(r); !ok || math.Abs(v-1) > 1e-9 {
		t.Errorf("pooled = %v, %v; want 1", v, ok)
	}
	for i := range r.Metrics { // now's three fastest become the slowest: 4..15 against 1..12
		if m := &r.Metrics[i]; m.Target == targetPortcullis && m.Case == coldCase(byTag, formatLegacy) {
			m.Samples = []float64{13, 14, 15}
		}
	}
	if v, _, ok := coldPooledBeforeGoal(r); !ok || math.Abs(v-9.5/6.5) > 1e-9 {
		t.Errorf("pooled = %v, %v; want 9.5/6.5", v, ok)
	}
	r.Metrics[1].Missing = "not measured: x"
	if _, _, ok := coldPooledBeforeGoal(r); ok {
		t.Error("a case not measured gave a pooled figure")
	}
	if _, why, ok := coldPooledBeforeGoal(&Report{Tools: map[string]string{}}); ok || why != "no -baseline in this run" {
		t.Errorf("without a baseline: %q %v", why, ok)
	}
}
