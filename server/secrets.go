package server

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/rotation"
	"github.com/hashicorp/go-memdb"
)

func init() {
	register("GetSecretValue", getSecretValue)
	register("PutSecretValue", putSecretValue)
	register("DescribeSecret", describeSecret)
	register("ListSecrets", listSecrets)
	register("DeleteSecret", deleteSecret)
	register("RestoreSecret", restoreSecret)
}

// The seven operations of the secret lifecycle. Each follows the order of
// shared/spec §4: decode and model constraints, stateless rules, resolve,
// then one Raft command whose Apply checks the state rules atomically.

var validName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)

type tagJSON struct {
	Key   *string `json:"Key"`
	Value *string `json:"Value"`
}

// secretValue is the value members shared by CreateSecret, PutSecretValue
// and UpdateSecret.
type secretValue struct {
	SecretString *string `json:"SecretString"`
	SecretBinary []byte  `json:"SecretBinary"`
}

func (sv *secretValue) present() bool { return sv.SecretString != nil || sv.SecretBinary != nil }

func (sv *secretValue) validate(v *validator) {
	if sv.SecretString != nil {
		v.sensitive(true, len(*sv.SecretString), "secretString")
	}
	v.sensitive(sv.SecretBinary != nil, len(sv.SecretBinary), "secretBinary")
}

// bothValues is checked after model constraints: a stateless parameter rule.
func (sv *secretValue) bothValues() error {
	if sv.SecretString != nil && sv.SecretBinary != nil {
		return apierr.New(apierr.InvalidParameter, apierr.MsgBothValues)
	}
	return nil
}

// seal encrypts the value for version versionID of the secret with this
// ARN, its data key wrapped by KEK kekID (region.Seal): decoding JSON is
// server's part, sealing is region's. A request without a value
// (CreateSecret, UpdateSecret) gives nil.
//
// The keyring is fetched here, after kekID was chosen from the node's
// state: it is then at least as new as that state, and holds the KEK.
func (sv *secretValue) seal(r Region, kekID, arn string, versionID *string) (*fsm.NewVersion, error) {
	if !sv.present() {
		return nil, nil
	}
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	plain, binary := sv.SecretBinary, true
	if sv.SecretString != nil {
		plain, binary = []byte(*sv.SecretString), false
	}
	nv, err := region.Seal(kr, kekID, arn, *versionID, plain, binary)
	if err != nil {
		return nil, err
	}
	return &nv, nil
}

// secretKeyID is what a secret records as its key (fsm.Secret.KeyID):
// "" for the default key.
func secretKeyID(k *fsm.Key) string {
	if k.ID == fsm.DefaultKeyID {
		return ""
	}
	return k.ID
}

func validateTags(tags []tagJSON, v *validator) error {
	for i, t := range tags {
		path := "tags." + itoa(i+1) + ".member"
		if v.required(t.Key, path+".key") {
			v.length(t.Key, path+".key", 1, 128)
		}
		// Value is optional in AWS's model (the CLI's --tags Key=k sends
		// none); it means the empty string.
		v.length(t.Value, path+".value", 0, 256)
	}
	if err := v.err(); err != nil {
		return err
	}
	if len(tags) > 50 {
		return apierr.Newf(apierr.InvalidParameter, "A secret can have at most 50 tags; the request has %d.", len(tags))
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if strings.HasPrefix(strings.ToLower(*t.Key), "aws:") {
			return apierr.Newf(apierr.InvalidParameter, "Tag key %q uses the reserved prefix aws:.", *t.Key)
		}
		if seen[*t.Key] {
			return apierr.Newf(apierr.InvalidParameter, "Tag key %q appears more than once.", *t.Key)
		}
		seen[*t.Key] = true
	}
	return nil
}

