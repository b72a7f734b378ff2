package check

import (
	"strings"
	"testing"
)

const (
	regA, regB = "us-east-1", "us-west-2"
	cur, prev  = StageCurrent, StagePrevious
)

func sec(x float64) int64 { return int64(x * 1e9) }

// failoverHistory is a good region-failover run of one secret: v1
// (the create) and v2 acknowledged by A and seen in B; v3 acknowledged
// by A just before the fault and lost to the RPO; B promoted, v4
// written there; A back, v5 acknowledged by A before it learned, then
// the fence and v6 refused. v3 and v5 are A's conflicts.
func failoverHistory() Files {
	put := func(id int64, node, region, token string, call, ret float64, index string) Op {
		return Op{ID: id, Node: node, Region: region, Kind: KindPut, Secret: "s", Token: token, Value: "val-" + token,
			Call: sec(call), Ret: sec(ret), Status: StatusOK, VersionID: token, Index: index}
	}
	read := func(id int64, node, region, kind string, call, ret float64, versions map[string][]string) Op {
		o := Op{ID: id, Node: node, Region: region, Kind: kind, Secret: "s", Call: sec(call), Ret: sec(ret), Status: StatusOK, Versions: versions}
		if kind == KindGet {
			o.Versions = nil
			for v, st := range versions {
				if contains(st, cur) {
					o.VersionID, o.Read = v, "val-"+v
				}
			}
		}
		return o
	}
	refused := put(13, "a1", regA, "v6", 18, 18.1, "")
	refused.Status, refused.Err, refused.VersionID = StatusFail, "InvalidParameterException", ""
	descA := func(id int64, call float64, primary string) Op {
		o := read(id, "a1", regA, KindDescribe, call, call+0.1, map[string][]string{"v2": {cur}})
		o.Primary = primary
		return o
	}
	final := func(id int64, node, region, kind string, versions map[string][]string) Op {
		o := read(id, node, region, kind, 30, 30.1, versions)
		o.Final = true
		if kind == KindDescribe {
			o.Primary = regB
		}
		return o
	}
	endB := map[string][]string{"v1": {}, "v2": {prev}, "v4": {cur}}
	endA := map[string][]string{"v1": {}, "v2": {prev}, "v4": {cur}, "v3": {}, "v5": {}}
	f := Files{
		Ops: []Op{
			put(1, "a1", regA, "v1", 0, 0.1, "10"),
			put(2, "a1", regA, "v2", 1, 1.1, "11"),
			read(3, "b1", regB, KindGet, 1.2, 1.3, map[string][]string{"v2": {cur}}),
			read(4, "b1", regB, KindListVersions, 1.4, 1.5, map[string][]string{"v1": {prev}, "v2": {cur}}),
			put(5, "a1", regA, "v3", 9.9, 9.95, "12"),
			read(6, "b1", regB, KindGet, 9.96, 9.97, map[string][]string{"v2": {cur}}),
			read(7, "b1", regB, KindListVersions, 12.2, 12.3, map[string][]string{"v1": {prev}, "v2": {cur}}),
			put(8, "b1", regB, "v4", 12.5, 12.6, "40"),
			read(9, "b1", regB, KindGet, 13, 13.1, map[string][]string{"v4": {cur}}),
			put(10, "a1", regA, "v5", 15.5, 15.6, "14"),
			descA(11, 16, regA),
			descA(12, 17, regB),
			refused,
			final(20, "a1", regA, KindDescribe, map[string][]string{"v2": {prev}, "v4": {cur}}),
			final(21, "b1", regB, KindDescribe, map[string][]string{"v2": {prev}, "v4": {cur}}),
			final(22, "a1", regA, KindListVersions, endA),
			final(23, "b1", regB, KindListVersions, endB),
		},
		Failover: &FailoverRun{Primary: regA, Replica: regB, PrimaryNodes: []string{"a1"}, ReplicaNodes: []string{"b1"}, Secrets: []string{"s"},
			Kill: sec(10), Killed: sec(10.01), PromoteCall: sec(12), PromoteRet: sec(12.1), PromoteAttempts: 1, Promoted: true, PromoteSecrets: 1,
			Restart: sec(15), MainEnd: sec(20), Converged: true, ConvergedAt: sec(20.5),
			Conflicts: []Conflict{{Name: "s", VersionID: "v3", Region: regA}, {Name: "s", VersionID: "v5", Region: regA}}},
	}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		_, inB := endB[v]
		f.Final = append(f.Final,
			FinalRead{Kind: "version", Node: "b1", Region: regB, Secret: "s", VersionID: v, Found: inB, Value: map[bool]string{true: "val-" + v}[inB]},
			FinalRead{Kind: "version", Node: "a1", Region: regA, Secret: "s", VersionID: v, Found: true, Value: "val-" + v})
	}
	return f
}

