package check

import (
	"strings"
	"testing"
)

const goodLog = `2026-11-23T06:21:50.559Z [INFO]  coffer.cluster.raft: entering follower state: follower="Node at 127.0.0.1:1 [Follower]" leader-address= leader-id=
2026-11-23T06:21:50.559Z [INFO]  coffer.cluster: leader changed: leader=n3 address=127.0.0.1:36047 current_term=2
2026-11-23T06:22:10.000Z [INFO]  coffer.cluster.raft: entering candidate state: node="Node at 127.0.0.1:1 [Candidate]" term=3
2026-11-23T06:22:10.900Z [INFO]  coffer.cluster.raft: election won: term=3 tally=2
2026-11-23T06:22:11.000Z [INFO]  coffer.cluster: leadership acquired: term=4
=== jepsen: start n1 at 2026-11-23T06:22:20Z
2026-11-23T06:23:10.900Z [INFO]  coffer.cluster.raft: election won: term=7 tally=3
garbage term=9 leader=n9
`

func TestParseLeaderLog(t *testing.T) {
	cs, err := ParseLeaderLog("n1", strings.NewReader(goodLog))
	if err != nil {
		t.Fatal(err)
	}
	// Only raft's "election won" lines are claims; the after-the-fact
	// terms of "leadership acquired" and "leader changed" are not.
	want := []LeaderClaim{
		{Node: "n1", Leader: "n1", Term: 3, Source: "won", Line: 4},
		{Node: "n1", Leader: "n1", Term: 7, Source: "won", Line: 7},
	}
	if len(cs) != len(want) {
		t.Fatalf("claims %+v", cs)
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("claim %d: %+v, want %+v", i, cs[i], want[i])
		}
	}
	if r := OneLeaderPerTerm(Files{Leaders: cs, LogsRead: 1}); r.Verdict != Valid {
		t.Fatalf("%s %s %v", r.Verdict, r.Detail, r.Errors)
	}
}

func TestTwoLeadersInOneTermIsInvalid(t *testing.T) {
	n1, _ := ParseLeaderLog("n1", strings.NewReader(goodLog))
	// n2 also won an election in term 3 (split brain).
	n2, _ := ParseLeaderLog("n2", strings.NewReader(
		"2026-11-23T06:22:11.002Z [INFO]  coffer.cluster.raft: election won: term=3 tally=2\n"))
	r := OneLeaderPerTerm(Files{Leaders: append(n1, n2...), LogsRead: 2})
	if r.Verdict != Invalid || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "term 3") {
		t.Fatalf("won twice: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// n2 winning another term is fine.
	n2, _ = ParseLeaderLog("n2", strings.NewReader(
		"2026-11-23T06:22:11.002Z [INFO]  coffer.cluster.raft: election won: term=5 tally=2\n"))
	if r := OneLeaderPerTerm(Files{Leaders: append(n1, n2...), LogsRead: 2}); r.Verdict != Valid {
		t.Fatalf("distinct terms: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// No claims at all proves nothing.
	if r := OneLeaderPerTerm(Files{LogsRead: 3}); r.Verdict != Unknown {
		t.Fatalf("no claims: %s %s", r.Verdict, r.Detail)
	}
}