// createSecret is CreateSecret; add and force are its AddReplicaRegions
// and ForceOverwriteReplicaSecret, already validated (createSecretOp).
func createSecret(ctx context.Context, r Region, req *request, add []replicaRegionJSON, force *bool) (any, error) {
	var in struct {
		Name               *string   `json:"Name"`
		ClientRequestToken *string   `json:"ClientRequestToken"`
		Description        *string   `json:"Description"`
		KmsKeyID           *string   `json:"KmsKeyId"`
		Tags               []tagJSON `json:"Tags"`
		Type               *string   `json:"Type"`
		secretValue
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	if v.required(in.Name, "name") {
		v.length(in.Name, "name", 1, 512)
	}
	v.length(in.ClientRequestToken, "clientRequestToken", 32, 64)
	v.length(in.Description, "description", 0, 2048)
	v.length(in.KmsKeyID, "kmsKeyId", 0, 2048)
	v.length(in.Type, "type", 0, 256)
	in.secretValue.validate(&v)
	if err := v.err(); err != nil {
		return nil, err
	}
	if !validName.MatchString(*in.Name) {
		return nil, apierr.New(apierr.Validation, apierr.MsgInvalidName)
	}
	if err := validateTags(in.Tags, &v); err != nil {
		return nil, err
	}
	if err := in.bothValues(); err != nil {
		return nil, err
	}
	if in.present() && in.ClientRequestToken == nil {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgTokenMissing)
	}
	// Authorized on the ARN the secret will have, with each action the
	// request needs (spec §4.23), before anything is looked up.
	arn := r.NewARN(*in.Name)
	if err := req.authorizeNew(r, "CreateSecret", arn); err != nil {
		return nil, err
	}
	if in.Tags != nil {
		if err := req.authorizeNew(r, "TagResource", arn); err != nil {
			return nil, err
		}
	}
	if add != nil {
		if err := req.authorizeNew(r, "ReplicateSecretToRegions", arn); err != nil {
			return nil, err
		}
	}
	var replicas []fsm.Replica
	if add != nil {
		var err error
		if replicas, err = replicaList(r, req, add, force); err != nil {
			return nil, err
		}
	}
	// A sealed node never gets here (authenticate); the keyring is
	// fetched once, when the value is sealed.
	key, err := r.ResolveKey(ctx, deref(in.KmsKeyID))
	if err != nil {
		return nil, err
	}
	now := r.Now().UnixMilli()
	cmd := &fsm.CreateSecret{
		ARN:  arn,
		Name: *in.Name, Description: deref(in.Description), KmsKeyID: deref(in.KmsKeyID), KeyID: secretKeyID(key),
		Date: now, Type: deref(in.Type), Replicas: replicas,
	}
	for _, t := range in.Tags {
		cmd.Tags = append(cmd.Tags, fsm.Tag{Key: *t.Key, Value: deref(t.Value)})
	}

	if cmd.Version, err = in.seal(r, key.Current().KEKID, cmd.ARN, in.ClientRequestToken); err != nil {
		return nil, err
	}
	res, err := apply(ctx, r, req, fsm.CmdCreateSecret, cmd)
	if err != nil {
		return nil, err
	}
	if replicas == nil {
		return arnNameVersion{res.ARN, res.Name, res.VersionID}, nil
	}
	txn, err := readAfterWrite(ctx, r, req)
	if err != nil {
		return nil, err
	}
	out := struct {
		arnNameVersion
		ReplicationStatus []replicationStatusOut `json:"ReplicationStatus"`
	}{arnNameVersion: arnNameVersion{res.ARN, res.Name, res.VersionID}, ReplicationStatus: []replicationStatusOut{}}
	if s := fsm.SecretByARN(txn, res.ARN); s != nil {
		out.ReplicationStatus = replicationStatus(txn, s)
	}
	return out, nil
}

func putSecretValue(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID           *string  `json:"SecretId"`
		ClientRequestToken *string  `json:"ClientRequestToken"`
		VersionStages      []string `json:"VersionStages"`
		RotationToken      *string  `json:"RotationToken"`
		secretValue
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.length(in.ClientRequestToken, "clientRequestToken", 32, 64)
	validateStages(in.VersionStages, "versionStages", &v)
	if in.RotationToken != nil {
		v.length(in.RotationToken, "rotationToken", 36, 256)
	}
	in.secretValue.validate(&v)
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.ClientRequestToken == nil {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgTokenMissing)
	}
	if err := in.bothValues(); err != nil {
		return nil, err
	}
	if !in.present() {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgNoValue)
	}
	res, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		kekID, err := r.WrapKEK(s)
		if err != nil {
			return 0, nil, err
		}
		nv, err := in.seal(r, kekID, s.ARN, in.ClientRequestToken)
		if err != nil {
			return 0, nil, err
		}
		return fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: s.ARN, Version: *nv,
			Stages: uniqueLabels(in.VersionStages), Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		ARN           string   `json:"ARN"`
		Name          string   `json:"Name"`
		VersionID     string   `json:"VersionId"`
		VersionStages []string `json:"VersionStages"`
	}{res.ARN, res.Name, res.VersionID, nonNil(res.VersionStages)}, nil
}

