package server

import (
	"context"
	"regexp"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/rotation"
	"github.com/hashicorp/go-memdb"
)

func init() {
	register("RotateSecret", rotateSecret)
	register("CancelRotateSecret", cancelRotateSecret)
}

// RotateSecret and CancelRotateSecret (shared/spec §4.12, §4.13, §5.2;
// docs/rotation.md). The server checks the request, resolves the rotator
// and computes the schedule's next window; the FSM applies the
// configuration and the start of the rotation atomically; the leader's
// scheduler (package rotation) runs the steps.

type rotationRulesJSON struct {
	AutomaticallyAfterDays *int64  `json:"AutomaticallyAfterDays"`
	Duration               *string `json:"Duration"`
	ScheduleExpression     *string `json:"ScheduleExpression"`
}

type externalMetadataJSON struct {
	Key   *string `json:"Key"`
	Value *string `json:"Value"`
}

// Model patterns of RotationRulesType (shared/spec §2.2).
const (
	durationPattern           = `^[0-9]+h$`
	scheduleExpressionPattern = `^[0-9A-Za-z\(\)#\?\*\-\/, ]+$`
)

var (
	validDuration           = regexp.MustCompile(durationPattern)
	validScheduleExpression = regexp.MustCompile(scheduleExpressionPattern)
)

