package check

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// LeaderClaim is one log line saying who leads in a term: raft's own
// "election won: term=<n> tally=<k>", which the winner logs from its
// Raft loop with the term of the vote it won (Source "won"). Lines that
// read the term after the fact (coffer's "leadership acquired" and
// "leader changed") are not claims: by the time they read it, the term
// may have moved on, and a correct cluster would look split.
type LeaderClaim struct {
	Node   string `json:"node"` // whose log the line is in
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	Source string `json:"source"`
	Line   int    `json:"line"`
}

var kvRe = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)`)

// logFields parses hclog's key=value pairs after msg in line.
func logFields(rest string) map[string]string {
	out := map[string]string{}
	for _, m := range kvRe.FindAllStringSubmatch(rest, -1) {
		v := m[2]
		if strings.HasPrefix(v, `"`) {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		}
		out[m[1]] = v
	}
	return out
}

// ParseLeaderLog extracts the leadership claims of one node's log (raft's
// "election won" lines, as hclog writes them). Lines it does not
// recognise are skipped.
func ParseLeaderLog(node string, r io.Reader) ([]LeaderClaim, error) {
	var out []LeaderClaim
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		_, rest, ok := strings.Cut(text, "election won:")
		if !ok {
			continue
		}
		t, err := strconv.ParseUint(logFields(rest)["term"], 10, 64)
		if err != nil {
			continue
		}
		c := LeaderClaim{Node: node, Leader: node, Term: t, Source: "won", Line: line}
		out = append(out, c)
	}
	return out, sc.Err()
}

// OneLeaderPerTerm checks that no two different nodes won an election
// in one term. No
// claim at all (no logs, or logs without the structured lines) is
// UNKNOWN.
func OneLeaderPerTerm(f Files) Result {
	r := Result{Name: "one leader per term"}
	byTerm := map[uint64]map[string]LeaderClaim{} // term -> leader -> first claim
	for _, c := range f.Leaders {
		m := byTerm[c.Term]
		if m == nil {
			m = map[string]LeaderClaim{}
			byTerm[c.Term] = m
		}
		if _, ok := m[c.Leader]; !ok {
			m[c.Leader] = c
		}
	}
	terms := make([]uint64, 0, len(byTerm))
	for t := range byTerm {
		terms = append(terms, t)
	}
	sort.Slice(terms, func(i, j int) bool { return terms[i] < terms[j] })
	split := 0
	for _, t := range terms {
		if len(byTerm[t]) < 2 {
			continue
		}
		split++
		var who []string
		for _, c := range byTerm[t] {
			who = append(who, fmt.Sprintf("%s (%s by %s, line %d)", c.Leader, c.Source, c.Node, c.Line))
		}
		sort.Strings(who)
		r.addError(fmt.Sprintf("term %d has %d leaders: %s", t, len(who), strings.Join(who, "; ")))
	}
	switch {
	case len(f.Leaders) == 0:
		r.Verdict = Unknown
		r.Detail = fmt.Sprintf("no leadership lines found in %d node logs", f.LogsRead)
	case split > 0:
		r.Verdict = Invalid
		r.Detail = fmt.Sprintf("%d of %d terms with two or more leaders", split, len(terms))
	default:
		r.Verdict = Valid
		r.Detail = fmt.Sprintf("%d terms (%d-%d), %d claims from %d logs", len(terms), terms[0], terms[len(terms)-1], len(f.Leaders), f.LogsRead)
	}
	return r
}
