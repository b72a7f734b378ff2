package check

import (
	"testing"
	"time"
)

// Histories of the label-move workload on secret "s": t0 (create), t1;
// then AWSCURRENT moves back to t0 with RemoveFrom t1.

func mv(id int64, proc int, r, m string, call, ret int64, status, err string) Op {
	return Op{ID: id, Process: proc, Node: "n1", Kind: KindMove, Secret: "s", Stage: StageCurrent, RemoveFrom: r, MoveTo: m,
		Call: call, Ret: ret, Status: status, Err: err}
}

func getStage(id int64, proc int, stage, ver, val string, call, ret int64, stages ...string) Op {
	o := get(id, proc, ver, val, call, ret)
	o.Stage, o.Stages = stage, append([]string{}, stages...)
	if ver == "" {
		o.Err, o.Stages = errNotFound, nil
	}
	return o
}

func moves() Files {
	return Files{Ops: []Op{
		put(1, 0, "t0", "v0", 0, 10, StatusOK),
		getStage(2, 1, StagePrevious, "", "", 11, 12), // no AWSPREVIOUS yet
		put(3, 0, "t1", "v1", 20, 30, StatusOK),
		getStage(4, 1, StagePrevious, "t0", "v0", 31, 35, StagePrevious),
		mv(5, 2, "t1", "t0", 40, 50, StatusOK, ""),
		getStage(6, 1, StageCurrent, "t0", "v0", 51, 55, StageCurrent),
		getStage(7, 3, StagePrevious, "t1", "v1", 52, 56, StagePrevious),
		mv(8, 2, "t1", "t0", 60, 70, StatusOK, errInvalidParam), // stale CAS: t0 holds it now
		mv(9, 4, "t0", "t1", 80, 90, StatusUnknown, "timeout"),  // may or may not happen
		getStage(10, 1, StageCurrent, "t0", "v0", 91, 95, StageCurrent),
		getStage(11, 3, StageCurrent, "t1", "v1", 96, 99, StageCurrent), // it happened
		put(12, 0, "t2", "v2", 100, 110, StatusOK),
		getStage(13, 1, StagePrevious, "t1", "v1", 111, 115, StagePrevious),
	}}
}

func TestSecretModelMovesGood(t *testing.T) {
	if r := Linearizable(moves(), 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("%s %v", r.Detail, r.Errors)
	}
	// Stages unrecorded (older histories) are not compared.
	f := moves()
	for i := range f.Ops {
		f.Ops[i].Stages = nil
	}
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("no stages: %s %v", r.Detail, r.Errors)
	}
	// The model by itself: spec §3.4 example C.
	s := SecretModel.Init().(secState).put("v1", "a")
	s = s.put("v2", "b") // v1[AWSPREVIOUS] v2[AWSCURRENT]
	s.labels[StagePending] = "v2"
	n, err := s.move(StageCurrent, "v2", "v1")
	if err != "" || n.labels[StageCurrent] != "v1" || n.labels[StagePrevious] != "v2" || n.labels[StagePending] != "v2" {
		t.Fatalf("move: %v %q", n.labels, err)
	}
	if _, err := n.move(StageCurrent, "v2", "v1"); err != errInvalidParam {
		t.Fatalf("stale CAS accepted")
	}
	if _, err := n.move(StageCurrent, "", "v2"); err != errInvalidParam {
		t.Fatalf("move without RemoveFrom accepted")
	}
	if _, err := n.move(StageCurrent, "v1", ""); err != errInvalidParam {
		t.Fatalf("AWSCURRENT removed")
	}
	if _, err := n.move(StageCurrent, "v1", "nope"); err != errInvalidParam {
		t.Fatalf("move to a missing version accepted")
	}
	if m, err := n.move(StageCurrent, "v1", "v1"); err != "" || m.labels[StageCurrent] != "v1" || m.labels[StagePrevious] != "v2" {
		t.Fatalf("move onto the holder: %v %q", m.labels, err)
	}
	p := n.put("v3", "c") // a new value drops AWSPENDING
	if p.labels[StageCurrent] != "v3" || p.labels[StagePrevious] != "v1" || p.labels[StagePending] != "" {
		t.Fatalf("put after move: %v", p.labels)
	}
}

