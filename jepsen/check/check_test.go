package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Hand-made histories: one secret "s", versions t0 (the create), t1, t2.
// Times are in arbitrary units.

func put(id int64, proc int, tok, val string, call, ret int64, status string) Op {
	o := Op{ID: id, Process: proc, Node: "n1", Kind: KindPut, Secret: "s", Token: tok, Value: val, Call: call, Ret: ret, Status: status}
	if status == StatusOK {
		o.VersionID = tok
	}
	return o
}

func get(id int64, proc int, ver, val string, call, ret int64) Op {
	return Op{ID: id, Process: proc, Node: "n2", Kind: KindGet, Secret: "s", Call: call, Ret: ret, Status: StatusOK, VersionID: ver, Read: val}
}

func finals(vs ...[2]string) []FinalRead {
	var out []FinalRead
	for _, v := range vs {
		out = append(out, FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: v[0], Found: true, Value: v[1]})
	}
	return out
}

func good() Files {
	return Files{
		Ops: []Op{
			put(1, 0, "t0", "v0", 0, 10, StatusOK),
			put(2, 1, "t1", "v1", 20, 30, StatusOK),
			get(3, 2, "t1", "v1", 31, 40),
			put(4, 1, "t2", "v2", 50, 60, StatusUnknown), // unknown, later seen
			get(5, 2, "t1", "v1", 51, 55),                // concurrent with it: old value is fine
			get(6, 3, "t2", "v2", 70, 80),
			put(7, 4, "t3", "v3", 90, 100, StatusUnknown), // unknown, never seen: dropped
			put(8, 5, "t4", "v4", 110, 120, StatusFail),
			get(9, 3, "t2", "v2", 130, 140),
			{ID: 10, Process: 6, Node: "n3", Kind: KindCreate, Secret: "set-1", Call: 0, Ret: 5, Status: StatusOK},
		},
		Final: append(finals([2]string{"t0", "v0"}, [2]string{"t1", "v1"}, [2]string{"t2", "v2"}),
			FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: "t3"},
			FinalRead{Kind: "exists", Node: "n1", Secret: "set-1", Found: true}),
		Events: []Event{{Time: 45, Phase: "start", Fault: "kill", Node: "n1"}, {Time: 65, Phase: "stop", Fault: "kill", Node: "n1"}},
		Leaders: []LeaderClaim{{Node: "n1", Leader: "n1", Term: 2, Source: "acquired"}, {Node: "n2", Leader: "n1", Term: 2, Source: "observed"},
			{Node: "n2", Leader: "n2", Term: 3, Source: "acquired"}, {Node: "n1", Leader: "n2", Term: 3, Source: "observed"}},
		LogsRead: 3,
		RaftLogs: goodRaftLogs(),
	}
}

func verdicts(t *testing.T, f Files, dir string) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for _, r := range All(f, 5*time.Second, dir) {
		out[r.Name] = r
	}
	return out
}

func TestGoodHistoryIsValid(t *testing.T) {
	for name, r := range verdicts(t, good(), "") {
		if r.Verdict != Valid {
			t.Errorf("%s: %s %s %v", name, r.Verdict, r.Detail, r.Errors)
		}
	}
	ws := Unavailability(good())
	if len(ws) != 1 || ws[0].Recovered {
		t.Fatalf("windows %+v", ws)
	}
	// After the fault at t=45 only an unknown and a failed put were
	// invoked: no acknowledged write yet, so add one.
	f := good()
	f.Ops = append(f.Ops, put(11, 7, "t5", "v5", 150, 160, StatusOK))
	ws = Unavailability(f)
	if ws[0].Window != 115 {
		t.Errorf("window %v, want 115", ws[0].Window)
	}
	if n, p50, max := Percentiles(ws); n != 1 || p50 != 115 || max != 115 {
		t.Errorf("percentiles %d %v %v", n, p50, max)
	}
}

func TestStaleReadIsInvalid(t *testing.T) {
	f := good()
	// After t2 was seen (op 6 ended at 80), a read returns t1 again.
	f.Ops = append(f.Ops, get(12, 8, "t1", "v1", 85, 88))
	dir := t.TempDir()
	r := verdicts(t, f, dir)["linearizable (per secret)"]
	if r.Verdict != Invalid {
		t.Fatalf("stale read: %s %s", r.Verdict, r.Detail)
	}
	html, err := os.ReadFile(filepath.Join(dir, "linear-s.html"))
	if err != nil || !strings.Contains(string(html), "<html") {
		t.Fatalf("visualisation not written: %v", err)
	}
}

