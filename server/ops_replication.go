package server

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

func init() {
	// CreateSecret is createSecret (secrets.go) with AddReplicaRegions
	// checked here.
	register("CreateSecret", createSecretOp)
	register("ReplicateSecretToRegions", replicateSecretToRegions)
	register("RemoveRegionsFromReplication", removeRegionsFromReplication)
	register("StopReplicationToReplica", stopReplicationToReplica)
}

// ReplicateSecretToRegions, RemoveRegionsFromReplication,
// StopReplicationToReplica and CreateSecret's AddReplicaRegions
// (shared/spec §4.1, §4.18-§4.20) translate to fsm commands; package
// replication ships the changes (docs/replication.md). A replica region
// must be a region of this deployment: one whose servers are in the WAN
// pool (coffer region list).

// Messages of the replication operations.

// regionPattern is the model pattern of a Region (shared/spec §2.1).
const regionPattern = `^([a-z]+-)+\d+$`

var validRegion = regexp.MustCompile(regionPattern)

type replicaRegionJSON struct {
	Region   *string `json:"Region"`
	KmsKeyID *string `json:"KmsKeyId"`
}

// validateRegionName checks one Region member's model constraints.
func validateRegionName(v *validator, region *string, path string) {
	v.length(region, path, 1, 128)
	if region != nil && *region != "" && !validRegion.MatchString(*region) {
		v.add(region, path, "Member must satisfy regular expression pattern: "+regionPattern)
	}
}

// checkReplicaRegions applies the stateless rules to a list of regions
// that met the model constraints: not this region, none twice.
func checkReplicaRegions(r Region, regions []string, member string) error {
	seen := map[string]bool{}
	for _, name := range regions {
		if name == r.Name() {
			return apierr.New(apierr.InvalidParameter, apierr.MsgInvalidReplicaRegion)
		}
		if seen[name] {
			return apierr.Newf(apierr.InvalidParameter, "Region %s appears more than once in %s.", name, member)
		}
		seen[name] = true
	}
	return nil
}

// validateAddReplicaRegions checks AddReplicaRegions (of
// ReplicateSecretToRegions and CreateSecret): model constraints into v,
// then, when v has none, the stateless rules.
func validateAddReplicaRegions(r Region, v *validator, list []replicaRegionJSON) error {
	if list != nil && len(list) == 0 {
		n := "0 items"
		v.add(&n, "addReplicaRegions", "Member must have length greater than or equal to 1")
	}
	for i, rr := range list {
		path := "addReplicaRegions." + itoa(i+1) + ".member"
		if v.required(rr.Region, path+".region") {
			validateRegionName(v, rr.Region, path+".region")
		}
		v.length(rr.KmsKeyID, path+".kmsKeyId", 0, 2048)
	}
	if err := v.err(); err != nil {
		return err
	}
	names := make([]string, 0, len(list))
	for _, rr := range list {
		names = append(names, *rr.Region)
	}
	return checkReplicaRegions(r, names, "AddReplicaRegions")
}

