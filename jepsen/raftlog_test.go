package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/jepsen/check"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

const testARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reg-1-AbCdEf"

// writeRaftDB writes logs to <dataDir>/raft/raft.db with the options
// `coffer server` opens it with (cluster.Node.startRaft), then deletes
// the entries below from (a snapshot's compaction).
func writeRaftDB(t *testing.T, dataDir string, logs []*raft.Log, from uint64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dataDir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: raftDBPath(dataDir),
		BoltOptions: &bolt.Options{NoFreelistSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if from > 1 {
		if err := store.DeleteRange(1, from-1); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
}

func encode(t *testing.T, ct fsm.CommandType, cmd any) []byte {
	t.Helper()
	b, err := fsm.Encode(ct, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDumpRaftLogs(t *testing.T) {
	// A value that would be a leak if it reached the dump in any form:
	// here it stands in for the ciphertext and the wrapped data key.
	leak := []byte("jepsen/raftlog-test/not-in-the-dump")
	env := crypto.Envelope{KEKID: "kek-1", WrappedKey: leak, Ciphertext: leak}
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "127.0.0.1:1"}}})
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: conf},
		{Index: 2, Term: 2, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: encode(t, fsm.CmdNoop, &fsm.Noop{Term: 2})},
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: encode(t, fsm.CmdCreateSecret, &fsm.CreateSecret{
			ARN: testARN, Name: "reg-1", Version: &fsm.NewVersion{VersionID: "tok-create-00000000000000000000000", Value: env, Digest: leak}})},
		{Index: 5, Term: 3, Type: raft.LogCommand, Data: encode(t, fsm.CmdPutSecretValue, &fsm.PutSecretValue{
			ARN: testARN, Version: fsm.NewVersion{VersionID: "tok-put-000000000000000000000000000", Value: env, Digest: leak}})},
		{Index: 6, Term: 3, Type: raft.LogCommand, Data: []byte{200, 1, 2}}, // no such command
		{Index: 7, Term: 3, Type: raft.LogBarrier},
	}
	run := t.TempDir()
	n1, n2 := filepath.Join(run, "nodes", "n1", "data"), filepath.Join(run, "nodes", "n2", "data")
	writeRaftDB(t, n1, logs, 1)
	writeRaftDB(t, n2, logs, 3) // compacted: 3-7
	before, err := os.ReadFile(raftDBPath(n1))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*node{{id: "n1", dataDir: n1}, {id: "n2", dataDir: n2}, {id: "n3", dataDir: filepath.Join(run, "nodes", "n3", "data")}}

	err = dumpRaftLogs(run, nodes)
	if err == nil || !strings.Contains(err.Error(), "n3: ") {
		t.Fatalf("want an error for n3 (no raft.db), got %v", err)
	}
	if _, err := os.Stat(raftDBPath(nodes[2].dataDir)); !os.IsNotExist(err) {
		t.Fatalf("the dump created n3's raft.db: %v", err)
	}
	if after, _ := os.ReadFile(raftDBPath(n1)); !bytes.Equal(before, after) {
		t.Fatal("the dump changed n1's raft.db")
	}
	names, _ := filepath.Glob(filepath.Join(run, "raftlog", "*"))
	if len(names) != 2 {
		t.Fatalf("raftlog/ holds %v, want n1.jsonl and n2.jsonl", names)
	}

	raw, err := os.ReadFile(filepath.Join(run, "raftlog", "n1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{string(leak), base64.StdEncoding.EncodeToString(leak), hex.EncodeToString(leak)} {
		if strings.Contains(string(raw), bad) {
			t.Fatalf("the dump contains %q:\n%s", bad, raw)
		}
	}
	es, err := check.ReadJSONL[check.RaftEntry](filepath.Join(run, "raftlog", "n1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != len(logs) {
		t.Fatalf("%d entries, want %d", len(es), len(logs))
	}
	hash := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	want := []check.RaftEntry{
		{Index: 1, Term: 1, Type: "LogConfiguration", SHA256: hash(conf)},
		{Index: 2, Term: 2, Type: "LogNoop", SHA256: hash(nil)},
		{Index: 3, Term: 2, Type: "LogCommand", SHA256: hash(logs[2].Data), Cmd: "Noop"},
		{Index: 4, Term: 2, Type: "LogCommand", SHA256: hash(logs[3].Data), Cmd: "CreateSecret",
			Token: "tok-create-00000000000000000000000", Name: "reg-1", ARN: testARN},
		{Index: 5, Term: 3, Type: "LogCommand", SHA256: hash(logs[4].Data), Cmd: "PutSecretValue",
			Token: "tok-put-000000000000000000000000000", ARN: testARN},
		{Index: 7, Term: 3, Type: "LogBarrier", SHA256: hash(nil)},
	}
	for i, w := range want {
		j := i
		if w.Index == 7 {
			j = 6
		}
		if es[j] != w {
			t.Errorf("entry %d:\n got %+v\nwant %+v", j, es[j], w)
		}
	}
	if e := es[5]; e.Index != 6 || e.Cmd != "CommandType(200)" || e.CmdErr == "" || e.Token != "" {
		t.Errorf("undecodable entry: %+v", e)
	}

	// The saved run re-checks: both logs agree, and the acknowledged
	// create and put are at their indexes.
	ops := []check.Op{
		{ID: 1, Kind: check.KindPut, Secret: "reg-1", Token: "tok-create-00000000000000000000000", Status: check.StatusOK, Index: "4"},
		{ID: 2, Kind: check.KindPut, Secret: "reg-1", Token: "tok-put-000000000000000000000000000", Status: check.StatusOK, Index: "5"},
	}
	fh, err := os.Create(filepath.Join(run, "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	w := check.NewWriter(fh)
	for _, o := range ops {
		w.Write(o)
	}
	w.Flush()
	fh.Close()
	f, err := check.Load(run)
	if err != nil {
		t.Fatal(err)
	}
	r := check.RaftLogAgreement(f)
	if r.Verdict != check.Valid || !strings.HasPrefix(r.Detail, "2 logs, indexes 1-7, 5 on 2+ logs; 2 of 2 acked writes found") {
		t.Fatalf("%s %s %v", r.Verdict, r.Detail, r.Errors)
	}
}
