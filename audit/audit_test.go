package audit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func rec(name string) Record {
	return Record{EventVersion: EventVersion, EventTime: time.Unix(1700000000, 0).UTC().Format(time.RFC3339),
		EventSource: SourceSecretsManager, EventName: name, AWSRegion: "us-east-1", EventType: TypeAPICall,
		UserIdentity: Identity{Type: "Root", AccessKeyID: "AKIATEST", AccountID: "000000000000"},
		Resources:    []Resource{{ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf", Type: ResourceSecret}},
		RequestID:    "req", EventID: "ev", ManagementEvent: true, EventCategory: "Management", Node: "n1"}
}

func writeN(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		if err := l.Write(rec(fmt.Sprintf("Op%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, dir string) Report {
	t.Helper()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func segPath(dir string, n uint64) string { return filepath.Join(dir, segmentName(n)) }

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:bytes.Count(b, []byte("\n"))]
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLog_ChainAcrossRotationAndReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(rec("x")); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}
	l, err = Open(dir, Options{SegmentBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if l.Sequence() != 20 {
		t.Fatalf("reopened at sequence %d, want 20", l.Sequence())
	}
	writeN(t, l, 15)
	l.Close()
	rep := mustVerify(t, dir)
	if rep.Records != 35 || rep.FirstSequence != 1 || rep.LastSequence != 35 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Segments < 4 {
		t.Fatalf("expected rotation into several segments, got %d", rep.Segments)
	}
	// Each record is one line; the first has ZeroHash.
	first := readLines(t, segPath(dir, 1))[0]
	r, err := ParseRecord([]byte(strings.TrimSuffix(first, "\n")))
	if err != nil || r.Sequence != 1 || r.PreviousHash != ZeroHash || r.EventName != "Op0" {
		t.Fatalf("first record %+v, %v", r, err)
	}
}

func TestLog_ConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { writeN(t, l, 50) })
	}
	wg.Wait()
	l.Close()
	if rep := mustVerify(t, dir); rep.Records != 400 {
		t.Fatalf("records %d, want 400", rep.Records)
	}
}

// brokenAt sets up a 3-segment log, lets tamper change it, and returns
// Verify's problem.
func brokenAt(t *testing.T, tamper func(dir string)) *Problem {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 1500})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 12)
	l.Close()
	if rep := mustVerify(t, dir); rep.Segments < 3 {
		t.Fatalf("want at least 3 segments, got %d", rep.Segments)
	}
	tamper(dir)
	rep, err := Verify(dir)
	if err == nil || rep.Broken == nil || !IsBroken(err) {
		t.Fatalf("verify passed a tampered log: %+v %v", rep, err)
	}
	return rep.Broken
}

func TestVerify_DetectsTampering(t *testing.T) {
	t.Run("modified line", func(t *testing.T) {
		p := brokenAt(t, func(dir string) {
			lines := readLines(t, segPath(dir, 1))
			lines[1] = strings.Replace(lines[1], `"Op1"`, `"Op9"`, 1)
			writeLines(t, segPath(dir, 1), lines)
		})
		if p.Kind != KindHashMismatch || p.File != segmentName(1) || p.Line != 3 || p.Sequence != 3 {
			t.Fatalf("problem %v", p)
		}
	})
	t.Run("deleted line", func(t *testing.T) {
		p := brokenAt(t, func(dir string) {
			lines := readLines(t, segPath(dir, 2))
			writeLines(t, segPath(dir, 2), append(lines[:1:1], lines[2:]...))
		})
		if p.Kind != KindSequenceGap || p.File != segmentName(2) || p.Line != 2 {
			t.Fatalf("problem %v", p)
		}
	})
	t.Run("swapped pair", func(t *testing.T) {
		p := brokenAt(t, func(dir string) {
			lines := readLines(t, segPath(dir, 1))
			lines[0], lines[1] = lines[1], lines[0]
			writeLines(t, segPath(dir, 1), lines)
		})
		if p.Kind != KindSequenceGap || p.Line != 1 || p.Sequence != 2 {
			t.Fatalf("problem %v", p)
		}
	})
	t.Run("deleted middle segment", func(t *testing.T) {
		p := brokenAt(t, func(dir string) { os.Remove(segPath(dir, 2)) })
		if p.Kind != KindMissing || p.File != segmentName(2) {
			t.Fatalf("problem %v", p)
		}
	})
	t.Run("garbage line", func(t *testing.T) {
		p := brokenAt(t, func(dir string) {
			lines := readLines(t, segPath(dir, 1))
			lines[2] = "{not json\n"
			writeLines(t, segPath(dir, 1), lines)
		})
		if p.Kind != KindUnparsable || p.Line != 3 {
			t.Fatalf("problem %v", p)
		}
	})
	t.Run("torn line in an earlier segment", func(t *testing.T) {
		p := brokenAt(t, func(dir string) {
			b, _ := os.ReadFile(segPath(dir, 1))
			os.WriteFile(segPath(dir, 1), b[:len(b)-5], 0o600)
		})
		if p.Kind != KindTornMidLog || p.File != segmentName(1) {
			t.Fatalf("problem %v", p)
		}
	})
}

