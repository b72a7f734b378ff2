package fsm

import (
	"slices"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdTagResource   CommandType = 10
	CmdUntagResource CommandType = 11
)

// TagResource adds tags, replacing the value of keys the secret has.
type TagResource struct {
	ARN  string
	Tags []Tag
	Date int64
}

// UntagResource removes the tags with these keys; unknown keys are ignored.
type UntagResource struct {
	ARN  string
	Keys []string
	Date int64
}

func init() {
	register(CmdTagResource, "TagResource", applyTagResource)
	register(CmdUntagResource, "UntagResource", applyUntagResource)
}

// MaxTags is the number of tags a secret can have (shared/spec §6).
const MaxTags = 50

func applyTagResource(txn *memdb.Txn, index uint64, c *TagResource) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	changed := false
	for _, t := range c.Tags {
		if t.Key == "" {
			return apierr.New(apierr.InvalidParameter, "A tag key must not be empty.")
		}
		i := slices.IndexFunc(s.Tags, func(have Tag) bool { return have.Key == t.Key })
		switch {
		case i < 0:
			// New keys go at the end; existing ones keep their place.
			s.Tags = append(s.Tags, t)
			changed = true
		case s.Tags[i].Value != t.Value:
			s.Tags[i].Value = t.Value
			changed = true
		}
	}
	if len(s.Tags) > MaxTags {
		return apierr.Newf(apierr.InvalidParameter,
			"A secret can have at most %d tags; this request would leave it with %d.", MaxTags, len(s.Tags))
	}
	if len(c.Tags) > 0 && !s.TagsEverSet {
		s.TagsEverSet = true
		changed = true
	}
	if changed {
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}

func applyUntagResource(txn *memdb.Txn, index uint64, c *UntagResource) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	n := len(s.Tags)
	s.Tags = slices.DeleteFunc(s.Tags, func(t Tag) bool { return slices.Contains(c.Keys, t.Key) })
	if len(s.Tags) != n {
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}
