// Package fsm is Coffer's replicated state machine: the go-memdb state of a
// region (secrets, versions, labels, tags, access keys, the sealed keyring),
// the numbered commands of the Raft log (one command table, command.go), a
// deterministic Apply, Snapshot/Restore, and the change feed
// (query_changes.go).
//
// Contract (as hashicorp/raft's FSM): Apply is deterministic, does no I/O
// and returns either a *Result or an *apierr.Error; it never panics on a bad
// command. The one exception is deliberate: an entry whose command type
// this binary does not know and that is not ignorable stops the node (see
// Apply). Apply and Snapshot are called from raft's FSM goroutine; Persist
// runs concurrently with later Applys, on a read transaction taken in
// Snapshot. Restore replaces the whole state.
package fsm

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Result is what a successful write returns; which fields are set depends
// on the command.
type Result struct {
	ARN           string
	Name          string
	VersionID     string
	VersionStages []string
	DeletionDate  int64
	// Purged lists the secrets a PurgeSecrets removed.
	Purged []string
	// Count is how many items a batch command applied (RewrapKeys).
	Count int
	// Replication is what became of each secret of an ApplyReplicated.
	Replication []ReplOutcome `codec:",omitempty"`
}

// FSM implements raft.FSM and raft.ConfigurationStore.
type FSM struct {
	logger hclog.Logger
	db     atomic.Pointer[memdb.MemDB]

	// mu guards applied and waitCh. waitCh is closed and replaced each time
	// the applied index moves, waking WaitApplied callers.
	mu      sync.Mutex
	applied uint64
	waitCh  chan struct{}

	// identities counts the committed changes to users, groups and
	// managed policies (and restores), raised after the change is
	// visible: a reader that sees the same count before and after
	// reading them may keep what it derived (IdentityGeneration).
	identities atomic.Uint64
}

// IdentityGeneration counts the changes to the state authorization reads
// (users, their groups, managed policies). Read it before reading that
// state: what is derived from the state may be kept as long as the count
// does not move, since it moves only after a change is visible.
func (f *FSM) IdentityGeneration() uint64 { return f.identities.Load() }

// changedIdentities raises IdentityGeneration if any of logs changed
// identities; called after their transaction committed.
func (f *FSM) changedIdentities(logs ...*raft.Log) {
	for _, l := range logs {
		if l.Type == raft.LogCommand && len(l.Data) > 0 && changesIdentities(CommandType(l.Data[0])) {
			f.identities.Add(1)
			return
		}
	}
}

var (
	_ raft.BatchingFSM        = (*FSM)(nil)
	_ raft.ConfigurationStore = (*FSM)(nil)
)

// New returns an empty state machine.
func New(logger hclog.Logger) *FSM {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &FSM{logger: logger, waitCh: make(chan struct{})}
	f.db.Store(newDB())
	return f
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(err) // the schema is static; this is a programming error
	}
	return db
}

// Apply applies one committed command.
//
// A command type this binary does not know (CommandType.Known) is the log
// of a newer binary. With IgnorableFlag set it is skipped: logged, the
// applied index advances, the answer is an empty *Result. Without it Apply
// panics, on purpose and outside the recover that guards the commands
// (Consul's rule): applying the entries after it would let this node's
// state diverge from nodes that know it, so the node stops at that entry,
// and stops there again after every restart, until it runs a binary that
// knows the type. Type 0 and an empty entry are not "unknown": no binary
// ever writes them, every binary refuses them alike, so they are refused
// as undecodable like a body that does not decode.
func (f *FSM) Apply(l *raft.Log) any {
	if len(l.Data) > 0 {
		if t := CommandType(l.Data[0]); t != 0 && !t.Known() {
			return f.applyUnknown(l.Index, t)
		}
	}
	db := f.db.Load()
	txn := db.Txn(true)
	resp := f.applyCommand(txn, l)
	if _, failed := resp.(*apierr.Error); failed {
		// Nothing half-applied: drop the command's changes, keep the index.
		txn.Abort()
		txn = db.Txn(true)
	}
	setIndex(txn, l.Index)
	txn.Commit()
	f.changedIdentities(l)
	f.setApplied(l.Index)
	return resp
}

// ApplyBatch applies committed entries in one memdb transaction, which is
// what raft hands over when entries commit together (a busy leader's
// group, a follower catching up, a restarted node replaying its log).
// One transaction per batch rather than per entry copies each radix path
// once per batch, not once per entry. The outcome is the one Apply gives
// entry by entry: if any command of the batch is refused, the batch's
// transaction is dropped and the entries are applied again one at a time,
// so the refused one leaves nothing behind and the others stay (commands
// are deterministic, so the second pass answers as the first). An entry of
// an unknown command type is also left to Apply, one at a time, so the node
// applies everything before it and stops at it.
//
// raft sends LogCommand and LogConfiguration entries here (and never calls
// StoreConfiguration while the FSM batches): a configuration entry only
// moves the applied index, as StoreConfiguration does.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resps := make([]any, len(logs))
	if len(logs) == 0 {
		return resps
	}
	for _, l := range logs {
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			if t := CommandType(l.Data[0]); t != 0 && !t.Known() {
				return f.applyEach(logs, resps)
			}
		}
	}
	txn := f.db.Load().Txn(true)
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		resps[i] = f.applyCommand(txn, l)
		if _, failed := resps[i].(*apierr.Error); failed {
			txn.Abort()
			return f.applyEach(logs, resps)
		}
	}
	last := logs[len(logs)-1].Index
	setIndex(txn, last)
	txn.Commit()
	f.changedIdentities(logs...)
	f.setApplied(last)
	return resps
}

