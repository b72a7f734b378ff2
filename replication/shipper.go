package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// The shipper: leader work of the primary region. One goroutine per
// replica region follows the change feed after the index the replica
// region last acknowledged (fsm.ReplTarget.Acked, Raft state, so a new
// leader resumes there), ships the state of every changed secret
// replicated to that region and the pending drops, and records the
// replica's answer through Raft (AckReplication). Shipping is at least
// once; the replica applies a secret's state only if it is newer than
// what it holds (fsm.ApplyReplicated), so applying is exactly once and in
// commit order per secret.

// ship is the leader work: it keeps one shipper per replica region
// running until leadership ends.
func (s *Service) ship(ctx context.Context) {
	running := map[string]chan struct{}{}
	defer func() {
		for _, done := range running {
			<-done
		}
	}()
	for {
		txn, index := s.r.FSM().ReadTxn()
		for _, t := range fsm.ReplTargets(txn) {
			if done, ok := running[t.Region]; ok {
				select {
				case <-done:
				default:
					continue // still running
				}
			}
			done := make(chan struct{})
			running[t.Region] = done
			go func(region string) {
				defer close(done)
				s.shipTo(ctx, region)
			}(t.Region)
		}
		wait, cancel := context.WithTimeout(ctx, time.Second)
		s.r.FSM().WaitApplied(wait, index+1)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// shipTo ships to one replica region until ctx ends or the region has no
// ReplTarget any more.
func (s *Service) shipTo(ctx context.Context, target string) {
	logger := s.logger.With("replica_region", target)
	logger.Info("shipping to replica region")
	defer logger.Info("stopped shipping to replica region")
	var cursor uint64 // progress past Acked that needed no shipment
	skipped := false  // changes passed over since Acked was last recorded
	backoff := 100 * time.Millisecond
	var lastErr string
	var lastErrAt time.Time
	for ctx.Err() == nil {
		txn, index := s.r.FSM().ReadTxn()
		asOf := s.r.Now().UnixMilli()
		t := fsm.ReplTargetOf(txn, target)
		if t == nil {
			return
		}
		cursor = max(cursor, t.Acked)
		var secrets []*fsm.Secret
		full := false
		next := index
		more := false
		page, err := fsm.ChangesAfter(txn, cursor, s.cfg.Batch)
		switch {
		case errors.Is(err, fsm.ErrCompacted):
			// The feed no longer reaches back to the cursor: send every
			// secret replicated to the region, with every value.
			logger.Warn("the change feed was compacted past the replica region's cursor; resending every replicated secret", "cursor", cursor)
			secrets, full = fsm.SecretsReplicatedTo(txn, target), true
		case err != nil:
			logger.Error("reading the change feed", "error", err)
			return
		default:
			next, more = page.Next, page.More
			for _, c := range page.Items {
				if c.Secret != nil && c.Secret.Replica(target) != nil {
					secrets = append(secrets, c.Secret)
				} else {
					skipped = true
				}
			}
		}
		var drops []*fsm.ReplDrop
		for _, d := range fsm.ReplDrops(txn, target) {
			if d.Index <= next {
				drops = append(drops, d)
			}
		}
		if len(secrets) == 0 && len(drops) == 0 {
			cursor = next
			if skipped && next > t.Acked {
				// Record progress over changes the region needs none of,
				// so a new leader does not read them again.
				if s.ack(ctx, &fsm.AckReplication{Region: target, Index: next, AsOf: asOf}) == nil {
					skipped = false
				}
			}
			if !more {
				wait, cancel := context.WithTimeout(ctx, 5*time.Second)
				s.r.FSM().WaitApplied(wait, next+1)
				cancel()
			}
			continue
		}
		if err := s.send(ctx, target, cursor, full, secrets, drops, next, asOf); err != nil {
			if ctx.Err() != nil {
				return
			}
			if err.Error() != lastErr || time.Since(lastErrAt) > time.Minute {
				logger.Warn("shipping to replica region failed; retrying", "error", err, "backoff", backoff)
				s.ack(ctx, &fsm.AckReplication{Region: target, Error: err.Error()})
				lastErr, lastErrAt = err.Error(), time.Now()
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if lastErr != "" {
			logger.Info("shipping to replica region works again")
		}
		lastErr, backoff, cursor, skipped = "", 100*time.Millisecond, next, false
	}
}

// send ships secrets and drops to target in shipments of at most Batch
// secrets and records the answer (AckReplication at next).
func (s *Service) send(ctx context.Context, target string, cursor uint64, full bool, secrets []*fsm.Secret, drops []*fsm.ReplDrop, next uint64, asOf int64) error {
	kr, err := s.r.Keyring()
	if err != nil {
		return fmt.Errorf("this region cannot open its keyring: %w", err)
	}
	pub, err := s.publicKey(target)
	if err != nil {
		return err
	}
	byARN := map[string]*fsm.Secret{}
	var outcomes []fsm.ReplOutcome
	for start := 0; start == 0 || start < len(secrets); start += s.cfg.Batch {
		chunk := secrets[start:min(start+s.cfg.Batch, len(secrets))]
		sh := &shipment{Source: s.r.Name(), Target: target}
		for _, sec := range chunk {
			byARN[sec.ARN] = sec
			ss, err := s.export(kr, pub, target, sec, cursor, full)
			if err != nil {
				return err
			}
			sh.Secrets = append(sh.Secrets, ss)
		}
		if start == 0 {
			// The first shipment carries the drops: a secret re-created
			// under a dropped replica's name needs the name free.
			for _, d := range drops {
				sh.Drops = append(sh.Drops, d.ARN)
			}
		}
		if start+s.cfg.Batch >= len(secrets) {
			sh.Next = next // the last one carries the cursor
		}
		a, err := s.roundTrip(ctx, sh)
		if err != nil {
			return err
		}
		// The replica lacks values the shipment left out (it failed to
		// apply the secret before, or lost it): send those in full.
		var again []shippedSecret
		for _, o := range a.Outcomes {
			if o.Status == fsm.ReplNeedValues {
				ss, err := s.export(kr, pub, target, byARN[o.ARN], cursor, true)
				if err != nil {
					return err
				}
				again = append(again, ss)
			} else {
				outcomes = append(outcomes, o)
			}
		}
		if len(again) > 0 {
			a, err := s.roundTrip(ctx, &shipment{Source: s.r.Name(), Target: target, Secrets: again})
			if err != nil {
				return err
			}
			for _, o := range a.Outcomes {
				if o.Status == fsm.ReplNeedValues {
					return fmt.Errorf("region %s still lacks values of %s after they were sent", target, o.ARN)
				}
				outcomes = append(outcomes, o)
			}
		}
	}
	// Record what changes the primary's view: refusals, promotions, and
	// secrets that applied after an earlier refusal.
	ack := &fsm.AckReplication{Region: target, Index: next, AsOf: asOf}
	for _, o := range outcomes {
		sec := byARN[o.ARN]
		switch {
		case o.Status == fsm.ReplFailed || o.Status == fsm.ReplPromoted:
			ack.Outcomes = append(ack.Outcomes, o)
		case o.Status == fsm.ReplFenced:
			s.logger.Warn("a replica region holds the secret at a higher epoch: this region was superseded by a promotion and turns the secret into a replica",
				"replica_region", target, "arn", o.ARN, "epoch", o.Epoch, "primary_region", o.Primary)
			ack.Outcomes = append(ack.Outcomes, o)
		case o.Status == fsm.ReplApplied && sec != nil && sec.Replica(target) != nil && sec.Replica(target).Failure != "":
			ack.Outcomes = append(ack.Outcomes, o)
		}
	}
	return s.ack(ctx, ack)
}

func (s *Service) ack(ctx context.Context, c *fsm.AckReplication) error {
	c.Date = s.r.Now().UnixMilli()
	_, _, err := s.r.Apply(ctx, fsm.CmdAckReplication, c)
	return err
}

// export is a secret's state as shipped to target: every version's
// labels and dates, and the value and re-wrapped data key of each version
// the replica may not have (set after cursor, or all when full or when
// the region was added after cursor).
func (s *Service) export(kr *crypto.Keyring, pub []byte, target string, sec *fsm.Secret, cursor uint64, full bool) (shippedSecret, error) {
	rep := sec.Replica(target)
	if rep == nil {
		return shippedSecret{}, fmt.Errorf("secret %s is not replicated to %s", sec.ARN, target)
	}
	all := full || rep.AddedIndex > cursor
	ss := shippedSecret{PrimaryARN: sec.ARN, Name: sec.Name, Description: sec.Description, KmsKeyID: rep.KmsKeyID,
		Tags: sec.Tags, TagsEverSet: sec.TagsEverSet, CreatedDate: sec.CreatedDate, LastChangedDate: sec.LastChangedDate,
		DeletedDate: sec.DeletedDate, DeletionDate: sec.DeletionDate, Type: sec.Type, ResourcePolicy: sec.ResourcePolicy,
		SourceIndex: sec.ModifyIndex, Epoch: sec.Epoch, Force: rep.Force,
		Regions:  []shippedRegion{{Region: s.r.Name(), KmsKeyID: sec.KmsKeyID}},
		Rotation: sec.Rotation.Shipped()}
	for _, r := range sec.Replicas {
		ss.Regions = append(ss.Regions, shippedRegion{Region: r.Region, KmsKeyID: r.KmsKeyID})
	}
	for _, v := range sec.Versions {
		sv := shippedVersion{VersionID: v.VersionID, Stages: v.Stages, CreatedDate: v.CreatedDate, Binary: v.Binary,
			PrimaryARN: v.AADARN(sec), Placeholder: !v.HasValue(), Conflict: v.Conflict}
		if v.HasValue() && (all || v.Index == 0 || v.Index > cursor) {
			aad := crypto.ValueAAD(sv.PrimaryARN, v.VersionID)
			dk, err := kr.ShipDataKey(v.Value, aad, pub, crypto.ReplicationInfo(target, sec.ARN, v.VersionID))
			if err != nil {
				return shippedSecret{}, fmt.Errorf("re-wrap the data key of %s version %s for %s: %w", sec.ARN, v.VersionID, target, err)
			}
			sv.Ciphertext, sv.DataKey = v.Value.Ciphertext, dk
		}
		ss.Versions = append(ss.Versions, sv)
	}
	return ss, nil
}
