package check

import (
	"strings"
	"testing"
)

// A rotation history: secret "s" (ARN "arn:s"), created with version t0
// and value v0; rotation r1 acknowledged and finished, r2 acknowledged
// and finished (the final AWSCURRENT), r3 refused (still in progress), r4
// unknown and never applied.

func rdesc(id int64, node string, index string, final bool, versions map[string][]string) Op {
	return Op{ID: id, Node: node, Kind: KindDescribe, Secret: "s", Status: StatusOK, Index: index, Final: final, Versions: versions,
		Call: id * 10, Ret: id*10 + 5}
}

func rget(id int64, ver, val, index string, stages ...string) Op {
	return Op{ID: id, Node: "n2", Kind: KindGet, Secret: "s", Status: StatusOK, VersionID: ver, Read: val, Index: index,
		Stages: append([]string{}, stages...), Call: id * 10, Ret: id*10 + 5}
}

func rrot(id int64, tok, status, errType, msg string) Op {
	return Op{ID: id, Node: "n1", Kind: KindRotate, Secret: "s", Token: tok, Status: status, Err: errType, Message: msg,
		Call: id * 10, Ret: id*10 + 5}
}

func rfinal(ver, val string, found bool, stages ...string) FinalRead {
	return FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: ver, Found: found, Value: val, Stages: append([]string{}, stages...)}
}

func goodRotation() Files {
	cur, prev, pend := StageCurrent, StagePrevious, StagePending
	return Files{
		Ops: []Op{
			{ID: 1, Node: "n1", Kind: KindPut, Secret: "s", Token: "t0", Value: "v0", Status: StatusOK, VersionID: "t0", Call: 0, Ret: 5},
			rrot(2, "r1", StatusOK, "", ""),
			rdesc(3, "n1", "5", false, map[string][]string{"t0": {cur}, "r1": {pend}}),
			rget(4, "t0", "v0", "5", cur),
			rdesc(5, "n2", "8", false, map[string][]string{"r1": {cur, pend}, "t0": {prev}}),
			rrot(6, "r2", StatusOK, "", ""),
			rrot(7, "r3", StatusFail, "InvalidRequestException", "Previous rotation request is still in progress."),
			rdesc(8, "n3", "10", false, map[string][]string{"r1": {cur}, "t0": {prev}, "r2": {pend}}),
			rget(9, "r1", "rot-r1", "10", cur),
			rrot(10, "r4", StatusUnknown, "timeout", ""),
			rdesc(40, "n1", "20", true, map[string][]string{"r2": {cur}, "r1": {prev}}),
			rdesc(41, "n2", "20", true, map[string][]string{"r2": {cur}, "r1": {prev}}),
			rget(42, "r2", "rot-r2", "20", cur),
		},
		Final: []FinalRead{
			rfinal("t0", "v0", true),
			rfinal("r1", "rot-r1", true, prev),
			rfinal("r2", "rot-r2", true, cur),
			rfinal("r4", "", false),
		},
		Hook: []HookCall{
			{Call: 30, Ret: 31, Step: "createSecret", Secret: "arn:s", Token: "r1", Status: 200, Put: true},
			{Call: 32, Ret: 33, Step: "setSecret", Secret: "arn:s", Token: "r1", Status: 200},
			{Call: 34, Ret: 35, Step: "testSecret", Secret: "arn:s", Token: "r1", Status: 200},
			{Call: 36, Ret: 37, Step: "finishSecret", Secret: "arn:s", Token: "r1", Status: 200, From: "t0", Pending: true, Moved: true},
			{Call: 80, Ret: 81, Step: "createSecret", Secret: "arn:s", Token: "r2", Status: 200, Put: true},
			{Call: 82, Ret: 83, Step: "finishSecret", Secret: "arn:s", Token: "r2", Status: 500, Err: "timeout"},
			{Call: 90, Ret: 91, Step: "createSecret", Secret: "arn:s", Token: "r2", Status: 200, Exists: true},
			{Call: 96, Ret: 97, Step: "finishSecret", Secret: "arn:s", Token: "r2", Status: 200, From: "r1", Pending: true, Moved: true},
		},
		Rotation: &RotationRun{Secrets: []RotSecret{{Name: "s", ARN: "arn:s", InitialToken: "t0", InitialValue: "v0"}}, Settled: true},
	}
}

func rotVerdicts(f Files) map[string]Result {
	out := map[string]Result{}
	for _, r := range []Result{RotationLabels(f), RotationNoLost(f), RotationValues(f)} {
		out[r.Name] = r
	}
	return out
}

func TestRotationGood(t *testing.T) {
	for name, r := range rotVerdicts(goodRotation()) {
		if r.Verdict != Valid {
			t.Errorf("%s: %s %s %v", name, r.Verdict, r.Detail, r.Errors)
		}
	}
	r := RotationNoLost(goodRotation())
	if !strings.Contains(r.Detail, "2 acknowledged rotations: 2 finished") {
		t.Errorf("detail %q", r.Detail)
	}
}