// applyEach applies a batch entry by entry, as raft does for an FSM that
// does not batch.
func (f *FSM) applyEach(logs []*raft.Log, resps []any) []any {
	for i, l := range logs {
		switch l.Type {
		case raft.LogCommand:
			resps[i] = f.Apply(l)
		case raft.LogConfiguration:
			f.StoreConfiguration(l.Index, raft.Configuration{})
			resps[i] = nil
		}
	}
	return resps
}

// applyUnknown skips an ignorable unknown command or stops the node. It
// panics before any write transaction is open, so the state, the applied
// index and the memdb writer lock are as they were.
func (f *FSM) applyUnknown(index uint64, t CommandType) any {
	if !t.Ignorable() {
		f.logger.Error("log entry of an unknown command type: this binary is older than the log; stopping rather than diverging (upgrade this node)",
			"index", index, "type", uint8(t))
		panic(fmt.Sprintf("fsm: log entry %d has command type %d, which this binary does not know and which is not ignorable: upgrade this node", index, uint8(t)))
	}
	f.logger.Warn("skipped a log entry of an unknown ignorable command type", "index", index, "type", uint8(t))
	txn := f.db.Load().Txn(true)
	setIndex(txn, index)
	txn.Commit()
	f.setApplied(index)
	return &Result{}
}

func (f *FSM) applyCommand(txn *memdb.Txn, l *raft.Log) (resp any) {
	defer func() {
		if r := recover(); r != nil {
			f.logger.Error("apply panicked; command refused", "index", l.Index, "panic", r)
			resp = apierr.New(apierr.InternalServiceError, "the command could not be applied")
		}
	}()
	t, cmd, err := Decode(l.Data)
	if err != nil {
		f.logger.Error("undecodable command refused", "index", l.Index, "error", err)
		return apierr.Newf(apierr.InternalServiceError, "undecodable command: %v", err)
	}
	return commands[t].apply(txn, l.Index, cmd)
}

// StoreConfiguration records the index of a committed configuration entry,
// so the FSM's applied index follows every entry a read index can name.
func (f *FSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	txn := f.db.Load().Txn(true)
	setIndex(txn, index)
	txn.Commit()
	f.setApplied(index)
}

func setIndex(txn *memdb.Txn, index uint64) { setMeta(txn, metaApplied, index) }

func setMeta(txn *memdb.Txn, id string, index uint64) {
	if err := txn.Insert(tableMeta, &meta{ID: id, Index: index}); err != nil {
		panic(err) // schema mismatch: programming error
	}
}

// getMeta returns a meta row's value; 0 when it is not set.
func getMeta(txn *memdb.Txn, id string) uint64 {
	raw, err := txn.First(tableMeta, "id", id)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*meta).Index
}

func (f *FSM) setApplied(index uint64) {
	f.mu.Lock()
	f.applied = index
	close(f.waitCh)
	f.waitCh = make(chan struct{})
	f.mu.Unlock()
}

// AppliedIndex is the index of the last entry the state reflects.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied blocks until the state reflects index, or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		if f.applied >= index {
			f.mu.Unlock()
			return nil
		}
		ch := f.waitCh
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReadTxn returns a read transaction on the current state and the index it
// reflects. The transaction is a consistent snapshot; it never blocks Apply.
func (f *FSM) ReadTxn() (*memdb.Txn, uint64) {
	txn := f.db.Load().Txn(false)
	return txn, txnIndex(txn)
}

func txnIndex(txn *memdb.Txn) uint64 { return getMeta(txn, metaApplied) }

// Snapshot captures the state for raft. Persist streams it out later while
// Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	txn, index := f.ReadTxn()
	return &snapshot{txn: txn, index: index}, nil
}

// Restore replaces the state with a snapshot written by Persist.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	db := newDB()
	index, err := readSnapshot(rc, db)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// An operator's restore (raft.Restore) brings back a state taken at an
	// index older than the one this node has applied, and Raft files it
	// under a newer index of its own. The applied index must not move
	// back: reads wait for it to reach a read index, so a read index this
	// node had already passed would wait for entries that are never
	// coming, and answers' X-Coffer-Index would go backwards. So keep the
	// higher index; the next entry (the leader's no-op) moves it on.
	if cur := f.AppliedIndex(); cur > index {
		txn := db.Txn(true)
		setIndex(txn, cur)
		txn.Commit()
		f.logger.Info("restored a snapshot older than the applied index; keeping the index", "snapshot_index", index, "applied", cur)
		index = cur
	}
	f.db.Store(db)
	f.identities.Add(1)
	f.setApplied(index)
	f.logger.Info("state restored from snapshot", "index", index)
	return nil
}