func validateStages(stages []string, path string, v *validator) {
	if stages == nil {
		return
	}
	if len(stages) < 1 || len(stages) > 20 {
		s := itoa(len(stages)) + " items"
		v.add(&s, path, "Member must have length less than or equal to 20 and greater than or equal to 1")
	}
	for i := range stages {
		v.length(&stages[i], path+"."+itoa(i+1)+".member", 1, 256)
	}
}

func getSecretValue(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID     *string `json:"SecretId"`
		VersionID    *string `json:"VersionId"`
		VersionStage *string `json:"VersionStage"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.length(in.VersionID, "versionId", 32, 64)
	v.length(in.VersionStage, "versionStage", 1, 256)
	if err := v.err(); err != nil {
		return nil, err
	}
	kr, err := r.Keyring()
	if err != nil {
		return nil, err
	}
	// Resolved even if scheduled for deletion: readValue answers that with
	// AWS's message for reads.
	s, err := resolveSecret(ctx, r, req, *in.SecretID)
	if err != nil {
		return nil, err
	}
	var reads []region.ValueRead
	out, err := readValue(r, kr, s, in.VersionID, in.VersionStage, &reads)
	if err != nil {
		return nil, err
	}
	r.RecordAccess(ctx, req.stale, reads)
	return out, nil
}

// secretValueOut is GetSecretValue's answer and an entry of
// BatchGetSecretValue's SecretValues.
type secretValueOut struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionID     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"`
	VersionStages []string `json:"VersionStages,omitempty"`
	CreatedDate   epoch    `json:"CreatedDate"`
}

// readValue is GetSecretValue on a resolved secret: it picks the version
// by id and/or label (AWSCURRENT by default), decrypts it, and adds the
// read to reads, for the caller to record in LastAccessedDate
// (region.RecordAccess) once it has read every value it serves.
func readValue(r Region, kr *crypto.Keyring, s *fsm.Secret, versionID, stage *string, reads *[]region.ValueRead) (*secretValueOut, error) {
	if s.Scheduled() {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	}
	var ver *fsm.Version
	switch {
	case versionID != nil:
		ver = s.Version(*versionID)
		if ver == nil || !ver.HasValue() {
			return nil, apierr.Newf(apierr.ResourceNotFound, "Secrets Manager can't find the specified secret value for VersionId: %s", *versionID)
		}
		if stage != nil && !slices.Contains(ver.Stages, *stage) {
			return nil, apierr.New(apierr.InvalidRequest, apierr.MsgVersionStageMismatch)
		}
	default:
		label := fsm.StageCurrent
		if stage != nil {
			label = *stage
		}
		ver = s.Staged(label)
		if ver == nil || !ver.HasValue() {
			return nil, apierr.Newf(apierr.ResourceNotFound, "Secrets Manager can't find the specified secret value for staging label: %s", label)
		}
	}
	plain, err := r.OpenValue(kr, s, ver)
	if err != nil {
		return nil, err
	}
	*reads = append(*reads, region.ValueRead{Secret: s, Version: ver})
	out := &secretValueOut{ARN: s.ARN, Name: s.Name, VersionID: ver.VersionID, VersionStages: ver.Stages, CreatedDate: epoch(ver.CreatedDate)}
	if ver.Binary {
		out.SecretBinary = plain
	} else {
		str := string(plain)
		out.SecretString = &str
	}
	return out, nil
}

