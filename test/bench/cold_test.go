package main

import (
	"fmt"
	"testing"
)

// TestColdFirstsAlternateWithinEachCase: in every case of the cold plan
// each Portcullis goes first for half of the first GETs (the plan
// alternates formats and, within a format, tag and digest, so any order
// over the whole plan would line up with a case).
func TestColdFirstsAlternateWithinEachCase(t *testing.T) {
	var ims []signedImage
	for i := range 400 {
		format := formatLegacy
		if i%2 == 1 {
			format = formatBundle
		}
		ims = append(ims, signedImage{Repo: "acme/cold-" + format, Tag: fmt.Sprintf("c%02d", i), Format: format})
	}
	plan := coldPlan(ims)
	first := coldFirsts(plan)
	counts := map[string][2]int{}
	for i, g := range plan {
		c := counts[g.caseName()]
		c[first[i]]++
		counts[g.caseName()] = c
	}
	if len(counts) != 4 {
		t.Fatalf("%d cases, want 4: %v", len(counts), counts)
	}
	for name, c := range counts {
		if c[0] != c[1] {
			t.Errorf("%s: this build first %d times, the baseline %d", name, c[0], c[1])
		}
	}
}
