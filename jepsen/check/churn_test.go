package check

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// churnOp is an operation of the churn workload on name "c".
func churnOp(id int64, proc int, kind string, call, ret int64, status, err string) Op {
	return Op{ID: id, Process: proc, Node: "n1", Kind: kind, Secret: "c", Call: call, Ret: ret, Status: status, Err: err}
}

func ccreate(id int64, proc int, tok string, call, ret int64, status, err string) Op {
	o := churnOp(id, proc, KindChurnCreate, call, ret, status, err)
	o.Token, o.Value = tok, "v-"+tok
	if status == StatusOK && err == "" {
		o.VersionID = tok
	}
	return o
}

func cdelete(id int64, proc int, force bool, call, ret int64, status, err string) Op {
	o := churnOp(id, proc, KindChurnDelete, call, ret, status, err)
	o.Force = force
	return o
}

func cdescribe(id int64, proc int, tok string, scheduled bool, call, ret int64) Op {
	o := churnOp(id, proc, KindChurnDescribe, call, ret, StatusOK, "")
	o.VersionID, o.Scheduled = tok, scheduled
	if tok == "" {
		o.Err = errNotFound
	}
	return o
}

func churnGood() Files {
	final := cdescribe(16, 9, "d", false, 100, 101)
	final.Final = true
	return Files{Ops: []Op{
		ccreate(1, 0, "a", 0, 10, StatusOK, ""),
		cdescribe(2, 1, "a", false, 11, 12),
		cdelete(3, 2, false, 20, 30, StatusOK, ""),
		cdescribe(4, 1, "a", true, 31, 32),
		ccreate(5, 0, "b", 33, 34, StatusOK, errInvalidRequest), // scheduled: the name is taken
		cdelete(6, 2, false, 35, 36, StatusOK, errInvalidRequest),
		churnOp(7, 3, KindChurnRestore, 40, 45, StatusOK, ""),
		ccreate(8, 0, "c", 46, 47, StatusOK, errExists),
		cdelete(9, 2, true, 50, 60, StatusOK, ""),
		cdescribe(10, 1, "", false, 61, 62),
		churnOp(11, 3, KindChurnRestore, 63, 64, StatusOK, errNotFound),
		cdelete(12, 2, false, 65, 66, StatusOK, errNotFound),
		cdelete(13, 2, true, 67, 68, StatusOK, ""), // force on an absent name succeeds
		ccreate(14, 0, "d", 70, 80, StatusUnknown, "timeout"),
		ccreate(15, 4, "e", 72, 75, StatusFail, "connection refused"),
		cdescribe(16, 1, "d", false, 90, 95),
		final,
	}}
}

func TestChurnGoodIsValid(t *testing.T) {
	f := churnGood()
	r, ok := ChurnLinearizable(f, 5*time.Second, "")
	if !ok || r.Verdict != Valid {
		t.Fatalf("linearizable: %v %s %s %v", ok, r.Verdict, r.Detail, r.Errors)
	}
	if r, ok := ChurnSet(f); !ok || r.Verdict != Valid {
		t.Fatalf("set: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	if _, ok := ChurnLinearizable(good(), time.Second, ""); ok {
		t.Fatal("no churn ops must not be reported")
	}
	if _, ok := ChurnSet(good()); ok {
		t.Fatal("no churn ops must not be reported (set)")
	}
}

func TestChurnBadHistories(t *testing.T) {
	bad := map[string]func(f *Files){
		// A second create acknowledged while the first secret exists.
		"create on existing ok": func(f *Files) {
			f.Ops[7] = ccreate(8, 0, "c", 46, 47, StatusOK, "")
		},
		// A scheduled name answered ResourceExists instead of
		// InvalidRequest.
		"create on scheduled": func(f *Files) {
			f.Ops[4] = ccreate(5, 0, "b", 33, 34, StatusOK, errExists)
		},
		// A stale read: the secret still there after the force delete
		// was acknowledged.
		"describe after force delete": func(f *Files) {
			f.Ops[9] = cdescribe(10, 1, "a", false, 61, 62)
		},
		// Restoring a purged name succeeded.
		"restore of absent": func(f *Files) {
			f.Ops[10] = churnOp(11, 3, KindChurnRestore, 63, 64, StatusOK, "")
		},
		// Still scheduled after the restore was acknowledged.
		"scheduled after restore": func(f *Files) {
			f.Ops = append(f.Ops[:8:8], cdescribe(20, 1, "a", true, 46, 47))
		},
		// A window delete of a scheduled secret succeeded.
		"double schedule": func(f *Files) {
			f.Ops[5] = cdelete(6, 2, false, 35, 36, StatusOK, "")
		},
		// A describe shows another generation's version.
		"wrong generation": func(f *Files) {
			f.Ops[1] = cdescribe(2, 1, "x", false, 11, 12)
		},
	}
	for name, mutate := range bad {
		f := churnGood()
		mutate(&f)
		dir := t.TempDir()
		if r, _ := ChurnLinearizable(f, 5*time.Second, dir); r.Verdict != Invalid {
			t.Errorf("%s: %s %s", name, r.Verdict, r.Detail)
		} else if m, _ := filepath.Glob(filepath.Join(dir, "churn-*.html")); len(m) != 1 {
			t.Errorf("%s: no visualisation", name)
		}
	}
}

func TestChurnLostCreate(t *testing.T) {
	// d's create was unknown; make it acknowledged and the final describe
	// find nothing: lost (no force delete after it).
	f := churnGood()
	f.Ops[13] = ccreate(14, 0, "d", 70, 80, StatusOK, "")
	f.Ops[15] = cdescribe(16, 1, "", false, 90, 95)
	f.Ops[16] = cdescribe(17, 9, "", false, 100, 101)
	f.Ops[16].Final = true
	if r, _ := ChurnSet(f); r.Verdict != Invalid {
		t.Fatalf("lost create: %s %s", r.Verdict, r.Detail)
	}
	if r, _ := ChurnLinearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("lost create, linearizable: %s", r.Detail)
	}
	// A force delete whose outcome is unknown, invoked after the
	// create: the create need not survive.
	f.Ops = append(f.Ops, cdelete(18, 5, true, 82, 83, StatusUnknown, "timeout"))
	if r, _ := ChurnSet(f); r.Verdict != Valid {
		t.Fatalf("unknown force delete after: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	if r, _ := ChurnLinearizable(f, 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("unknown force delete after, linearizable: %s %v", r.Detail, r.Errors)
	}
	// No successful final describe: unknown.
	f = churnGood()
	f.Ops = f.Ops[:16]
	f.Ops[13] = ccreate(14, 0, "d", 70, 80, StatusOK, "")
	if r, _ := ChurnSet(f); r.Verdict != Unknown {
		t.Fatalf("unread: %s %s", r.Verdict, r.Detail)
	}
}

func TestChurnRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fh, _ := os.Create(filepath.Join(dir, "history.jsonl"))
	writeAll(fh, churnGood().Ops)
	fh.Close()
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Ops[8].Force || !f.Ops[3].Scheduled {
		t.Fatal("force/scheduled not saved")
	}
	if r, _ := ChurnLinearizable(f, 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("reloaded: %s %v", r.Detail, r.Errors)
	}
}
