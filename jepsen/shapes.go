package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Partition shapes for the "partition" nemesis (research §1.3, §4.2):
// which links of an n-node region to cut. Nodes are shuffled first, so
// every node can land in every role.
var partitionShapes = []string{"halves", "one", "ring", "bridge"}

// shape returns the links to cut and a description.
func shape(name string, n int, rng *rand.Rand) ([][2]int, string, error) {
	perm := rng.Perm(n)
	id := func(i int) string { return fmt.Sprintf("n%d", perm[i]+1) }
	group := func(is []int) string {
		var ns []string
		for _, i := range is {
			ns = append(ns, id(i))
		}
		sort.Strings(ns)
		return "[" + strings.Join(ns, " ") + "]"
	}
	var cuts [][2]int
	cutBetween := func(a, b []int) {
		for _, i := range a {
			for _, j := range b {
				cuts = append(cuts, [2]int{perm[i], perm[j]})
			}
		}
	}
	seq := func(lo, hi int) []int {
		var out []int
		for i := lo; i < hi; i++ {
			out = append(out, i)
		}
		return out
	}
	switch name {
	case "halves": // a minority of n/2 (rounded down) and a majority
		k := n / 2
		cutBetween(seq(0, k), seq(k, n))
		return cuts, "halves " + group(seq(0, k)) + " | " + group(seq(k, n)), nil
	case "one": // one node alone
		cutBetween(seq(0, 1), seq(1, n))
		return cuts, "one " + group(seq(0, 1)) + " | " + group(seq(1, n)), nil
	case "ring": // each node keeps only its two ring neighbours: every node sees a majority (n = 5), no two the same
		if n < 4 {
			return nil, "", fmt.Errorf("ring needs at least 4 nodes (have %d)", n)
		}
		var ring []string
		for i := range n {
			ring = append(ring, id(i))
			for j := i + 2; j < n; j++ {
				if i == 0 && j == n-1 {
					continue
				}
				cuts = append(cuts, [2]int{perm[i], perm[j]})
			}
		}
		return cuts, "ring " + strings.Join(ring, "-") + "-" + id(0), nil
	case "bridge": // two halves joined by one node that sees both
		if n < 3 {
			return nil, "", fmt.Errorf("bridge needs at least 3 nodes (have %d)", n)
		}
		k := (n - 1) / 2
		cutBetween(seq(0, k), seq(k+1, n))
		return cuts, "bridge " + group(seq(0, k)) + " <" + id(k) + "> " + group(seq(k+1, n)), nil
	}
	return nil, "", fmt.Errorf("unknown partition shape %q (one of %s)", name, strings.Join(partitionShapes, ", "))
}