func rotateSecret(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID                       *string                `json:"SecretId"`
		ClientRequestToken             *string                `json:"ClientRequestToken"`
		RotationLambdaARN              *string                `json:"RotationLambdaARN"`
		RotationRules                  *rotationRulesJSON     `json:"RotationRules"`
		RotateImmediately              *bool                  `json:"RotateImmediately"`
		ExternalSecretRotationMetadata []externalMetadataJSON `json:"ExternalSecretRotationMetadata"`
		ExternalSecretRotationRoleArn  *string                `json:"ExternalSecretRotationRoleArn"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.length(in.ClientRequestToken, "clientRequestToken", 32, 64)
	v.length(in.RotationLambdaARN, "rotationLambdaARN", 0, 2048)
	if rr := in.RotationRules; rr != nil {
		v.intRange(rr.AutomaticallyAfterDays, "rotationRules.automaticallyAfterDays", 1, 1000)
		v.length(rr.Duration, "rotationRules.duration", 2, 3)
		if rr.Duration != nil && !validDuration.MatchString(*rr.Duration) {
			v.add(rr.Duration, "rotationRules.duration", "Member must satisfy regular expression pattern: "+durationPattern)
		}
		v.length(rr.ScheduleExpression, "rotationRules.scheduleExpression", 1, 256)
		if rr.ScheduleExpression != nil && *rr.ScheduleExpression != "" && !validScheduleExpression.MatchString(*rr.ScheduleExpression) {
			v.add(rr.ScheduleExpression, "rotationRules.scheduleExpression", "Member must satisfy regular expression pattern: "+scheduleExpressionPattern)
		}
	}
	for i, m := range in.ExternalSecretRotationMetadata {
		path := "externalSecretRotationMetadata." + itoa(i+1) + ".member"
		v.length(m.Key, path+".key", 1, 256)
		v.length(m.Value, path+".value", 1, 2048)
	}
	v.length(in.ExternalSecretRotationRoleArn, "externalSecretRotationRoleArn", 20, 2048)
	if err := v.err(); err != nil {
		return nil, err
	}
	// Stateless rules.
	if in.ClientRequestToken == nil {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgTokenMissing)
	}
	var sched *rotation.Schedule
	cfg := &fsm.RotationConfig{}
	if rr := in.RotationRules; rr != nil {
		rules := rotation.Rules{AutomaticallyAfterDays: deref64(rr.AutomaticallyAfterDays), ScheduleExpression: deref(rr.ScheduleExpression), Duration: deref(rr.Duration)}
		parsed, err := rotation.ParseRules(rules)
		if err != nil {
			return nil, apierr.New(apierr.InvalidParameter, err.Error())
		}
		sched = &parsed
		cfg.Rules, cfg.AfterDays, cfg.Expression, cfg.Duration = true, rules.AutomaticallyAfterDays, rules.ScheduleExpression, rules.Duration
	}
	txn, err := read(ctx, r, req)
	if err != nil {
		return nil, err
	}
	s := r.Resolve(txn, *in.SecretID)
	if err := req.authorize(r, s, *in.SecretID); err != nil {
		return nil, err
	}
	switch {
	case s == nil:
		return nil, apierr.New(apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	case s.IsReplica():
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgReplicaWrite)
	case s.Scheduled():
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
	}
	// The rotator: the one given, else the one stored.
	if in.RotationLambdaARN != nil && *in.RotationLambdaARN != "" {
		reg, err := findRotator(txn, *in.RotationLambdaARN)
		if err != nil {
			return nil, err
		}
		if reg == nil {
			return nil, apierr.New(apierr.AccessDenied, apierr.MsgCannotInvoke)
		}
		cfg.Rotator = reg.ARN
	} else if s.Rotation != nil {
		cfg.Rotator = s.Rotation.Rotator
	}
	if cfg.Rotator == "" {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgNoRotationFunction)
	}
	if s.Rotation != nil {
		cfg.External, cfg.RoleARN = s.Rotation.External, s.Rotation.RoleARN
	}
	if in.ExternalSecretRotationMetadata != nil {
		cfg.External = make([]fsm.Tag, len(in.ExternalSecretRotationMetadata))
		for i, m := range in.ExternalSecretRotationMetadata {
			cfg.External[i] = fsm.Tag{Key: deref(m.Key), Value: deref(m.Value)}
		}
	}
	if in.ExternalSecretRotationRoleArn != nil {
		cfg.RoleARN = *in.ExternalSecretRotationRoleArn
	}
	start := in.RotateImmediately == nil || *in.RotateImmediately
	if start {
		// Refused here so that nothing reaches the log; the FSM checks
		// again against the state it applies to.
		if _, e := s.StartsRotation(*in.ClientRequestToken); e != nil {
			return nil, e
		}
	}
	now := r.Now()
	cmd := &fsm.RotateSecret{ARN: s.ARN, Config: cfg, Token: *in.ClientRequestToken, Date: now.UnixMilli(),
		Start: start}
	if sched != nil {
		// The next window after now: a rotation started now is this
		// window's; the finish moves it on from the time it finishes.
		start, end := rotation.NextStart(*sched, s.ARN, now)
		cmd.NextStart, cmd.NextDate = start.UnixMilli(), end.UnixMilli()
	}
	res, index, err := r.Apply(ctx, fsm.CmdRotateSecret, cmd)
	req.setIndex(index)
	if err != nil {
		return nil, err
	}
	return arnNameVersion{ARN: res.ARN, Name: res.Name, VersionID: res.VersionID}, nil
}

func cancelRotateSecret(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	// A linearizable read: the checks that keep a refusal out of the log
	// must see every write acknowledged before this request.
	s, err := readSecret(ctx, r, req, id)
	if err != nil {
		return nil, err
	}
	switch {
	case s.IsReplica():
		return nil, apierr.New(apierr.InvalidParameter, apierr.MsgReplicaWrite)
	case s.Rotation == nil:
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgCancelRotateNothing)
	}
	res, index, err := r.Apply(ctx, fsm.CmdCancelRotation, &fsm.CancelRotation{ARN: s.ARN, Date: r.Now().UnixMilli()})
	req.setIndex(index)
	if err != nil {
		return nil, err
	}
	return arnNameVersion{ARN: res.ARN, Name: res.Name, VersionID: res.VersionID}, nil
}

// findRotator finds a registered rotator by its ARN or its name.
func findRotator(txn *memdb.Txn, ref string) (*fsm.Rotator, error) {
	var reg *fsm.Rotator
	var err error
	if strings.HasPrefix(ref, "arn:") {
		reg, err = fsm.RotatorByARN(txn, ref)
	} else {
		reg, err = fsm.RotatorByName(txn, ref)
	}
	if err != nil {
		return nil, apierr.Newf(apierr.InternalServiceError, "state store: %v", err)
	}
	return reg, nil
}

func deref64(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}
