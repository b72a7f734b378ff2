package check

import "testing"

func datedRun() Files {
	p := func(id int64, tok, index string) Op {
		o := put(id, 0, tok, "v"+tok, id*10, id*10+5, StatusOK)
		o.Index = index
		return o
	}
	v := func(tok string, created int64) FinalRead {
		return FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: tok, Found: true, Value: "v" + tok, Created: created}
	}
	return Files{
		Ops:   []Op{p(1, "t1", "10"), p(2, "t2", "12"), p(3, "t3", "15")},
		Final: []FinalRead{v("t1", 1000), v("t2", 1000), v("t3", 1500)},
	}
}

func TestVersionDatesFollowLog(t *testing.T) {
	if r := VersionDatesFollowLog(datedRun()); r.Verdict != Valid {
		t.Fatalf("%s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// t3 was written after t2 in the log but is dated before it: a node
	// with a slow clock stamped it and nothing kept the dates in order.
	f := datedRun()
	f.Final[2].Created = 999
	if r := VersionDatesFollowLog(f); r.Verdict != Invalid || len(r.Errors) != 1 {
		t.Fatalf("backwards date: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// A retry's index is not where its version was created: not judged.
	f = datedRun()
	f.Ops[2].RetryOf, f.Final[2].Created = 1, 999
	if r := VersionDatesFollowLog(f); r.Verdict != Valid {
		t.Fatalf("retry judged: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// Nothing to compare proves nothing.
	if r := VersionDatesFollowLog(Files{Ops: datedRun().Ops}); r.Verdict != Unknown {
		t.Fatalf("no dates: %s %s", r.Verdict, r.Detail)
	}
}
