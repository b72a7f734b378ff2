package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hand-made Raft logs of secret "s" (ARN arn:...:secret:s-AbCdEf):
//
//	1 t1 configuration   2 t2 Noop   3 t2 CreateSecret t0   4 t2 PutSecretValue t1
//	5 t3 Noop            6 t3 PutSecretValue t2 (retried: op 4 is its retry)
//
// n1 holds 1-6, n2 3-6 (its prefix compacted by a snapshot), n3 1-5
// (one entry behind).

const testARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"

func raftLog(lo, hi uint64) []RaftEntry {
	all := []RaftEntry{
		{Index: 1, Term: 1, Type: "LogConfiguration", SHA256: "c1"},
		{Index: 2, Term: 2, Type: "LogCommand", SHA256: "a2", Cmd: "Noop"},
		{Index: 3, Term: 2, Type: "LogCommand", SHA256: "a3", Cmd: CmdCreateSecret, Token: "t0", Name: "s", ARN: testARN},
		{Index: 4, Term: 2, Type: "LogCommand", SHA256: "a4", Cmd: CmdPutSecretValue, Token: "t1", ARN: testARN},
		{Index: 5, Term: 3, Type: "LogCommand", SHA256: "a5", Cmd: "Noop"},
		{Index: 6, Term: 3, Type: "LogCommand", SHA256: "a6", Cmd: CmdPutSecretValue, Token: "t2", ARN: testARN},
	}
	return append([]RaftEntry(nil), all[lo-1:hi]...)
}

func goodRaftLogs() map[string][]RaftEntry {
	return map[string][]RaftEntry{"n1": raftLog(1, 6), "n2": raftLog(3, 6), "n3": raftLog(1, 5)}
}

func acked(id int64, tok, index string) Op {
	o := put(id, int(id), tok, "v"+tok, id*10, id*10+5, StatusOK)
	o.Index = index
	return o
}

func raftGood() Files {
	retry := acked(4, "t2", "6")
	retry.RetryOf = 3
	return Files{
		Ops: []Op{
			acked(1, "t0", "3"),
			acked(2, "t1", "4"),
			put(3, 3, "t2", "vt2", 30, 35, StatusUnknown),
			retry,
			put(5, 5, "t9", "vt9", 50, 55, StatusFail),
			acked(6, "t8", ""), // no index recorded: not checked
		},
		RaftLogs: goodRaftLogs(),
	}
}

func wantRaft(t *testing.T, f Files, verdict, errPart string) Result {
	t.Helper()
	r := RaftLogAgreement(f)
	if r.Verdict != verdict {
		t.Fatalf("verdict %s, want %s: %s %v", r.Verdict, verdict, r.Detail, r.Errors)
	}
	if errPart != "" && !strings.Contains(strings.Join(r.Errors, "\n"), errPart) {
		t.Fatalf("errors %q do not mention %q", r.Errors, errPart)
	}
	return r
}

func TestRaftLogGoodIsValid(t *testing.T) {
	r := wantRaft(t, raftGood(), Valid, "")
	want := "3 logs, indexes 1-6, 6 on 2+ logs; 3 of 3 acked writes found at their index, 0 compacted away"
	if r.Detail != want {
		t.Fatalf("detail %q, want %q", r.Detail, want)
	}
	// Snapshots compacted index 3 away everywhere: op 1 is not checkable.
	f := raftGood()
	f.RaftLogs = map[string][]RaftEntry{"n1": raftLog(4, 6), "n2": raftLog(4, 6)}
	r = wantRaft(t, f, Valid, "")
	if !strings.Contains(r.Detail, "2 of 3 acked writes found at their index, 1 compacted away") {
		t.Fatalf("detail %q", r.Detail)
	}
	// A single log: nothing to compare, still checked along itself.
	f.RaftLogs = map[string][]RaftEntry{"n1": raftLog(1, 6)}
	wantRaft(t, f, Valid, "")
}

func TestRaftLogTermsDisagree(t *testing.T) {
	f := raftGood()
	f.RaftLogs["n2"][1].Term = 3 // index 4
	wantRaft(t, f, Invalid, "index 4: n1 has term 2")
}