func TestLostWriteIsInvalid(t *testing.T) {
	f := good()
	// t1 was acknowledged, but the final reads do not find it.
	f.Final = append(finals([2]string{"t0", "v0"}, [2]string{"t2", "v2"}),
		FinalRead{Kind: "version", Node: "n1", Secret: "s", VersionID: "t1", Found: false},
		FinalRead{Kind: "exists", Node: "n1", Secret: "set-1", Found: true})
	if r := verdicts(t, f, "")["acked writes lost"]; r.Verdict != Invalid {
		t.Fatalf("lost put: %s %s", r.Verdict, r.Detail)
	}
	// An acknowledged create missing at the end.
	f = good()
	f.Final[len(f.Final)-1].Found = false
	if r := verdicts(t, f, "")["acked writes lost"]; r.Verdict != Invalid {
		t.Fatalf("lost create: %s %s", r.Verdict, r.Detail)
	}
	// No final read at all: unknown, not valid.
	f = good()
	f.Final = nil
	if r := NoLostWrites(f); r.Verdict != Unknown {
		t.Fatalf("unread: %s %s", r.Verdict, r.Detail)
	}
	// A lost last write also breaks linearizability: the final read
	// returns the previous version.
	f = good()
	f.Ops = append(f.Ops, put(13, 9, "t6", "v6", 150, 160, StatusOK), get(14, 10, "t2", "v2", 170, 180))
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("lost last write: %s %s", r.Verdict, r.Detail)
	}
}

func TestPhantomVersionIsInvalid(t *testing.T) {
	f := good()
	f.Ops = append(f.Ops, get(15, 11, "t9", "v9", 150, 160))
	if r := NoPhantoms(f); r.Verdict != Invalid {
		t.Fatalf("phantom version: %s %s", r.Verdict, r.Detail)
	}
	// Right version id, wrong value.
	f = good()
	f.Final[1].Value = "garbage"
	if r := NoPhantoms(f); r.Verdict != Invalid {
		t.Fatalf("phantom value: %s %s", r.Verdict, r.Detail)
	}
	f = good()
	f.Final = append(f.Final, FinalRead{Kind: "exists", Secret: "set-never", Found: true})
	if r := NoPhantoms(f); r.Verdict != Invalid {
		t.Fatalf("phantom set element: %s %s", r.Verdict, r.Detail)
	}
	// A phantom is also not linearizable.
	f = good()
	f.Ops = append(f.Ops, get(15, 11, "t9", "v9", 150, 160))
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("phantom linearizable: %s %s", r.Verdict, r.Detail)
	}
}

func TestUnknownPutMayNotHappen(t *testing.T) {
	// An unknown put that a read observed, then a read of the older
	// version: illegal only if the observation came first.
	f := Files{Ops: []Op{
		put(1, 0, "t0", "v0", 0, 10, StatusOK),
		put(2, 1, "t1", "v1", 20, 30, StatusUnknown),
		get(3, 2, "t0", "v0", 40, 50), // not yet applied: fine
		get(4, 2, "t1", "v1", 60, 70), // applied late: fine
	}, Final: finals([2]string{"t0", "v0"}, [2]string{"t1", "v1"})}
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Valid {
		t.Fatalf("late unknown put: %s %v", r.Detail, r.Errors)
	}
	f.Ops = append(f.Ops, get(5, 3, "t0", "v0", 80, 90)) // flaps back
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("flapping read: %s", r.Detail)
	}
}

func TestRoundTripFiles(t *testing.T) {
	dir := t.TempDir()
	g := good()
	for name, write := range map[string]func(*os.File) error{
		"history.jsonl": func(w *os.File) error { return writeAll(w, g.Ops) },
		"final.jsonl":   func(w *os.File) error { return writeAll(w, g.Final) },
		"nemesis.jsonl": func(w *os.File) error { return writeAll(w, g.Events) },
	} {
		fh, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(fh); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Ops) != len(g.Ops) || len(f.Final) != len(g.Final) || len(f.Events) != len(g.Events) {
		t.Fatalf("loaded %d/%d/%d", len(f.Ops), len(f.Final), len(f.Events))
	}
	if Worst(Valid, Unknown) != Unknown || Worst(Unknown, Invalid, Valid) != Invalid || Worst() != Valid {
		t.Fatal("Worst")
	}
}

func writeAll[T any](w *os.File, vs []T) error {
	jw := NewWriter(w)
	for _, v := range vs {
		if err := jw.Write(v); err != nil {
			return err
		}
	}
	return jw.Flush()
}
