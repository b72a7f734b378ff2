package replication

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
)

// The receiver: every server of a replica region accepts shipments on
// its cluster port; a follower relays one to its leader, which opens each
// shipped data key with the region's replication key, wraps it under the
// replica's KEK in this region and applies the lot through Raft
// (fsm.ApplyReplicated). No plaintext leaves the leader's memory.

func (s *Service) serveConn(conn net.Conn, peer cluster.RemotePeer) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * s.cfg.Timeout))
	var sh shipment
	if err := readFrame(conn, &sh); err != nil {
		s.logger.Warn("unreadable replication shipment", "remote", conn.RemoteAddr(), "region", peer.Region, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	a := s.receive(ctx, &sh, peer)
	if a.Error != "" {
		s.logger.Warn("refused a replication shipment", "source", sh.Source, "remote", conn.RemoteAddr(), "error", a.Error)
	}
	if err := writeFrame(conn, a); err != nil {
		s.logger.Warn("answering a replication shipment", "source", sh.Source, "error", err)
	}
}

func (s *Service) receive(ctx context.Context, sh *shipment, peer cluster.RemotePeer) *answer {
	self := s.r.Name()
	a := &answer{Region: self}
	fail := func(format string, args ...any) *answer {
		a.Error, a.Outcomes = fmt.Sprintf(format, args...), nil
		return a
	}
	switch {
	case sh.Target != self:
		return fail("this server is in region %s, not %s", self, sh.Target)
	case sh.Source == "" || sh.Source == self:
		return fail("a shipment must come from another region, not %q", sh.Source)
	case peer.Region != "" && sh.Forwarded && peer.Region != self:
		return fail("only a server of region %s relays shipments to its leader, not one of %s", self, peer.Region)
	case peer.Region != "" && !sh.Forwarded && peer.Region != sh.Source:
		return fail("the shipment says it is from region %s but comes from a server of region %s", sh.Source, peer.Region)
	}
	if !s.r.IsLeader() {
		if sh.Forwarded {
			return fail("this server no longer leads region %s", self)
		}
		return s.forward(ctx, sh)
	}
	if len(sh.Promoted) > 0 {
		// A replica region promoted replicas of this region's secrets.
		ack := &fsm.AckReplication{Region: sh.Source, Date: s.r.Now().UnixMilli()}
		for _, arn := range sh.Promoted {
			ack.Outcomes = append(ack.Outcomes, fsm.ReplOutcome{ARN: arn, Status: fsm.ReplPromoted})
		}
		if _, _, err := s.r.Apply(ctx, fsm.CmdAckReplication, ack); err != nil {
			return fail("region %s could not record the promotion: %v", self, err)
		}
		return a
	}
	kr, err := s.r.Keyring()
	if err != nil {
		return fail("region %s cannot open its keyring: %v", self, err)
	}
	keyID, _ := s.r.ReplicationPublicKey()
	if keyID == "" {
		return fail("region %s has no replication key yet", self)
	}
	cmd := &fsm.ApplyReplicated{Source: sh.Source, Next: sh.Next, Date: s.r.Now().UnixMilli()}
	keys := map[string]*fsm.Key{}
	for i := range sh.Secrets {
		ss := &sh.Secrets[i]
		rs, err := s.importSecret(ctx, kr, keyID, sh, ss, keys)
		var refused *refusal
		switch {
		case errors.As(err, &refused):
			a.Outcomes = append(a.Outcomes, fsm.ReplOutcome{ARN: ss.PrimaryARN, Status: fsm.ReplFailed, Message: "Replication failed: " + refused.msg})
		case err != nil:
			return fail("%v", err)
		default:
			cmd.Secrets = append(cmd.Secrets, rs)
		}
	}
	for _, arn := range sh.Drops {
		if local, err := ReplicaARN(arn, self); err == nil {
			cmd.Drops = append(cmd.Drops, local)
		}
	}
	res, _, err := s.r.Apply(ctx, fsm.CmdApplyReplicated, cmd)
	if err != nil {
		return fail("region %s could not apply the shipment: %v", self, err)
	}
	for _, o := range res.Replication {
		if o.Status == fsm.ReplFenced {
			s.logger.Warn("refused a shipment of a lower epoch", "source", sh.Source, "arn", o.ARN, "message", o.Message)
		}
	}
	a.Outcomes = append(a.Outcomes, res.Replication...)
	return a
}

// refusal is a secret the replica region refuses for good (until it
// changes): it is answered as that secret's Failed status.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// importSecret turns a shipped secret into what this region applies: its
// replica ARN and key here, each shipped data key opened and wrapped
// under that key's current KEK.
func (s *Service) importSecret(ctx context.Context, kr *crypto.Keyring, keyID string, sh *shipment, ss *shippedSecret, keys map[string]*fsm.Key) (fsm.ReplicatedSecret, error) {
	self := s.r.Name()
	arn, err := ReplicaARN(ss.PrimaryARN, sh.Source)
	if err != nil || arn != ss.PrimaryARN {
		return fsm.ReplicatedSecret{}, &refusal{fmt.Sprintf("%s is not a secret ARN of region %s.", ss.PrimaryARN, sh.Source)}
	}
	if acct := accountOf(ss.PrimaryARN); acct != s.r.AccountID() {
		return fsm.ReplicatedSecret{}, &refusal{fmt.Sprintf("the secret belongs to account %s; region %s serves account %s.", acct, self, s.r.AccountID())}
	}
	arn, _ = ReplicaARN(ss.PrimaryARN, self)
	given := ss.KmsKeyID
	if given == "" {
		given = fsm.DefaultKeyAlias
	}
	k, ok := keys[given]
	if !ok {
		k, err = s.r.ResolveKey(ctx, given)
		if err != nil {
			return fsm.ReplicatedSecret{}, &refusal{err.Error()}
		}
		keys[given] = k
	}
	kekID := k.Current().KEKID
	rs := fsm.ReplicatedSecret{ARN: arn, PrimaryARN: ss.PrimaryARN, Name: ss.Name, Description: ss.Description,
		KmsKeyID: ss.KmsKeyID, KeyID: k.ID, Tags: ss.Tags, TagsEverSet: ss.TagsEverSet,
		CreatedDate: ss.CreatedDate, LastChangedDate: ss.LastChangedDate, DeletedDate: ss.DeletedDate, DeletionDate: ss.DeletionDate,
		Type: ss.Type, ResourcePolicy: ss.ResourcePolicy, SourceIndex: ss.SourceIndex, Epoch: ss.Epoch, Force: ss.Force,
		Rotation: ss.Rotation.InRegion(self)}
	for _, r := range ss.Regions {
		rs.Regions = append(rs.Regions, fsm.Replica{Region: r.Region, KmsKeyID: r.KmsKeyID})
	}
	for _, v := range ss.Versions {
		rv := fsm.ReplicatedVersion{VersionID: v.VersionID, Stages: v.Stages, CreatedDate: v.CreatedDate, Binary: v.Binary,
			PrimaryARN: v.PrimaryARN, Placeholder: v.Placeholder, Conflict: v.Conflict}
		if v.Ciphertext != nil {
			kind := "s"
			if v.Binary {
				kind = "b"
			}
			env, digest, err := kr.ReceiveDataKey(keyID, v.DataKey, crypto.ReplicationInfo(self, ss.PrimaryARN, v.VersionID),
				v.Ciphertext, crypto.ValueAAD(v.PrimaryARN, v.VersionID), kekID, kind)
			switch {
			case errors.Is(err, crypto.ErrDecrypt):
				return fsm.ReplicatedSecret{}, &refusal{fmt.Sprintf("the data key of version %s does not open with region %s's replication key (it was sealed to another public key, or damaged).", v.VersionID, self)}
			case err != nil:
				return fsm.ReplicatedSecret{}, fmt.Errorf("version %s of %s: %w", v.VersionID, ss.PrimaryARN, err)
			}
			rv.Value, rv.Digest = &env, digest
		}
		rs.Versions = append(rs.Versions, rv)
	}
	return rs, nil
}

// forward relays a shipment to this region's leader and returns its
// answer.
func (s *Service) forward(ctx context.Context, sh *shipment) *answer {
	st := s.r.Status()
	if st.LeaderAddr == "" {
		return &answer{Region: s.r.Name(), Error: errNoLeader.Error()}
	}
	conn, err := s.r.Node().DialReplication(st.LeaderAddr, s.r.Name(), 5*time.Second)
	if err != nil {
		return &answer{Region: s.r.Name(), Error: fmt.Sprintf("relay to the leader %s: %v", st.LeaderID, err)}
	}
	defer conn.Close()
	fwd := *sh
	fwd.Forwarded = true
	a, err := exchangeRaw(ctx, conn, &fwd, s.cfg.Timeout)
	if err != nil {
		return &answer{Region: s.r.Name(), Error: fmt.Sprintf("relay to the leader %s: %v", st.LeaderID, err)}
	}
	return a
}
