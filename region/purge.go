package region

import (
	"context"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// The purge (shared/spec §3.6): when a secret's recovery window ends, the
// leader removes it for good through Raft. The leader-only loop below
// walks the state's deletion index (secrets scheduled for deletion, by the
// end of their window) and applies PurgeSecrets with the current time;
// Apply re-checks each secret against that time, so a secret restored or
// re-scheduled in the meantime stays.

const (
	defaultPurgeInterval = time.Minute
	// purgeBatch bounds the secrets one PurgeSecrets removes.
	purgeBatch = 100
)

// purgeLoop runs on the leader until leadership ends.
func (r *Region) purgeLoop(ctx context.Context) {
	interval := r.cfg.PurgeInterval
	if interval <= 0 {
		interval = defaultPurgeInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := r.PurgeExpired(ctx, r.Now()); err != nil && ctx.Err() == nil {
			r.logger.Warn("purging expired secrets failed; retrying at the next tick", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// PurgeExpired removes every secret whose recovery window ended at or
// before now and returns the ARNs removed. It is meant for the leader,
// whose state holds every committed entry; elsewhere the command is
// forwarded and Apply's re-check keeps it correct.
func (r *Region) PurgeExpired(ctx context.Context, now time.Time) ([]string, error) {
	var purged []string
	for {
		txn, _ := r.fsm.ReadTxn()
		arns, err := fsm.ExpiredSecrets(txn, now.UnixMilli(), purgeBatch)
		if err != nil || len(arns) == 0 {
			return purged, err
		}
		versions := map[string][]string{}
		for _, arn := range arns {
			if s := fsm.SecretByARN(txn, arn); s != nil {
				for _, v := range s.Versions {
					versions[arn] = append(versions[arn], v.VersionID)
				}
			}
		}
		res, _, err := r.Apply(ctx, fsm.CmdPurgeSecrets, &fsm.PurgeSecrets{ARNs: arns, Now: now.UnixMilli()})
		if err != nil {
			return purged, err
		}
		tell := r.purged.Load()
		for _, arn := range res.Purged {
			r.logger.Info("secret purged: its recovery window ended", "arn", arn)
			if tell != nil {
				(*tell)(arn, versions[arn])
			}
		}
		purged = append(purged, res.Purged...)
		if len(res.Purged) == 0 || len(arns) < purgeBatch {
			// Nothing more is due (or this state is behind the log and
			// Apply refused the lot: the next tick tries again).
			return purged, nil
		}
	}
}

// OnPurge sets the function told of each secret the purge destroys, with
// the ids of the versions it had (the server audits them as
// EndSecretVersionDelete service events).
func (r *Region) OnPurge(fn func(arn string, versionIDs []string)) { r.purged.Store(&fn) }