func TestSecretModelMovesBad(t *testing.T) {
	cases := map[string]func(*Files){
		// The acknowledged move is lost: a later read still sees t1.
		"lost label move": func(f *Files) { f.Ops[5].VersionID, f.Ops[5].Read = "t1", "v1" },
		// The CAS failed although RemoveFrom named the holder.
		"CAS refused wrongly": func(f *Files) { f.Ops[4].Err = errInvalidParam },
		// The stale CAS succeeded.
		"stale CAS accepted": func(f *Files) { f.Ops[7].Err = "" },
		// AWSPREVIOUS did not follow AWSCURRENT.
		"AWSPREVIOUS not dragged": func(f *Files) { f.Ops[6].VersionID, f.Ops[6].Read = "t0", "v0" },
		// The put did not move AWSPREVIOUS to the old current version.
		"put left AWSPREVIOUS": func(f *Files) { f.Ops[12].VersionID, f.Ops[12].Read = "t0", "v0" },
		// Right version, wrong labels.
		"wrong stages": func(f *Files) { f.Ops[9].Stages = []string{StageCurrent, "extra"} },
		// AWSPREVIOUS read as missing after a second version exists.
		"previous not found": func(f *Files) { f.Ops[3].VersionID, f.Ops[3].Read, f.Ops[3].Err = "", "", errNotFound },
	}
	for name, mutate := range cases {
		f := moves()
		mutate(&f)
		if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
			t.Errorf("%s: %s %s", name, r.Verdict, r.Detail)
		}
	}
}

func getVer(id int64, proc int, want, ver, val string, call, ret int64, stages ...string) Op {
	o := get(id, proc, ver, val, call, ret)
	o.ByVersion, o.Stages = want, append([]string{}, stages...)
	if ver == "" {
		o.Err, o.Stages = errNotFound, nil
	}
	return o
}

// Reads by VersionId: a written version reads back with its value and
// its labels at the time; a version never written is not found.
func versionReads() Files {
	return Files{Ops: []Op{
		put(1, 0, "t0", "v0", 0, 10, StatusOK),
		getVer(2, 1, "t1", "", "", 11, 12), // not written yet
		put(3, 0, "t1", "v1", 20, 30, StatusOK),
		getVer(4, 1, "t0", "t0", "v0", 31, 35, StagePrevious),
		getVer(5, 1, "t1", "t1", "v1", 36, 40, StageCurrent),
		getVer(6, 2, "never", "", "", 41, 45),
	}}
}

func TestSecretModelVersionReads(t *testing.T) {
	if r := Linearizable(versionReads(), 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("%s %v", r.Detail, r.Errors)
	}
	bad := map[string]func(*Files){
		"phantom version found":    func(f *Files) { f.Ops[5] = getVer(6, 2, "never", "never", "x", 41, 45) },
		"written version missing":  func(f *Files) { f.Ops[3] = getVer(4, 1, "t0", "", "", 31, 35) },
		"wrong value":              func(f *Files) { f.Ops[4].Read = "v0" },
		"stale labels":             func(f *Files) { f.Ops[3].Stages = []string{StageCurrent} },
		"future version found":     func(f *Files) { f.Ops[1] = getVer(2, 1, "t1", "t1", "v1", 11, 12, StageCurrent) },
		"another version answered": func(f *Files) { f.Ops[4].VersionID, f.Ops[4].Read = "t0", "v0" },
	}
	for name, mutate := range bad {
		f := versionReads()
		mutate(&f)
		if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
			t.Errorf("%s: %s %s", name, r.Verdict, r.Detail)
		}
	}
}
