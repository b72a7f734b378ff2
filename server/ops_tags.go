package server

import (
	"context"
	"slices"

	"github.com/cofferhq/coffer/fsm"
)

func init() {
	register("TagResource", tagResource)
	register("UntagResource", untagResource)
}

// TagResource and UntagResource (shared/spec §4.21, §4.22). Both answer {}.

func tagResource(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID *string   `json:"SecretId"`
		Tags     []tagJSON `json:"Tags"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if in.Tags == nil {
		v.add(nil, "tags", "Member must not be null")
	}
	// validateTags reports the model violations collected so far with its
	// own, then the tag rules: at most 50, unique keys, no aws: prefix.
	if err := validateTags(in.Tags, &v); err != nil {
		return nil, err
	}
	tags := make([]fsm.Tag, 0, len(in.Tags))
	for _, t := range in.Tags {
		tags = append(tags, fsm.Tag{Key: *t.Key, Value: deref(t.Value)})
	}
	_, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		if err := req.keepsAccess(r, s, func(t []fsm.Tag) []fsm.Tag { return mergeTags(t, tags) }); err != nil {
			return 0, nil, err
		}
		return fsm.CmdTagResource, &fsm.TagResource{ARN: s.ARN, Tags: tags, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func untagResource(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID *string  `json:"SecretId"`
		TagKeys  []string `json:"TagKeys"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	if in.TagKeys == nil {
		v.add(nil, "tagKeys", "Member must not be null")
	}
	for i := range in.TagKeys {
		v.length(&in.TagKeys[i], "tagKeys."+itoa(i+1)+".member", 1, 128)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	_, err := writeSecret(ctx, r, req, *in.SecretID, func(s *fsm.Secret) (fsm.CommandType, any, error) {
		if err := req.keepsAccess(r, s, func(t []fsm.Tag) []fsm.Tag {
			return slices.DeleteFunc(slices.Clone(t), func(x fsm.Tag) bool { return slices.Contains(in.TagKeys, x.Key) })
		}); err != nil {
			return 0, nil, err
		}
		return fsm.CmdUntagResource, &fsm.UntagResource{ARN: s.ARN, Keys: in.TagKeys, Date: r.Now().UnixMilli()}, nil
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
