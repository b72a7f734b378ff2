package region

import (
	"context"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

// The region's replication key pair (crypto/replication.go): its first
// leader that can open the keyring adds it, once, through Raft, like a
// key rotation; a region created before replication existed gets one the
// same way. Other regions seal the data keys they ship here to its
// public half.

// replicationKeyID is the keyring id of the region's replication key.
const replicationKeyID = crypto.ReplicationKeyPrefix + "1"

// replicationKeyRetry is how long the leader waits to try again while
// it cannot add the key (sealed, or the apply failed).
const replicationKeyRetry = 2 * time.Second

// ReplicationPublicKey is the region's replication public key (nil
// until its leader has made one) and the keyring id of its private half.
func (r *Region) ReplicationPublicKey() (keyID string, pub []byte) {
	txn, _ := r.fsm.ReadTxn()
	rec := fsm.RegionRecord(txn)
	if rec == nil {
		return "", nil
	}
	return rec.ReplicationKeyID, rec.ReplicationPublicKey
}

// replicationKeyLoop runs on the leader until the region has its key.
func (r *Region) replicationKeyLoop(ctx context.Context) {
	for {
		if _, pub := r.ReplicationPublicKey(); pub != nil {
			return
		}
		err := r.addKEK(ctx, func(txn *memdb.Txn) (string, error) {
			if rec := fsm.RegionRecord(txn); rec != nil && rec.ReplicationKeyID != "" {
				return "", errHasReplicationKey
			}
			return replicationKeyID, nil
		}, func(grown *crypto.Keyring, kekID string, sealed []byte, gen uint64) (fsm.CommandType, any, error) {
			pub, err := grown.ReplicationPublicKey(kekID)
			if err != nil {
				return 0, nil, err
			}
			return fsm.CmdInitReplicationKey, &fsm.InitReplicationKey{PrevGen: gen, SealedKeyring: sealed, KeyID: kekID, PublicKey: pub}, nil
		})
		switch {
		case err == nil:
			_, pub := r.ReplicationPublicKey()
			r.logger.Info("replication key created", "fingerprint", crypto.KeyFingerprint(pub))
			return
		case err == errHasReplicationKey:
			return
		case ctx.Err() == nil && !r.Sealed():
			r.logger.Warn("could not create the region's replication key; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(replicationKeyRetry):
		}
	}
}

var errHasReplicationKey = apierr.New(apierr.InvalidRequest, "the region already has a replication key")
