package check

import (
	"strings"
	"testing"
)

// labelled is a good history with stages and indexes: create t0 (index
// 5), put t1 (index 7), move AWSCURRENT back to t0 (index 9), reads on
// different nodes at those indexes, final by-version reads at index 9.
func labelled() Files {
	cur, prev := []string{StageCurrent}, []string{StagePrevious}
	g := func(id int64, node, stage, ver, val, index string, stages []string) Op {
		o := get(id, int(id), ver, val, id*10, id*10+5)
		o.Node, o.Stage, o.Index, o.Stages = node, stage, index, stages
		return o
	}
	p0 := put(1, 0, "t0", "v0", 0, 5, StatusOK)
	p0.Index, p0.Stages = "5", cur
	p1 := put(2, 1, "t1", "v1", 6, 9, StatusOK)
	p1.Index, p1.Stages = "7", cur
	mv := Op{ID: 5, Process: 5, Node: "n3", Kind: KindMove, Secret: "s", Stage: StageCurrent, RemoveFrom: "t1", MoveTo: "t0",
		Call: 40, Ret: 45, Status: StatusOK, Index: "9"}
	fin := func(node, ver, val string, stages []string) FinalRead {
		return FinalRead{Kind: "version", Node: node, Secret: "s", VersionID: ver, Found: true, Value: val, Index: "9", Stages: stages}
	}
	return Files{
		Ops: []Op{p0, p1,
			g(3, "n1", "", "t1", "v1", "7", cur),
			g(4, "n2", StagePrevious, "t0", "v0", "7", prev),
			mv,
			g(6, "n1", "", "t0", "v0", "9", cur),
			g(7, "n2", StagePrevious, "t1", "v1", "9", prev),
			g(8, "n3", "", "t0", "v0", "9", cur),
		},
		Final: []FinalRead{fin("n1", "t0", "v0", cur), fin("n2", "t1", "v1", prev)},
	}
}

func TestLabelInvariantsGood(t *testing.T) {
	f := labelled()
	if r := LabelInvariants(f); r.Verdict != Valid {
		t.Fatalf("%s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	if r := Linearizable(f, 5e9, ""); r.Verdict != Valid {
		t.Fatalf("linearizable: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// Histories recorded without stages are not judged by this checker.
	if r := LabelInvariants(good()); r.Verdict != Valid {
		t.Fatalf("old history: %s %v", r.Detail, r.Errors)
	}
}

func TestLabelOnTwoVersionsIsInvalid(t *testing.T) {
	cases := map[string]func(*Files){
		// Two nodes answer at index 9 with AWSCURRENT on different versions.
		"current on two versions at one index": func(f *Files) {
			f.Ops[7].VersionID, f.Ops[7].Read = "t1", "v1"
		},
		// Final by-version reads at one index both carry AWSCURRENT.
		"two final versions with AWSCURRENT": func(f *Files) {
			f.Final[1].Stages = []string{StageCurrent}
		},
		// One version carries both reserved labels.
		"AWSCURRENT and AWSPREVIOUS on one version": func(f *Files) {
			f.Ops[5].Stages = []string{StageCurrent, StagePrevious}
		},
		// A get of AWSPREVIOUS returns a version whose stages lack it.
		"read by label without the label": func(f *Files) {
			f.Ops[6].Stages = []string{}
		},
		// The same version with different stages at one index.
		"one version, two stage sets": func(f *Files) {
			f.Final[0].Stages = []string{StageCurrent, "custom"}
		},
		// An acknowledged move says AWSCURRENT is on t0 at index 9; a read
		// at index 9 says t1.
		"read contradicts an acknowledged move": func(f *Files) {
			f.Ops[5].VersionID, f.Ops[5].Read = "t1", "v1"
			f.Ops[7].VersionID, f.Ops[7].Read = "t1", "v1"
			f.Final = nil
		},
		"duplicate label": func(f *Files) {
			f.Ops[2].Stages = []string{StageCurrent, StageCurrent}
		},
	}
	for name, mutate := range cases {
		f := labelled()
		mutate(&f)
		r := LabelInvariants(f)
		if r.Verdict != Invalid || len(r.Errors) == 0 {
			t.Errorf("%s: %s %s", name, r.Verdict, r.Detail)
			continue
		}
		t.Logf("%s: %s", name, strings.Join(r.Errors, " | "))
	}
}