// A crash mid-write leaves a torn last line: Verify reports it without
// failing, and Open sets it aside in a .torn file and continues the chain
// from the last complete record.
func TestLog_TornTailRecovery(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 5)
	l.Close()
	path := segPath(dir, 1)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"eventVersion":"1.08","userIdent`)
	f.Close()
	rep, err := Verify(dir)
	if err != nil || rep.Torn == nil || rep.Torn.Line != 6 || rep.Records != 5 {
		t.Fatalf("verify with a torn tail: %+v %v", rep, err)
	}
	l, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Sequence() != 5 {
		t.Fatalf("sequence after recovery %d, want 5", l.Sequence())
	}
	writeN(t, l, 2)
	l.Close()
	rep = mustVerify(t, dir)
	if rep.Torn != nil || rep.Records != 7 {
		t.Fatalf("after recovery: %+v", rep)
	}
	torn, err := os.ReadFile(path + tornSuffix)
	if err != nil || !strings.Contains(string(torn), "userIdent") {
		t.Fatalf("torn bytes not kept: %q %v", torn, err)
	}
}

// A last segment begun just before a crash and left empty: the chain
// continues from the previous segment.
func TestLog_EmptyLastSegment(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(dir, Options{})
	writeN(t, l, 3)
	l.Close()
	os.WriteFile(segPath(dir, 2), nil, 0o600)
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 1)
	l.Close()
	if rep := mustVerify(t, dir); rep.Records != 4 || rep.Segments != 2 {
		t.Fatalf("%+v", rep)
	}
}

// A write that fails breaks the log; once the directory is back, the next
// Ready mends it and the chain goes on.
func TestLog_BrokenAndMended(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "audit")
	l, err := Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeN(t, l, 3)
	// Replace the directory by a file (works as root, where chmod does
	// not stop writes): the open segment is unlinked with it, so force a
	// rotation to make the next write touch the directory.
	l.opts.SegmentBytes = 1
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir, []byte("not a directory"), 0o600)
	if err := l.Write(rec("Fails")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if err := l.Ready(); err == nil {
		t.Fatal("Ready with the directory gone")
	}
	os.Remove(dir)
	os.Rename(dir+".away", dir)
	if err := l.Ready(); err != nil {
		t.Fatalf("Ready after the directory came back: %v", err)
	}
	writeN(t, l, 2)
	if rep := mustVerify(t, dir); rep.Records != 5 {
		t.Fatalf("%+v", rep)
	}
}

func TestTail_FilterAndFollow(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(dir, Options{SegmentBytes: 1000})
	defer l.Close()
	writeN(t, l, 6)
	var got []string
	collect := func(r Record) error { got = append(got, r.EventName); return nil }
	if err := Tail(context.Background(), dir, Filter{}, false, 2, collect); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "Op4,Op5" {
		t.Fatalf("last 2: %v", got)
	}
	got = nil
	Tail(context.Background(), dir, Filter{Operation: "op3"}, false, 0, collect)
	if strings.Join(got, ",") != "Op3" {
		t.Fatalf("operation filter: %v", got)
	}
	got = nil
	Tail(context.Background(), dir, Filter{Identity: "AKIAOTHER"}, false, 0, collect)
	Tail(context.Background(), dir, Filter{Secret: "nosuch"}, false, 0, collect)
	if len(got) != 0 {
		t.Fatalf("filters matched: %v", got)
	}

	PollInterval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan string, 100)
	done := make(chan error)
	go func() {
		done <- Tail(ctx, dir, Filter{Secret: "db-AbCdEf"}, true, 1, func(r Record) error { ch <- r.EventName; return nil })
	}()
	if n := <-ch; n != "Op5" {
		t.Fatalf("first followed record %s", n)
	}
	writeN(t, l, 10) // rotates into new segments
	for i := range 10 {
		select {
		case n := <-ch:
			if n != fmt.Sprintf("Op%d", i) {
				t.Fatalf("followed %s, want Op%d", n, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("follow did not deliver")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkLog_Write measures one record's write: encode, hash, write(2).
func BenchmarkLog_Write(b *testing.B) {
	l, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := rec("GetSecretValue")
	r.RequestParameters = []byte(`{"secretId":"db/password","versionStage":"AWSCURRENT"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Write(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A directory moved away under an open log: Ready notices (the open file
// would swallow records), and mends once the directory is back.
func TestLog_ReadyNoticesMovedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	writeN(t, l, 2)
	os.Rename(dir, dir+".away")
	os.WriteFile(dir, []byte("x"), 0o600)
	if err := l.Ready(); err == nil {
		t.Fatal("Ready with the directory replaced by a file")
	}
	if err := l.Write(rec("x")); err == nil {
		t.Fatal("Write while broken")
	}
	os.Remove(dir)
	os.Rename(dir+".away", dir)
	if err := l.Ready(); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, 1)
	if rep := mustVerify(t, dir); rep.Records != 3 {
		t.Fatalf("%+v", rep)
	}
}
