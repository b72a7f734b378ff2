package fsm

import (
	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Command types applied here (command.go: the log format; never
// renumber or reuse one).
const (
	CmdPutResourcePolicy    CommandType = 12
	CmdDeleteResourcePolicy CommandType = 13
)

// PutResourcePolicy attaches a resource policy (validated by the node
// that received the request) to a secret, replacing any other.
type PutResourcePolicy struct {
	ARN    string
	Policy string
	Date   int64
}

// DeleteResourcePolicy removes a secret's resource policy, if any.
type DeleteResourcePolicy struct {
	ARN  string
	Date int64
}

func init() {
	register(CmdPutResourcePolicy, "PutResourcePolicy", applyPutResourcePolicy)
	register(CmdDeleteResourcePolicy, "DeleteResourcePolicy", applyDeleteResourcePolicy)
}

// MaxPolicyLength bounds a resource policy, in characters (shared/spec §6).
const MaxPolicyLength = 20480

func applyPutResourcePolicy(txn *memdb.Txn, index uint64, c *PutResourcePolicy) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	if c.Policy == "" {
		// "" means "no policy" in state; the server never sends it.
		return apierr.New(apierr.MalformedPolicyDocument, apierr.MsgMalformedPolicy)
	}
	if s.ResourcePolicy != c.Policy {
		s.ResourcePolicy = c.Policy
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}

func applyDeleteResourcePolicy(txn *memdb.Txn, index uint64, c *DeleteResourcePolicy) any {
	s, errResp := writableSecret(txn, c.ARN)
	if errResp != nil {
		return errResp
	}
	if s.ResourcePolicy != "" {
		s.ResourcePolicy = ""
		if e := changeSecret(txn, index, s, c.Date); e != nil {
			return e
		}
	}
	return &Result{ARN: s.ARN, Name: s.Name}
}
