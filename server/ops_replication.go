package server

import (
	"context"
	"regexp"
	"strings"

	"github.com/cofferhq/coffer/apierr"
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
// (shared/spec §4.1, §4.18-§4.20).
//
// Coffer has no replication engine yet. The operations check a request
// exactly as they will once replication exists (model constraints, region
// names, the replica region not being this region, no region twice, the
// secret resolved and its state rules) and then refuse with an
// InvalidRequestException that says replication is not available yet.
// Nothing is recorded and nothing is changed. No secret is a replica or
// has replicas, which decides the state rules that depend on it.

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
	// Resolve; refused while scheduled for deletion. (A replica would be
	// refused too; there are none yet.)
	if _, err := readSecret(ctx, r, req, *in.SecretID); err != nil {
		return nil, err
	}
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgReplicateNotYet)
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
	// Allowed while scheduled for deletion (spec §4.23): resolve only.
	if _, err := resolveSecret(ctx, r, req, *in.SecretID); err != nil {
		return nil, err
	}
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgRemoveRegionsNotYet)
}

func stopReplicationToReplica(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	// Allowed while scheduled for deletion (spec §4.23): resolve only.
	if _, err := resolveSecret(ctx, r, req, id); err != nil {
		return nil, err
	}
	// Not a replica → InvalidRequestException (spec §4.20); no secret is
	// one yet.
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgStopReplicationNotYet)
}

// createSecretOp is CreateSecret with its AddReplicaRegions checked: a
// request without AddReplicaRegions is plain createSecret. With them, the
// regions' model constraints and rules are checked, then createSecret
// checks everything else and refuses before writing anything, then the
// name's state rules are checked; a request that passes everything is
// refused as not available yet.
func createSecretOp(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		Name              *string             `json:"Name"`
		AddReplicaRegions []replicaRegionJSON `json:"AddReplicaRegions"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	if in.AddReplicaRegions == nil {
		return createSecret(ctx, r, req)
	}
	var v validator
	if err := validateAddReplicaRegions(r, &v, in.AddReplicaRegions); err != nil {
		return nil, err
	}
	// With AddReplicaRegions present, createSecret refuses after all of its
	// own checks and before it writes anything.
	out, err := createSecret(ctx, r, req)
	if ae, ok := apierr.As(err); !ok || ae.Code != apierr.InvalidRequest || in.Name == nil ||
		!strings.Contains(ae.Message, "AddReplicaRegions") {
		return out, err
	}
	txn, err := read(ctx, r, req)
	if err != nil {
		return nil, err
	}
	// A name is never "arn:..." (no ':' allowed), so this is a name lookup;
	// secrets scheduled for deletion are found too.
	if s := r.Resolve(txn, *in.Name); s != nil {
		if s.Scheduled() {
			return nil, apierr.New(apierr.InvalidRequest, apierr.MsgScheduledCreate)
		}
		return nil, apierr.Newf(apierr.ResourceExists, "The operation failed because the secret %s already exists.", *in.Name)
	}
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgAddReplicaRegionsNotYet)
}