func replicateSecretToRegions(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID                    *string             `json:"SecretId"`
		AddReplicaRegions           []replicaRegionJSON `json:"AddReplicaRegions"`
		ForceOverwriteReplicaSecret *bool               `json:"ForceOverwriteReplicaSecret"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if in.AddReplicaRegions == nil {
		v.add(nil, "addReplicaRegions", "Member must not be null")
	}
	if err := validateAddReplicaRegions(r, &v, in.AddReplicaRegions); err != nil {
		return nil, err
	}
	// Resolve, then the state rules (a replica, scheduled for deletion),
	// then the regions; regions the secret has already are no change.
	s, err := readSecret(ctx, r, req, *in.SecretID)
	if err != nil {
		return nil, err
	}
	if s.IsReplica() {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgReplicaWrite)
	}
	add, err := replicaList(r, req, in.AddReplicaRegions, in.ForceOverwriteReplicaSecret)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(add, func(rep fsm.Replica) bool { return s.Replica(rep.Region) == nil }) {
		return replicationAnswer(ctx, r, req, s.ARN)
	}
	res, err := writeSecret(ctx, r, req, s.ARN, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		return fsm.CmdSetReplication, &fsm.SetReplication{ARN: s.ARN, Add: add, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return replicationAnswer(ctx, r, req, res.ARN)
}

// replicaList turns AddReplicaRegions that passed validation into
// replicas, refusing a region this deployment does not have.
func replicaList(r Region, req *request, list []replicaRegionJSON, force *bool) ([]fsm.Replica, error) {
	out := make([]fsm.Replica, 0, len(list))
	for _, rr := range list {
		if !req.knownRegion(*rr.Region) {
			return nil, apierr.Newf(apierr.InvalidParameter,
				"Region %s is not a region of this Coffer deployment: none of its servers is in the WAN pool (see coffer region list).", *rr.Region)
		}
		out = append(out, fsm.Replica{Region: *rr.Region, KmsKeyID: deref(rr.KmsKeyID), Force: force != nil && *force})
	}
	return out, nil
}

// replicationAnswer is the answer of ReplicateSecretToRegions and
// RemoveRegionsFromReplication: the primary's ARN and every replica's
// status, as of the write.
func replicationAnswer(ctx context.Context, r Region, req *request, arn string) (any, error) {
	txn, err := readAfterWrite(ctx, r, req)
	if err != nil {
		return nil, err
	}
	out := struct {
		ARN               string                 `json:"ARN"`
		ReplicationStatus []replicationStatusOut `json:"ReplicationStatus"`
	}{ARN: arn, ReplicationStatus: []replicationStatusOut{}}
	if s := fsm.SecretByARN(txn, arn); s != nil {
		out.ReplicationStatus = replicationStatus(txn, s)
	}
	return out, nil
}

// replicationStatusOut is AWS's ReplicationStatusType.
type replicationStatusOut struct {
	Region        string `json:"Region"`
	KmsKeyID      string `json:"KmsKeyId"`
	Status        string `json:"Status"`
	StatusMessage string `json:"StatusMessage,omitempty"`
}

// Replica statuses, as AWS names them.
const (
	replInSync     = "InSync"
	replInProgress = "InProgress"
	replFailed     = "Failed"
)

// replicationStatus is a primary secret's replicas as DescribeSecret shows
// them: Failed when the replica region refused the secret or cannot be
// reached while changes wait, InSync once it acknowledged the secret's
// last change, else InProgress, with how far behind it is.
func replicationStatus(txn *memdb.Txn, s *fsm.Secret) []replicationStatusOut {
	out := []replicationStatusOut{}
	for _, rep := range s.Replicas {
		o := replicationStatusOut{Region: rep.Region, KmsKeyID: rep.KmsKeyID}
		if o.KmsKeyID == "" {
			o.KmsKeyID = fsm.DefaultKeyAlias
		}
		t := fsm.ReplTargetOf(txn, rep.Region)
		switch {
		case rep.Failure != "":
			o.Status, o.StatusMessage = replFailed, rep.Failure
		case t != nil && t.Acked >= s.ModifyIndex:
			o.Status, o.StatusMessage = replInSync, "Replication succeeded"
		case t != nil && t.Error != "":
			o.Status = replFailed
			o.StatusMessage = fmt.Sprintf("Replication failed: region %s cannot be reached since %s: %s. Changes wait and are shipped when it can.",
				rep.Region, time.UnixMilli(t.ErrorSince).UTC().Format(time.RFC3339), t.Error)
		default:
			o.Status = replInProgress
			o.StatusMessage = "Replication in progress"
			if t != nil && t.AckedDate != 0 {
				o.StatusMessage += fmt.Sprintf(": the replica region last acknowledged changes at %s",
					time.UnixMilli(t.AckedDate).UTC().Format(time.RFC3339))
			}
		}
		out = append(out, o)
	}
	return out
}

func removeRegionsFromReplication(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID             *string  `json:"SecretId"`
		RemoveReplicaRegions []string `json:"RemoveReplicaRegions"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	switch {
	case in.RemoveReplicaRegions == nil:
		v.add(nil, "removeReplicaRegions", "Member must not be null")
	case len(in.RemoveReplicaRegions) == 0:
		n := "0 items"
		v.add(&n, "removeReplicaRegions", "Member must have length greater than or equal to 1")
	}
	for i := range in.RemoveReplicaRegions {
		validateRegionName(&v, &in.RemoveReplicaRegions[i], "removeReplicaRegions."+itoa(i+1)+".member")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if err := checkReplicaRegions(r, in.RemoveReplicaRegions, "RemoveReplicaRegions"); err != nil {
		return nil, err
	}
	// Allowed while scheduled for deletion (spec §4.23); a region not
	// replicated is no change.
	s, err := resolveSecret(ctx, r, req, *in.SecretID)
	if err != nil {
		return nil, err
	}
	if s.IsReplica() {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgReplicaWrite)
	}
	if !slices.ContainsFunc(in.RemoveReplicaRegions, func(region string) bool { return s.Replica(region) != nil }) {
		return replicationAnswer(ctx, r, req, s.ARN)
	}
	res, err := writeSecret(ctx, r, req, s.ARN, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		return fsm.CmdSetReplication, &fsm.SetReplication{ARN: s.ARN, Remove: in.RemoveReplicaRegions, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return replicationAnswer(ctx, r, req, res.ARN)
}

func stopReplicationToReplica(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	// Sent to the replica's region (spec §4.20); allowed while scheduled
	// for deletion (§4.23). Not a replica → InvalidRequestException.
	// Authorized on the node's state, as writes are (writeSecret).
	txn, _, err := r.Read(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := req.authorize(r, r.Resolve(txn, id), id); err != nil {
		return nil, err
	}
	res, index, err := r.PromoteReplica(ctx, id)
	req.setIndex(index)
	if err != nil {
		return nil, err
	}
	return struct {
		ARN string `json:"ARN"`
	}{res.ARN}, nil
}

// createSecretOp is CreateSecret with its AddReplicaRegions checked: the
// regions' model constraints and rules first, then createSecret's own
// checks, then that each region is one of this deployment's, then the
// secret is created with its replicas.
func createSecretOp(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		AddReplicaRegions           []replicaRegionJSON `json:"AddReplicaRegions"`
		ForceOverwriteReplicaSecret *bool               `json:"ForceOverwriteReplicaSecret"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	if in.AddReplicaRegions != nil {
		var v validator
		if err := validateAddReplicaRegions(r, &v, in.AddReplicaRegions); err != nil {
			return nil, err
		}
	}
	return createSecret(ctx, r, req, in.AddReplicaRegions, in.ForceOverwriteReplicaSecret)
}