func TestRotationBad(t *testing.T) {
	cur, prev, pend := StageCurrent, StagePrevious, StagePending
	cases := []struct {
		name, check, want string
		edit              func(f *Files)
	}{
		{"two AWSCURRENT in a describe", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[4].Versions = map[string][]string{"r1": {cur, pend}, "t0": {cur}}
		}},
		{"no AWSCURRENT in a describe", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[4].Versions = map[string][]string{"r1": {pend}, "t0": {prev}}
		}},
		{"two AWSPENDING", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[7].Versions = map[string][]string{"r1": {cur, pend}, "t0": {prev}, "r2": {pend}}
		}},
		{"AWSCURRENT and AWSPREVIOUS on one version", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[7].Versions = map[string][]string{"r1": {cur, prev}, "r2": {pend}}
		}},
		{"two holders at one index", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[3] = rget(4, "r1", "rot-r1", "8", cur) // describe at 8 says r1: fine; make it t0 at 8
			f.Ops[3] = rget(4, "t0", "v0", "8", cur)
		}},
		{"AWSCURRENT goes back", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops = append(f.Ops, rdesc(50, "n3", "25", false, map[string][]string{"r1": {cur}, "r2": {prev}}))
		}},
		{"AWSCURRENT read without the label", "one AWSCURRENT", Invalid, func(f *Files) {
			f.Ops[8].Stages = []string{prev}
		}},
		{"acknowledged rotation's value lost", "no lost rotation result", Invalid, func(f *Files) {
			f.Final[1] = rfinal("r1", "", false)
		}},
		{"acknowledged rotation's version has another value", "no lost rotation result", Invalid, func(f *Files) {
			f.Final[1] = rfinal("r1", "rot-r2", true, prev)
		}},
		{"acknowledged rotation never became AWSCURRENT", "no lost rotation result", Invalid, func(f *Files) {
			f.Ops = append(f.Ops, rrot(11, "r5", StatusOK, "", ""))
			f.Final = append(f.Final, rfinal("r5", "rot-r5", true))
			f.Hook = append(f.Hook, HookCall{Call: 120, Ret: 121, Step: "createSecret", Secret: "arn:s", Token: "r5", Status: 200, Put: true})
		}},
		{"acknowledged rotation still AWSPENDING after settling", "no lost rotation result", Invalid, func(f *Files) {
			f.Final[2] = rfinal("r2", "rot-r2", true, cur, pend)
		}},
		{"final AWSCURRENT is the initial version", "no lost rotation result", Invalid, func(f *Files) {
			f.Ops[10].Versions = map[string][]string{"t0": {cur}}
			f.Ops[11].Versions = map[string][]string{"t0": {cur}}
		}},
		{"final AWSCURRENT nobody rotated to", "no lost rotation result", Invalid, func(f *Files) {
			f.Ops[10].Versions = map[string][]string{"zz": {cur}, "r2": {prev}}
			f.Ops[11].Versions = map[string][]string{"zz": {cur}, "r2": {prev}}
		}},
		{"nodes disagree on the final AWSCURRENT", "no lost rotation result", Invalid, func(f *Files) {
			f.Ops[11].Versions = map[string][]string{"r1": {cur}, "t0": {prev}}
		}},
		{"acknowledged rotation not read back", "no lost rotation result", Unknown, func(f *Files) {
			f.Final[1] = FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: "r1", Err: "timeout"}
		}},
		{"value nobody wrote", "rotation values written", Invalid, func(f *Files) {
			f.Ops[8] = rget(9, "r1", "rot-r2", "10", cur)
		}},
		{"unknown version listed", "rotation values written", Invalid, func(f *Files) {
			f.Ops[7].Versions = map[string][]string{"r1": {cur}, "t0": {prev}, "ghost": {pend}}
		}},
		{"AWSCURRENT without a value", "rotation values written", Invalid, func(f *Files) {
			f.Ops = append(f.Ops, Op{ID: 60, Node: "n1", Kind: KindGet, Secret: "s", Status: StatusFail, Err: "ResourceNotFoundException"})
		}},
		{"unverified hook request", "rotation values written", Invalid, func(f *Files) {
			f.Hook = append(f.Hook, HookCall{Call: 99, Step: "setSecret", Secret: "arn:s", Token: "r2", Status: 401, Err: "webhook: the signature does not match"})
		}},
		{"hook event for a token nobody sent", "rotation values written", Invalid, func(f *Files) {
			f.Hook = append(f.Hook, HookCall{Call: 99, Step: "setSecret", Secret: "arn:s", Token: "ghost", Status: 200})
		}},
		{"finished before created", "rotation values written", Invalid, func(f *Files) {
			f.Hook[4].Status, f.Hook[6].Call, f.Hook[6].Ret = 500, 98, 99
		}},
		{"became AWSCURRENT without a finish", "rotation values written", Invalid, func(f *Files) {
			f.Hook = f.Hook[:7]
		}},
	}
	for _, c := range cases {
		f := goodRotation()
		c.edit(&f)
		got := rotVerdicts(f)[c.check]
		if got.Verdict != c.want {
			t.Errorf("%s: %s = %s (%s), want %s", c.name, c.check, got.Verdict, got.Detail, c.want)
		}
	}
}

func TestRotationInFlightNotJudged(t *testing.T) {
	f := goodRotation()
	// r2 still in flight at the end: the run did not settle.
	f.Rotation.Settled, f.Rotation.InFlight = false, []string{"r2"}
	f.Final[2] = rfinal("r2", "", false, StagePending)
	for _, i := range []int{10, 11} {
		f.Ops[i].Versions = map[string][]string{"r1": {StageCurrent}, "r2": {StagePending}}
		f.Ops[i].Rotating = "r2"
	}
	f.Ops[12] = rget(42, "r1", "rot-r1", "20", StageCurrent)
	f.Hook = f.Hook[:7]
	r := RotationNoLost(f)
	if r.Verdict != Valid || !strings.Contains(r.Detail, "1 still in flight") {
		t.Errorf("%s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	if r := RotationValues(f); r.Verdict != Valid {
		t.Errorf("values: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
}
