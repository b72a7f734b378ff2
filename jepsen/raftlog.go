package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/jepsen/check"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// dumpRaftLogs writes raftlog/<node-id>.jsonl under the run folder dir,
// one check.RaftEntry per entry of each node's Raft log, for the offline
// log agreement check (check.RaftLogAgreement). The nodes must be
// stopped. It dumps every node it can and returns the errors of the
// others; a node that failed leaves no file.
func dumpRaftLogs(dir string, nodes []*node) error {
	out := filepath.Join(dir, "raftlog")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, nd := range nodes {
		if _, err := dumpRaftLog(raftDBPath(nd.dataDir), filepath.Join(out, nd.id+".jsonl")); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", nd.id, err))
		}
	}
	return errors.Join(errs...)
}

// raftDBPath is where `coffer server --data-dir` keeps its Raft log
// (cluster.Node.startRaft).
func raftDBPath(dataDir string) string { return filepath.Join(dataDir, "raft", "raft.db") }

// dumpRaftLog reads the raft-boltdb store at db read-only and writes its
// entries to path; it returns how many. Values never leave: an entry is
// saved as its SHA-256, and a command as its type and, for the commands
// that write a version, the VersionId, secret name and ARN.
func dumpRaftLog(db, path string) (int, error) {
	if _, err := os.Stat(db); err != nil {
		return 0, err // bbolt would create a missing file, even read-only
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: db,
		BoltOptions: &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", db, err)
	}
	defer store.Close()
	first, err := store.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := store.LastIndex()
	if err != nil {
		return 0, err
	}
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	defer fh.Close()
	w := check.NewWriter(fh)
	n := 0
	for i := first; i <= last && last > 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // a hole: the check reports it
			}
			return n, fmt.Errorf("index %d: %w", i, err)
		}
		if err := w.Write(raftEntry(&l)); err != nil {
			return n, err
		}
		n++
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	if err := fh.Close(); err != nil {
		return n, err
	}
	return n, os.Rename(tmp, path)
}

// raftEntry describes one log entry without its data.
func raftEntry(l *raft.Log) check.RaftEntry {
	sum := sha256.Sum256(l.Data)
	e := check.RaftEntry{Index: l.Index, Term: l.Term, Type: l.Type.String(), SHA256: hex.EncodeToString(sum[:])}
	if l.Type != raft.LogCommand {
		return e
	}
	t, cmd, err := fsm.Decode(l.Data)
	if len(l.Data) > 0 {
		e.Cmd = t.String()
	}
	if err != nil {
		e.CmdErr = err.Error()
		return e
	}
	switch c := cmd.(type) {
	case *fsm.CreateSecret:
		e.Name, e.ARN = c.Name, c.ARN
		if c.Version != nil {
			e.Token = c.Version.VersionID
		}
	case *fsm.PutSecretValue:
		e.ARN, e.Token = c.ARN, c.Version.VersionID
	}
	return e
}