func TestRaftLogDataDisagrees(t *testing.T) {
	f := raftGood()
	f.RaftLogs["n3"][4].SHA256 = "ff" // index 5
	wantRaft(t, f, Invalid, "index 5: n1 has term 3 LogCommand Noop a5, n3 has term 3 LogCommand Noop ff")
}

func TestRaftLogTermGoesBack(t *testing.T) {
	f := raftGood()
	// Index 6 in term 1 on both logs that hold it: they agree, but the
	// term goes back along each of them.
	f.RaftLogs["n1"][5].Term = 1
	f.RaftLogs["n2"][3].Term = 1
	r := wantRaft(t, f, Invalid, "n1: term goes back from 3 at index 5 to 1 at index 6")
	if strings.Contains(strings.Join(r.Errors, "\n"), "index 6: n1") {
		t.Fatalf("no disagreement at index 6 expected: %v", r.Errors)
	}
}

func TestRaftLogHole(t *testing.T) {
	f := raftGood()
	f.RaftLogs["n1"] = append(raftLog(1, 3), raftLog(5, 6)...)
	wantRaft(t, f, Invalid, "n1: hole in the log: index 5 follows 3")
}

func TestRaftLogAckedWriteElsewhere(t *testing.T) {
	// Op 2 (token t1) was acknowledged at index 6, which holds t2.
	f := raftGood()
	f.Ops[1].Index = "6"
	wantRaft(t, f, Invalid, "op 2: put s token t1 acknowledged at index 6, but n1 has there LogCommand PutSecretValue token t2")
	// At an index holding no write at all.
	f = raftGood()
	f.Ops[1].Index = "5"
	wantRaft(t, f, Invalid, "but n1 has there LogCommand Noop")
	// The right token on another secret.
	f = raftGood()
	f.Ops[1].Secret = "other"
	wantRaft(t, f, Invalid, "op 2: put other token t1 acknowledged at index 4")
	// Beyond every log's end: the acknowledged entry is gone.
	f = raftGood()
	f.Ops[1].Index = "7"
	wantRaft(t, f, Invalid, "beyond every log's last index 6")
	// A create of the set workload is checked the same way.
	f = raftGood()
	f.Ops = append(f.Ops, Op{ID: 7, Kind: KindCreate, Secret: "set-1", Token: "t7", Status: StatusOK, Index: "3"})
	wantRaft(t, f, Invalid, "op 7: create set-1 token t7 acknowledged at index 3")
}

func TestRaftLogMissingFolderIsUnknown(t *testing.T) {
	dir := t.TempDir()
	fh, err := os.Create(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(fh, raftGood().Ops)
	fh.Close()
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.RaftLogs != nil {
		t.Fatalf("raft logs %v", f.RaftLogs)
	}
	wantRaft(t, f, Unknown, "")
	found := false
	for _, r := range All(f, 0, "") {
		if r.Name == "raft log agreement" {
			found = r.Verdict == Unknown
		}
	}
	if !found {
		t.Fatal("All does not report the raft log check as UNKNOWN")
	}

	// The same folder with the dumps: loaded per node, VALID.
	os.Mkdir(filepath.Join(dir, "raftlog"), 0o755)
	for n, es := range goodRaftLogs() {
		fh, err := os.Create(filepath.Join(dir, "raftlog", n+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		writeAll(fh, es)
		fh.Close()
	}
	if f, err = Load(dir); err != nil {
		t.Fatal(err)
	}
	if len(f.RaftLogs) != 3 || len(f.RaftLogs["n2"]) != 4 {
		t.Fatalf("loaded %v", f.RaftLogs)
	}
	wantRaft(t, f, Valid, "")
}

func TestARNName(t *testing.T) {
	for arn, want := range map[string]string{
		testARN: "s",
		"arn:aws:secretsmanager:r:1:secret:reg-ab-001-XyZ123": "reg-ab-001",
		"arn:aws:secretsmanager:r:1:secret:a/b-c-XyZ123":      "a/b-c",
		"arn:aws:secretsmanager:r:1:secret:short":             "",
		"no-arn": "",
	} {
		if got := arnName(arn); got != want {
			t.Errorf("arnName(%q) = %q, want %q", arn, got, want)
		}
	}
}