// secretEntry is a secret's metadata as DescribeSecret and ListSecrets
// return it; only the name of the version map differs between the two.
type secretEntry struct {
	ARN                    string                 `json:"ARN"`
	Name                   string                 `json:"Name"`
	Description            string                 `json:"Description,omitempty"`
	KmsKeyID               string                 `json:"KmsKeyId,omitempty"`
	Type                   string                 `json:"Type,omitempty"`
	CreatedDate            epoch                  `json:"CreatedDate"`
	LastChangedDate        epoch                  `json:"LastChangedDate"`
	LastAccessedDate       epoch                  `json:"LastAccessedDate,omitempty"`
	DeletedDate            epoch                  `json:"DeletedDate,omitempty"`
	Tags                   *[]tagOut              `json:"Tags,omitempty"`
	VersionIdsToStages     map[string][]string    `json:"VersionIdsToStages,omitempty"`
	SecretVersionsToStages map[string][]string    `json:"SecretVersionsToStages,omitempty"`
	PrimaryRegion          string                 `json:"PrimaryRegion,omitempty"`
	ReplicationStatus      []replicationStatusOut `json:"ReplicationStatus,omitempty"`
	// Rotation (shared/spec §4.4's presence table).
	RotationEnabled                *bool              `json:"RotationEnabled,omitempty"`
	RotationLambdaARN              string             `json:"RotationLambdaARN,omitempty"`
	RotationRules                  *rotationRulesOut  `json:"RotationRules,omitempty"`
	ExternalSecretRotationMetadata []tagOut           `json:"ExternalSecretRotationMetadata,omitempty"`
	ExternalSecretRotationRoleArn  string             `json:"ExternalSecretRotationRoleArn,omitempty"`
	LastRotatedDate                epoch              `json:"LastRotatedDate,omitempty"`
	NextRotationDate               epoch              `json:"NextRotationDate,omitempty"`
	CofferRotationStatus           *rotationStatusOut `json:"CofferRotationStatus,omitempty"`
}

type rotationRulesOut struct {
	AutomaticallyAfterDays int64  `json:"AutomaticallyAfterDays,omitempty"`
	ScheduleExpression     string `json:"ScheduleExpression,omitempty"`
	Duration               string `json:"Duration,omitempty"`
}

// rotationStatusOut is Coffer's own member of DescribeSecret and
// ListSecrets (the SDKs skip members they do not know): the rotation in
// flight and the last failure, which AWS shows only in its logs.
type rotationStatusOut struct {
	VersionID       string `json:"VersionId,omitempty"`
	Step            string `json:"Step,omitempty"`
	Attempts        int    `json:"Attempts,omitempty"`
	LastError       string `json:"LastError,omitempty"`
	LastErrorDate   epoch  `json:"LastErrorDate,omitempty"`
	NextAttemptDate epoch  `json:"NextAttemptDate,omitempty"`
}

type tagOut struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func entryOf(txn *memdb.Txn, s *fsm.Secret) secretEntry {
	e := secretEntry{ARN: s.ARN, Name: s.Name, Description: s.Description, KmsKeyID: s.KmsKeyID, Type: s.Type,
		CreatedDate: epoch(s.CreatedDate), LastChangedDate: epoch(s.LastChangedDate),
		LastAccessedDate: epoch(s.LastAccessedDate), DeletedDate: epoch(s.DeletedDate),
		PrimaryRegion: s.PrimaryRegionName()}
	if len(s.Replicas) > 0 {
		e.ReplicationStatus = replicationStatus(txn, s)
	}
	if rot := s.Rotation; rot != nil {
		setRotation(&e, rot)
	}
	if s.TagsEverSet {
		tags := make([]tagOut, 0, len(s.Tags))
		for _, t := range s.Tags {
			tags = append(tags, tagOut(t))
		}
		e.Tags = &tags
	}
	for _, v := range s.Versions {
		if len(v.Stages) == 0 {
			continue // deprecated versions are hidden
		}
		if e.VersionIdsToStages == nil {
			e.VersionIdsToStages = map[string][]string{}
		}
		e.VersionIdsToStages[v.VersionID] = v.Stages
	}
	return e
}

