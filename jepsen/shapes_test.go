package main

import (
	"math/rand/v2"
	"testing"
)

// connected reports, for each node, how many nodes it can reach directly
// (itself included) once cuts are applied.
func reach(n int, cuts [][2]int) []int {
	cut := map[[2]int]bool{}
	for _, c := range cuts {
		cut[link(c[0], c[1])] = true
	}
	out := make([]int, n)
	for i := range n {
		for j := range n {
			if i == j || !cut[link(i, j)] {
				out[i]++
			}
		}
	}
	return out
}

func TestShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		shape string
		n     int
		reach map[int]int // reach size -> how many nodes
	}{
		{"halves", 5, map[int]int{2: 2, 3: 3}},
		{"halves", 3, map[int]int{1: 1, 2: 2}},
		{"one", 5, map[int]int{1: 1, 4: 4}},
		{"ring", 5, map[int]int{3: 5}},
		{"bridge", 5, map[int]int{3: 4, 5: 1}},
		{"bridge", 3, map[int]int{2: 2, 3: 1}},
	} {
		cuts, desc, err := shape(tc.shape, tc.n, rng)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]int{}
		for _, r := range reach(tc.n, cuts) {
			got[r]++
		}
		if len(got) != len(tc.reach) {
			t.Errorf("%s/%d (%s): reach %v, want %v", tc.shape, tc.n, desc, got, tc.reach)
			continue
		}
		for k, v := range tc.reach {
			if got[k] != v {
				t.Errorf("%s/%d (%s): reach %v, want %v", tc.shape, tc.n, desc, got, tc.reach)
			}
		}
	}
	if _, _, err := shape("ring", 3, rng); err == nil {
		t.Error("ring on 3 nodes accepted")
	}
	if _, _, err := shape("star", 5, rng); err == nil {
		t.Error("unknown shape accepted")
	}
}