func failoverChecks() map[string]func(Files) Result {
	return map[string]func(Files) Result{"prefix": FailoverPrefix, "lost": FailoverNothingLost, "rpo": FailoverRPO,
		"fencing": FailoverFencing, "usable": FailoverReplicaUsable, "converged": FailoverConverged}
}

func TestFailover_GoodHistoryIsValid(t *testing.T) {
	f := failoverHistory()
	for name, c := range failoverChecks() {
		if r := c(f); r.Verdict != Valid {
			t.Errorf("%s: %s %s %v", name, r.Verdict, r.Detail, r.Errors)
		}
	}
	fig := Figures(f)
	if fig.RPOVersions != 1 || !fig.RTOKnown || fig.Conflicts != 2 || fig.ConflictsAcked != 2 || fig.AckedAfterPromotion != 1 || fig.RefusedInA != 1 || fig.LagN != 2 {
		t.Fatalf("figures %+v", fig)
	}
	if !strings.Contains(FailoverReport(f), "RPO: 1 versions lost") {
		t.Fatal(FailoverReport(f))
	}
}

// Each mutation of the good history must make its checker INVALID (or
// UNKNOWN where it says so).
func TestFailover_BadHistories(t *testing.T) {
	byID := func(f Files, id int64) *Op {
		for i := range f.Ops {
			if f.Ops[i].ID == id {
				return &f.Ops[i]
			}
		}
		t.Fatalf("no op %d", id)
		return nil
	}
	finalIn := func(f Files, region, v string) *FinalRead {
		for i := range f.Final {
			if f.Final[i].Region == region && f.Final[i].VersionID == v {
				return &f.Final[i]
			}
		}
		t.Fatalf("no final read of %s in %s", v, region)
		return nil
	}
	cases := []struct {
		name, check, want string
		mutate            func(f Files)
	}{
		{"B shows a version A never attempted", "prefix", Invalid, func(f Files) {
			byID(f, 4).Versions["vX"] = []string{}
		}},
		{"B goes back to an older AWSCURRENT", "prefix", Invalid, func(f Files) {
			o := byID(f, 6)
			o.VersionID, o.Read = "v1", "val-v1"
		}},
		{"B holds v2 without v1", "prefix", Invalid, func(f Files) {
			delete(byID(f, 4).Versions, "v1")
		}},
		{"AWSCURRENT not on B's newest version", "prefix", Invalid, func(f Files) {
			byID(f, 4).Versions["v1"], byID(f, 4).Versions["v2"] = []string{cur}, []string{prev}
		}},
		{"no read of B before the promotion", "prefix", Unknown, func(f Files) {
			for _, id := range []int64{3, 4, 6} {
				byID(f, id).Status = StatusFail
			}
		}},
		{"a write lost to the RPO is not a conflict", "lost", Invalid, func(f Files) {
			f.Failover.Conflicts = f.Failover.Conflicts[1:]
		}},
		{"a conflict that does not read in A", "lost", Invalid, func(f Files) {
			finalIn(f, regA, "v5").Found = false
		}},
		{"a conflict no put sent", "lost", Invalid, func(f Files) {
			f.Failover.Conflicts = append(f.Failover.Conflicts, Conflict{Name: "s", VersionID: "vZ"})
		}},
		{"a conflict B holds", "lost", Invalid, func(f Files) {
			f.Failover.Conflicts = append(f.Failover.Conflicts, Conflict{Name: "s", VersionID: "v2"})
		}},
		{"a refused put listed as a conflict", "lost", Invalid, func(f Files) {
			f.Failover.Conflicts = append(f.Failover.Conflicts, Conflict{Name: "s", VersionID: "v6"})
		}},
		{"no final read in B", "lost", Unknown, func(f Files) {
			finalIn(f, regB, "v1").Err = "timeout"
		}},
		{"a version acknowledged long before the fault lost", "rpo", Invalid, func(f Files) {
			delete(byID(f, 7).Versions, "v2") // acknowledged 8.9 s before the fault; max lag 1.4 s
		}},
		{"no version list of B after the promotion", "rpo", Unknown, func(f Files) {
			byID(f, 7).Status = StatusFail
		}},
		{"A acknowledges a write after it showed B as primary", "fencing", Invalid, func(f Files) {
			o := byID(f, 13)
			o.Status, o.Err = StatusOK, ""
		}},
		{"a conflict merged into B", "fencing", Invalid, func(f Files) {
			r := finalIn(f, regB, "v5")
			r.Found, r.Value = true, "val-v5"
		}},
		{"a write lost to the RPO shows up in B after the promotion", "fencing", Invalid, func(f Files) {
			byID(f, 9).Kind, byID(f, 9).Versions = KindListVersions, map[string][]string{"v3": {}, "v4": {cur}}
		}},
		{"A never showed the fence", "fencing", Unknown, func(f Files) {
			byID(f, 12).Primary = regA
		}},
		{"the promotion failed", "usable", Invalid, func(f Files) {
			f.Failover.Promoted, f.Failover.PromoteErr = false, "HTTP 503"
		}},
		{"B acknowledged no write after the promotion", "usable", Invalid, func(f Files) {
			byID(f, 8).Status = StatusFail
		}},
		{"a write B acknowledged is lost", "usable", Invalid, func(f Files) {
			finalIn(f, regB, "v4").Found = false
		}},
		{"A still its own primary at the end", "converged", Invalid, func(f Files) {
			byID(f, 20).Primary = regA
		}},
		{"A holds a labelled version B lacks", "converged", Invalid, func(f Files) {
			byID(f, 22).Versions["v5"] = []string{"AWSPENDING"}
		}},
		{"A lacks a version of B", "converged", Invalid, func(f Files) {
			delete(byID(f, 22).Versions, "v1")
		}},
		{"a final describe missing", "converged", Unknown, func(f Files) {
			byID(f, 21).Status = StatusFail
		}},
	}
	for _, c := range cases {
		f := failoverHistory()
		c.mutate(f)
		r := failoverChecks()[c.check](f)
		if testing.Verbose() {
			t.Logf("%s: %s %s %v", c.name, r.Verdict, r.Detail, r.Errors)
		}
		if r.Verdict != c.want {
			t.Errorf("%s: %s is %s (%s), want %s", c.name, c.check, r.Verdict, r.Detail, c.want)
		}
	}
}

func TestFailover_AllSplitsRegions(t *testing.T) {
	f := failoverHistory()
	// Both regions' first leaders are in term 2: not a split brain.
	f.Leaders = []LeaderClaim{{Node: "a1", Leader: "a1", Term: 2}, {Node: "b1", Leader: "b1", Term: 2}}
	f.LogsRead = 2
	for _, r := range FailoverAll(f) {
		if strings.HasPrefix(r.Name, "one leader per term") && r.Verdict != Valid {
			t.Errorf("%s: %s %s", r.Name, r.Verdict, r.Detail)
		}
		if r.Name == "phantom versions" && r.Verdict != Valid {
			t.Errorf("phantoms: %s %v", r.Detail, r.Errors)
		}
	}
}
