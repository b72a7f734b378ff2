package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/raft"
)

// The FSM's share of a restart and of a snapshot, without Raft, disks or
// the network: what applying a log entry costs (a restarted node replays
// the entries after its last snapshot), and what writing and reading a
// snapshot of a state of benchSecrets secrets with a 1 KiB value each
// costs. docs/performance.md has the figures.
//
//	go test ./fsm -run '^$' -bench 'BenchmarkFSM' -benchtime 3x

const benchSecrets = 100_000

// benchLog is benchSecrets CreateSecret entries, as the log holds them.
func benchLog(b *testing.B) []*raft.Log {
	b.Helper()
	value := string(bytes.Repeat([]byte("x"), 1024))
	v := strVersion("00000000-0000-4000-8000-000000000001", value)
	logs := make([]*raft.Log, benchSecrets)
	for i := range logs {
		name := fmt.Sprintf("bench/secret-%07d", i)
		cmd := &fsm.CreateSecret{ARN: arnOf(name, "aB3dE6"), Name: name, Version: &v, Date: t0 + int64(i),
			Tags: []fsm.Tag{{Key: "team", Value: "bench"}}}
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: encode(b, fsm.CmdCreateSecret, cmd)}
	}
	return logs
}

// BenchmarkFSM_ApplyCreate reports the time per applied entry (ns/op is
// per entry) while the state grows to benchSecrets secrets.
func BenchmarkFSM_ApplyCreate(b *testing.B) {
	logs := benchLog(b)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		f := fsm.New(nil)
		b.StartTimer()
		for _, l := range logs {
			if _, failed := f.Apply(l).(error); failed {
				b.Fatalf("entry %d refused", l.Index)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(logs)), "ns/entry")
}

// BenchmarkFSM_ApplyBatchCreate is the same log in raft's batches of up
// to 64 entries (MaxAppendEntries), as a follower catching up and a
// restarted node replaying its log apply it.
func BenchmarkFSM_ApplyBatchCreate(b *testing.B) {
	logs := benchLog(b)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		f := fsm.New(nil)
		b.StartTimer()
		for start := 0; start < len(logs); start += 64 {
			for i, r := range f.ApplyBatch(logs[start:min(start+64, len(logs))]) {
				if _, failed := r.(error); failed {
					b.Fatalf("entry %d refused", start+i+1)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(logs)), "ns/entry")
}

// benchState is the state benchLog builds, for the snapshot benchmarks.
func benchState(b *testing.B) *fsm.FSM {
	f := fsm.New(nil)
	for start, logs := 0, benchLog(b); start < len(logs); start += 64 {
		f.ApplyBatch(logs[start:min(start+64, len(logs))])
	}
	return f
}

func BenchmarkFSM_SnapshotPersist(b *testing.B) {
	f := benchState(b)
	b.ResetTimer()
	var size int
	for n := 0; n < b.N; n++ {
		size = len(snapshotBytes(b, f))
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}

func BenchmarkFSM_SnapshotRestore(b *testing.B) {
	snap := snapshotBytes(b, benchState(b))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		g := fsm.New(nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
			b.Fatal(err)
		}
	}
}
