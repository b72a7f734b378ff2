package region

import (
	"bytes"
	"context"
	"fmt"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// RestoreSnapshot replaces the region's state, on every node, with state:
// the state stream of a snapshot file (`coffer operator snapshot
// restore`). The leader checks it before it changes anything
// (checkSnapshot); a snapshot that is damaged, of another region or
// account, or whose keyring this region's root key does not open is
// refused with nothing changed. It returns the index after which every
// node serves the restored state.
func (r *Region) RestoreSnapshot(ctx context.Context, state []byte) (uint64, error) {
	if r.node == nil {
		// Only in-process test regions run without Raft.
		return 0, apierr.New(apierr.InvalidRequest, "a region without Raft cannot restore a snapshot")
	}
	return r.node.RestoreSnapshot(ctx, state)
}

// checkSnapshot is cluster.Config.CheckSnapshot: every record decodes, the
// state is this region's, under this account, and the root key this node
// holds opens its keyring (a node that could not open it would be sealed
// after the restore, and so would every other).
func (r *Region) checkSnapshot(state []byte) error {
	info, err := fsm.InspectSnapshot(bytes.NewReader(state))
	if err != nil {
		return apierr.Newf(apierr.InvalidParameter, "the snapshot's state is damaged (%v); nothing was restored. Check the file with `coffer operator snapshot inspect`", err)
	}
	rec := info.RegionRecord
	switch {
	case rec == nil:
		return apierr.New(apierr.InvalidParameter, "the snapshot holds no initialized region (it was saved before `coffer operator init`); nothing was restored")
	case rec.Name != r.name:
		return apierr.Newf(apierr.InvalidParameter, "the snapshot is of region %s, and this is region %s: a snapshot restores only into the region it was saved from; nothing was restored", rec.Name, r.name)
	case rec.AccountID != r.cfg.AccountID:
		return apierr.Newf(apierr.InvalidParameter, "the snapshot is of account %s, and this region serves account %s: its ARNs would not be this region's; nothing was restored", rec.AccountID, r.cfg.AccountID)
	}
	r.seal.mu.Lock()
	defer r.seal.mu.Unlock()
	if r.seal.rootKey == nil {
		return errSealed("unseal it before restoring a snapshot, which must be checked against the region's root key")
	}
	if _, err := crypto.OpenKeyring(r.seal.rootKey, rec.SealedKeyring, r.name, rec.LegacyKEKID()); err != nil {
		return apierr.New(apierr.InvalidParameter, fmt.Sprintf("this region's root key does not open the snapshot's keyring (init %s): the snapshot was saved before a rekey, or by another initialization of %s. Nothing was restored; restore it into servers started with the root key it was saved under", rec.Seal.InitID, r.name))
	}
	return nil
}