// setRotation fills the rotation members of a secret's entry.
func setRotation(e *secretEntry, rot *fsm.Rotation) {
	enabled := rot.Enabled
	e.RotationEnabled = &enabled
	e.RotationLambdaARN = rot.Rotator
	if rot.AfterDays != 0 || rot.Expression != "" {
		rr := &rotationRulesOut{AutomaticallyAfterDays: rot.AfterDays, ScheduleExpression: rot.Expression, Duration: rot.Duration}
		if sched, err := rotation.ParseRules(rotation.Rules{AutomaticallyAfterDays: rot.AfterDays, ScheduleExpression: rot.Expression, Duration: rot.Duration}); err == nil && rr.AutomaticallyAfterDays == 0 {
			// AWS shows the days of a rate(n days) expression too.
			rr.AutomaticallyAfterDays = sched.AfterDays()
		}
		e.RotationRules = rr
	}
	for _, m := range rot.External {
		e.ExternalSecretRotationMetadata = append(e.ExternalSecretRotationMetadata, tagOut(m))
	}
	e.ExternalSecretRotationRoleArn = rot.RoleARN
	e.LastRotatedDate = epoch(rot.LastRotatedDate)
	if rot.Enabled {
		e.NextRotationDate = epoch(rot.NextDate)
	}
	if rot.Token != "" || rot.LastError != "" {
		st := &rotationStatusOut{VersionID: rot.Token, Attempts: rot.Attempts, LastError: rot.LastError, LastErrorDate: epoch(rot.LastErrorDate)}
		if rot.Token != "" {
			st.Step = rot.Step
			if st.Step == "" {
				st.Step = rotation.StepCreate
			}
			st.NextAttemptDate = epoch(rot.RetryAt)
		}
		e.CofferRotationStatus = st
	}
}

func describeSecret(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	txn, err := read(ctx, r, req)
	if err != nil {
		return nil, err
	}
	s := r.Resolve(txn, id)
	if err := req.authorize(r, s, id); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	return entryOf(txn, s), nil
}

