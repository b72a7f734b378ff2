package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func statuses(polls ...[]NodeStatus) []NodeStatus {
	var out []NodeStatus
	for p, poll := range polls {
		for _, s := range poll {
			s.Poll = p
			out = append(out, s)
		}
	}
	return out
}

func st(node string, idx uint64, digest string) NodeStatus {
	return NodeStatus{Node: node, AppliedIndex: idx, StateDigestIndex: idx, StateDigest: digest}
}

func TestConvergence(t *testing.T) {
	if _, ok := Convergence(Files{}); ok {
		t.Fatal("no samples must not be reported")
	}
	good := statuses(
		[]NodeStatus{st("n1", 500, "aaa"), st("n2", 498, "bbb"), st("n3", 500, "aaa")},
		[]NodeStatus{st("n1", 500, "aaa"), st("n2", 500, "aaa"), st("n3", 500, "aaa")},
	)
	if r, ok := Convergence(Files{Statuses: good}); !ok || r.Verdict != Valid {
		t.Fatalf("converged: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	if !PollConverged(lastPoll(good)) || PollConverged(good[:3]) {
		t.Fatal("PollConverged")
	}
	// Same index, different digests (in an earlier poll): invalid even
	// though the last poll agrees on another index.
	split := statuses(
		[]NodeStatus{st("n1", 500, "aaa"), st("n2", 500, "ccc"), st("n3", 499, "ddd")},
		[]NodeStatus{st("n1", 501, "eee"), st("n2", 501, "eee"), st("n3", 501, "eee")},
	)
	if r, _ := Convergence(Files{Statuses: split}); r.Verdict != Invalid || len(r.Errors) != 1 {
		t.Fatalf("digest split: %s %s %v", r.Verdict, r.Detail, r.Errors)
	}
	// Never reached one index.
	stuck := statuses([]NodeStatus{st("n1", 500, "aaa"), st("n2", 490, "bbb"), st("n3", 500, "aaa")})
	if r, _ := Convergence(Files{Statuses: stuck}); r.Verdict != Invalid {
		t.Fatalf("not converged: %s %s", r.Verdict, r.Detail)
	}
	// A node that did not answer in the last poll: unknown.
	down := statuses([]NodeStatus{st("n1", 500, "aaa"), {Node: "n2", Err: "connection refused"}, st("n3", 500, "aaa")})
	if r, _ := Convergence(Files{Statuses: down}); r.Verdict != Unknown {
		t.Fatalf("node down: %s %s", r.Verdict, r.Detail)
	}
}

func TestPanicScan(t *testing.T) {
	log := "2026-11-23T06:00:00Z [INFO]  coffer.cluster.raft: election won: term=2 tally=1\n" +
		"2026-11-23T06:00:01Z [ERROR] coffer: handler panicked: panic=\"boom\" path=/\n" +
		"panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\n" +
		"fatal error: concurrent map writes\n"
	ps, err := ScanLogForPanics("n1", strings.NewReader(log))
	if err != nil || len(ps) != 2 || ps[0].Line != 3 || ps[1].Line != 6 {
		t.Fatalf("panics %+v %v", ps, err)
	}
	f := good()
	if r := NoPanics(f); r.Verdict != Valid {
		t.Fatalf("clean: %s %s", r.Verdict, r.Detail)
	}
	f.Panics = ps
	if r := NoPanics(f); r.Verdict != Invalid {
		t.Fatalf("panic: %s %s", r.Verdict, r.Detail)
	}
	if r := NoPanics(Files{}); r.Verdict != Unknown {
		t.Fatalf("no logs: %s", r.Verdict)
	}
	// Load finds it in a saved run.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "history.jsonl"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "nodes", "n2"), 0o755)
	os.WriteFile(filepath.Join(dir, "nodes", "n2", "coffer.log"), []byte(log), 0o644)
	lf, err := Load(dir)
	if err != nil || len(lf.Panics) != 2 || lf.Panics[0].Node != "n2" || len(lf.Leaders) != 1 {
		t.Fatalf("load: %+v %v", lf.Panics, err)
	}
}

func TestPlaintextScan(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "n1", "data")
	os.MkdirAll(filepath.Join(data, "raft"), 0o700)
	os.WriteFile(filepath.Join(data, "raft", "raft.db"), []byte("\x00\x01sealed\xff"), 0o600)
	os.WriteFile(filepath.Join(data, "state.snap"), []byte("nothing here"), 0o600)
	s := ScanForMarker("jepsen/abc/", data)
	if r := Plaintext(s); r.Verdict != Valid || s.Files != 2 {
		t.Fatalf("clean: %s %s", r.Verdict, r.Detail)
	}
	os.WriteFile(filepath.Join(data, "raft", "000012.log"), []byte("xx jepsen/abc/reg-1/7/ff yy"), 0o600)
	s = ScanForMarker("jepsen/abc/", data)
	if r := Plaintext(s); r.Verdict != Invalid || len(s.Hits) != 1 || !strings.Contains(s.Hits[0], "000012.log: offset 3") {
		t.Fatalf("leak: %s %s %v", r.Verdict, r.Detail, s.Hits)
	}
	if r := Plaintext(ScanForMarker("jepsen/abc/", filepath.Join(dir, "missing"))); r.Verdict != Unknown {
		t.Fatalf("nothing read: %s %s", r.Verdict, r.Detail)
	}
	if r := Plaintext(DiskScan{}); r.Verdict != Unknown {
		t.Fatalf("no marker: %s", r.Verdict)
	}
}
