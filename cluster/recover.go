package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Recovery from a lost quorum, hashicorp/raft's peers.json way (as Consul
// and Nomad do it): with the node stopped, `coffer operator raft recover`
// writes the configuration the survivors should have to raft/peers.json
// in its data directory; the next start applies it with
// raft.RecoverCluster before Raft starts, and removes the file. The
// survivors then elect a leader among themselves, with everything their
// logs hold, including entries the old quorum never committed.

// PeersFile is the recovery file's name in the node's raft directory.
const PeersFile = "peers.json"

// RecoveryPeer is one server of a recovery configuration, in raft's
// peers.json format (version 3: ids, not bare addresses).
type RecoveryPeer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

var (
	// ErrNotNodeDir means a directory holds no Raft store: not a Coffer
	// node's data directory, or one that never started.
	ErrNotNodeDir = errors.New("not a Coffer node's data directory")
	// ErrNodeRunning means a process holds the data directory's Raft
	// store open: the node must be stopped before it is recovered.
	ErrNodeRunning = errors.New("the node is running")
)

// DataDirState is what a stopped node's data directory holds, read
// without changing it.
type DataDirState struct {
	// LastIndex and LastTerm are those of the newest entry in the log or
	// the newest snapshot, whichever is later.
	LastIndex, LastTerm uint64
	// CurrentTerm is the term the node last took part in.
	CurrentTerm uint64
	// Configuration is the newest one in the log or the snapshot.
	Configuration []RecoveryPeer
}

// ReadDataDir reads a stopped node's Raft state. It opens the store
// read-only (bolt takes a shared lock, which a running node's exclusive
// lock refuses: ErrNodeRunning) and writes nothing.
func ReadDataDir(dataDir string) (DataDirState, error) {
	var st DataDirState
	dir := filepath.Join(dataDir, "raft")
	dbPath := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(dbPath); err != nil {
		return st, fmt.Errorf("%s: %w (no %s)", dataDir, ErrNotNodeDir, dbPath)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: dbPath,
		BoltOptions: &bolt.Options{ReadOnly: true, Timeout: time.Second}})
	if errors.Is(err, bolt.ErrTimeout) {
		return st, fmt.Errorf("%w: %s is locked by another process; stop the node first", ErrNodeRunning, dbPath)
	}
	if err != nil {
		return st, fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer store.Close()
	st.CurrentTerm, _ = store.GetUint64([]byte("CurrentTerm"))

	snap, err := newestSnapshot(dir)
	if err != nil {
		return st, err
	}
	first, err := store.FirstIndex()
	if err != nil {
		return st, fmt.Errorf("read %s: %w", dbPath, err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return st, fmt.Errorf("read %s: %w", dbPath, err)
	}
	if last == 0 && snap == nil {
		return st, fmt.Errorf("%s: %w (its Raft log and snapshots are empty)", dataDir, ErrNotNodeDir)
	}
	if snap != nil {
		st.LastIndex, st.LastTerm = snap.Index, snap.Term
		st.Configuration = peersOf(snap.Configuration)
	}
	if last > st.LastIndex {
		var l raft.Log
		if err := store.GetLog(last, &l); err != nil {
			return st, fmt.Errorf("read log entry %d: %w", last, err)
		}
		st.LastIndex, st.LastTerm = l.Index, l.Term
	}
	// The newest configuration entry after the snapshot wins over the
	// snapshot's; walk back from the end until one is found.
	var floor uint64
	if snap != nil {
		floor = snap.Index
	}
	for i := last; i >= first && i > floor && i > 0; i-- {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return st, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			st.Configuration = peersOf(raft.DecodeConfiguration(l.Data))
			break
		}
	}
	return st, nil
}

// newestSnapshot reads the metadata of the newest snapshot in dir (raft's
// file snapshot store layout), or nil. It reads the files directly: the
// store's constructor writes a test file, and a dry run writes nothing.
func newestSnapshot(dir string) (*raft.SnapshotMeta, error) {
	metas, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	var newest *raft.SnapshotMeta
	for _, path := range metas {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var m raft.SnapshotMeta
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("snapshot metadata %s: %w", path, err)
		}
		if newest == nil || m.Term > newest.Term || (m.Term == newest.Term && m.Index > newest.Index) {
			newest = &m
		}
	}
	return newest, nil
}

func peersOf(c raft.Configuration) []RecoveryPeer {
	var ps []RecoveryPeer
	for _, s := range c.Servers {
		ps = append(ps, RecoveryPeer{ID: string(s.ID), Address: string(s.Address), NonVoter: s.Suffrage != raft.Voter})
	}
	return ps
}

// ValidateRecoveryPeers checks a recovery configuration for node self: ids
// and addresses present and unique, addresses host:port, and self one of
// its voters (a node missing from its own configuration could never lead
// or vote, and the region would stay down).
func ValidateRecoveryPeers(self string, peers []RecoveryPeer) error {
	if len(peers) == 0 {
		return errors.New("the recovery configuration lists no server")
	}
	ids, addrs := map[string]bool{}, map[string]bool{}
	selfVotes := false
	for _, p := range peers {
		if p.ID == "" {
			return fmt.Errorf("a server with address %q has no id", p.Address)
		}
		if _, _, err := SplitHostPort(p.Address); err != nil {
			return fmt.Errorf("server %s: address %q is not host:port", p.ID, p.Address)
		}
		if ids[p.ID] {
			return fmt.Errorf("server id %s is listed twice", p.ID)
		}
		if addrs[p.Address] {
			return fmt.Errorf("address %s is listed twice", p.Address)
		}
		ids[p.ID], addrs[p.Address] = true, true
		if p.ID == self && !p.NonVoter {
			selfVotes = true
		}
	}
	if !selfVotes {
		return fmt.Errorf("node %s must be a voter of its own recovery configuration", self)
	}
	return nil
}

// WritePeersFile writes peers to the data directory's raft/peers.json,
// where the node's next start finds it. The write is atomic: a crash
// leaves the old file or the new one, never half of one.
func WritePeersFile(dataDir string, peers []RecoveryPeer) (string, error) {
	raw, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "raft", PeersFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// recoverFromPeersFile applies raft/peers.json if the operator wrote one:
// raft.RecoverCluster replays the snapshot and the log into the FSM, takes
// a snapshot whose configuration is the file's, and empties the log, so
// Raft starts with only the servers listed. The file is removed after, so
// a later restart does not recover again.
func (n *Node) recoverFromPeersFile(dir string, rc *raft.Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	path := filepath.Join(dir, PeersFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return fmt.Errorf("recovery file %s: %w", path, err)
	}
	if !slices.ContainsFunc(conf.Servers, func(s raft.Server) bool {
		return s.ID == rc.LocalID && s.Suffrage == raft.Voter
	}) {
		return fmt.Errorf("recovery file %s does not list this node (%s) as a voter", path, rc.LocalID)
	}
	n.logger.Warn("RECOVERY: found peers.json; replacing the Raft configuration (lost-quorum recovery)",
		"file", path, "servers", len(conf.Servers), "configuration", fmt.Sprint(conf.Servers))
	if err := raft.RecoverCluster(rc, n.fsm, logs, stable, snaps, n.transport, conf); err != nil {
		return fmt.Errorf("recover the Raft configuration from %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("recovered, but could not remove %s (remove it before the next start): %w", path, err)
	}
	n.logger.Warn("RECOVERY: Raft configuration replaced; peers.json removed", "servers", len(conf.Servers))
	return nil
}