func listSecrets(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		MaxResults             *int64       `json:"MaxResults"`
		NextToken              *string      `json:"NextToken"`
		IncludePlannedDeletion *bool        `json:"IncludePlannedDeletion"`
		Filters                []filterJSON `json:"Filters"`
		SortOrder              *string      `json:"SortOrder"`
		SortBy                 *string      `json:"SortBy"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.intRange(in.MaxResults, "maxResults", 1, 100)
	v.length(in.NextToken, "nextToken", 1, 4096)
	validateFilters(&v, in.Filters)
	validateEnum(&v, in.SortOrder, "sortOrder", sortOrderValues)
	validateEnum(&v, in.SortBy, "sortBy", sortByValues)
	if err := v.err(); err != nil {
		return nil, err
	}
	filters, err := filterRules(in.Filters)
	if err != nil {
		return nil, err
	}
	q := fsm.ListQuery{SortBy: deref(in.SortBy), Desc: deref(in.SortOrder) == "desc",
		IncludeDeleted: in.IncludePlannedDeletion != nil && *in.IncludePlannedDeletion,
		Filters:        filters, Limit: 100, ScanLimit: listScanLimit}
	if in.MaxResults != nil {
		q.Limit = int(*in.MaxResults)
	}
	if err := req.authorize(r, nil, ""); err != nil {
		return nil, err
	}
	page, next, txn, err := listPage(ctx, r, req, "ListSecrets", q, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		SecretList []secretEntry `json:"SecretList"`
		NextToken  string        `json:"NextToken,omitempty"`
	}{SecretList: make([]secretEntry, 0, len(page.Secrets))}
	for _, s := range page.Secrets {
		if req.hidden(r, "ListSecrets", s) {
			continue
		}
		e := entryOf(txn, s)
		e.SecretVersionsToStages, e.VersionIdsToStages = e.VersionIdsToStages, nil
		out.SecretList = append(out.SecretList, e)
	}
	out.NextToken = next
	return out, nil
}

func deleteSecret(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID                   *string `json:"SecretId"`
		RecoveryWindowInDays       *int64  `json:"RecoveryWindowInDays"`
		ForceDeleteWithoutRecovery *bool   `json:"ForceDeleteWithoutRecovery"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if err := v.err(); err != nil {
		return nil, err
	}
	// AWS checks the window's range before its conflict with a forced
	// delete.
	window := int64(30)
	if in.RecoveryWindowInDays != nil {
		window = *in.RecoveryWindowInDays
		if window < 7 || window > 30 {
			return nil, apierr.New(apierr.InvalidParameter, apierr.MsgRecoveryWindow)
		}
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if in.RecoveryWindowInDays != nil && force {
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgWindowAndForce)
	}
	type output struct {
		ARN          string `json:"ARN"`
		Name         string `json:"Name"`
		DeletionDate epoch  `json:"DeletionDate"`
	}
	res, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		now := r.Now().UnixMilli()
		name := "StartSecretVersionDelete"
		if force {
			name = "EndSecretVersionDelete"
		}
		req.events = versionEvents(name, s)
		return fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: s.ARN, Force: force, Date: now,
			DeletionDate: now + window*24*int64(time.Hour/time.Millisecond)}, nil
	})
	if apierr.Is(err, apierr.ResourceNotFound) && force {
		// Force-deleting what does not exist succeeds, as in AWS, with
		// the ARN such a secret would have had: the one given, or this
		// region's ARN of the name with a fresh suffix.
		out := output{ARN: *in.SecretID, Name: *in.SecretID, DeletionDate: epoch(r.Now().UnixMilli())}
		if !strings.HasPrefix(*in.SecretID, "arn:") {
			out.ARN = r.NewARN(*in.SecretID)
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	return output{res.ARN, res.Name, epoch(res.DeletionDate)}, nil
}

func restoreSecret(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	res, err := writeSecret(ctx, r, req, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		if s.Scheduled() {
			req.events = versionEvents("CancelSecretVersionDelete", s)
		}
		return fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: s.ARN, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		ARN  string `json:"ARN"`
		Name string `json:"Name"`
	}{res.ARN, res.Name}, nil
}

// read returns a read transaction for req: linearizable by default, local
// state at once for X-Coffer-Consistency: stale. req.index records the
// index the state reflects.
func read(ctx context.Context, r Region, req *request) (*memdb.Txn, error) {
	txn, index, err := r.Read(ctx, req.stale)
	req.setIndex(index)
	return txn, err
}

// readAfterWrite reads the state a write's answer describes (its
// ReplicationStatus) without moving the answer's index off the write's
// own: X-Coffer-Index names the command, whatever committed since.
// Without a write (a no-op) it records the read's index.
func readAfterWrite(ctx context.Context, r Region, req *request) (*memdb.Txn, error) {
	if req.index == 0 {
		return read(ctx, r, req)
	}
	txn, _, err := r.Read(ctx, req.stale)
	return txn, err
}

// apply commits one command and records the index it applied at.
func apply(ctx context.Context, r Region, req *request, t fsm.CommandType, cmd any) (*fsm.Result, error) {
	res, index, err := r.Apply(ctx, t, cmd)
	req.setIndex(index)
	return res, err
}

// writeSecret is region.WriteSecret for req, recording the index the
// answer reflects.
// The secret is authorized as WriteSecret resolves it; one it does not
// find is authorized against the ARN its id would name, so a caller
// without permission learns nothing about whether it exists.
func writeSecret(ctx context.Context, r Region, req *request, id string, build func(*fsm.Secret) (fsm.CommandType, any, error)) (*fsm.Result, error) {
	res, index, err := r.WriteSecret(ctx, id, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		if err := req.authorize(r, s, id); err != nil {
			return 0, nil, err
		}
		return build(s)
	})
	req.setIndex(index)
	if apierr.Is(err, apierr.ResourceNotFound) && !req.authorized {
		if aerr := req.authorize(r, nil, id); aerr != nil {
			return nil, aerr
		}
	}
	return res, err
}

// resolveSecret resolves a SecretId on a linearizable (or stale, if asked)
// read, for the operations allowed while a secret is scheduled for
// deletion.
func resolveSecret(ctx context.Context, r Region, req *request, id string) (*fsm.Secret, error) {
	txn, err := read(ctx, r, req)
	if err != nil {
		return nil, err
	}
	s := r.Resolve(txn, id)
	if err := req.authorize(r, s, id); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	return s, nil
}

// readSecret is resolveSecret for the operations refused while the secret
// is scheduled for deletion.
func readSecret(ctx context.Context, r Region, req *request, id string) (*fsm.Secret, error) {
	s, err := resolveSecret(ctx, r, req, id)
	if err == nil && s.Scheduled() {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	}
	return s, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// uniqueLabels returns the labels without repeats, in the caller's order;
// nil stays nil (the default stages).
func uniqueLabels(labels []string) []string {
	if labels == nil {
		return nil
	}
	out := make([]string, 0, len(labels))
	for _, l := range labels {
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
