package fsm

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// Identities as state (docs/iam.md): IAM users, groups and customer
// managed policies, and the users' access keys (in the access_keys table,
// next to the root key). The node that receives a request decides
// everything random or timed (ids, ARNs, dates) and puts it in the
// command; Apply checks the state and either commits or refuses with
// IAM's error code and wording, changing nothing.

// User is an IAM user. Its access keys are AccessKeys whose UserName is
// its name (and Identity too).
type User struct {
	Name string
	// UserID is "AIDA" and 16 characters; Path is "/" or "/.../".
	UserID      string
	Path        string
	ARN         string
	CreatedDate int64
	// Groups are the names of the groups the user is in, Policies the
	// names of the managed policies attached to it; both sorted.
	// Membership is stored here only (the "group" index answers a group's
	// members).
	Groups   []string `codec:",omitempty"`
	Policies []string `codec:",omitempty"`
}

// Group is an IAM group.
type Group struct {
	Name        string
	GroupID     string // "AGPA" and 16 characters
	Path        string
	ARN         string
	CreatedDate int64
	Policies    []string `codec:",omitempty"`
}

// ManagedPolicy is a customer managed policy: a named identity policy
// document that users and groups attach.
type ManagedPolicy struct {
	Name        string
	PolicyID    string // "ANPA" and 16 characters
	Path        string
	ARN         string
	Description string `codec:",omitempty"`
	Document    string
	CreatedDate int64
	UpdatedDate int64
}

// Access key statuses. A key's Status is "" while it is active (as every
// key written before statuses existed is), StatusInactive once disabled.
const (
	StatusActive   = "Active"
	StatusInactive = "Inactive"
)

// Active reports whether the key may sign requests.
func (k *AccessKey) Active() bool { return k.Status == "" || k.Status == StatusActive }

// StatusName is the key's status as IAM shows it: Active or Inactive.
func (k *AccessKey) StatusName() string {
	if k.Active() {
		return StatusActive
	}
	return StatusInactive
}

// IAM's quotas (the defaults of an AWS account).
const (
	MaxAccessKeysPerUser = 2
	MaxGroupsPerUser     = 10
	MaxPoliciesPerEntity = 10
	// MaxPolicyDocument is the size limit of a managed policy document,
	// in characters.
	MaxPolicyDocument = 6144
)

// RootUserName is the root identity's name, refused for users.
const RootUserName = "root"

const (
	tableUsers    = "iam_users"
	tableGroups   = "iam_groups"
	tablePolicies = "iam_policies"
)

func iamSchema() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableUsers: {Name: tableUsers, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			// group: the members of a group; policy: the users a policy
			// is attached to.
			"group":  {Name: "group", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Groups"}},
			"policy": {Name: "policy", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Policies"}},
		}},
		tableGroups: {Name: tableGroups, Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			"policy": {Name: "policy", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Policies"}},
		}},
		tablePolicies: {Name: tablePolicies, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
	}
}

// accessKeyUserIndex indexes the access keys by user; the root key has
// none.
var accessKeyUserIndex = &memdb.IndexSchema{Name: "user", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "UserName"}}

var (
	iamNamePattern = regexp.MustCompile(`^[\w+=,.@-]+$`)
	iamPathPattern = regexp.MustCompile(`^(/|/[\x21-\x7e]+/)$`)
)

// ValidateIAMName checks a user, group or policy name as IAM does: the
// pattern [\w+=,.@-]+ and at most max characters (64 for users and
// groups, 128 for policies). field is the request member IAM names.
func ValidateIAMName(field, name string, max int) *apierr.Error {
	switch {
	case len(name) < 1:
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", name, field)
	case len(name) > max:
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", name, field, max)
	case !iamNamePattern.MatchString(name):
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name, field)
	}
	return nil
}

// ValidateIAMPath checks an IAM path: "/" or "/" text "/" of printable
// ASCII, at most 512 characters.
func ValidateIAMPath(path string) *apierr.Error {
	if len(path) > 512 {
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at 'path' failed to satisfy constraint: Member must have length less than or equal to 512", path)
	}
	if !iamPathPattern.MatchString(path) {
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)", path)
	}
	return nil
}

// IAMARN is the ARN of an IAM entity: kind is user, group or policy.
func IAMARN(account, kind, path, name string) string {
	return fmt.Sprintf("arn:aws:iam::%s:%s%s%s", account, kind, path, name)
}

// Errors as IAM words them.

func errNoSuchUser(name string) *apierr.Error {
	return apierr.Newf(apierr.NoSuchEntity, "The user with name %s cannot be found.", name)
}

func errNoSuchGroup(name string) *apierr.Error {
	return apierr.Newf(apierr.NoSuchEntity, "The group with name %s cannot be found.", name)
}

func errNoSuchKey(id string) *apierr.Error {
	return apierr.Newf(apierr.NoSuchEntity, "The Access Key with id %s cannot be found.", id)
}

// policyRef is how IAM names a policy in its messages: its ARN (with the
// default path when the policy does not exist).
func policyRef(txn *memdb.Txn, name string) string {
	if p, _ := PolicyByName(txn, name); p != nil {
		return p.ARN
	}
	account := "000000000000"
	if rec := RegionRecord(txn); rec != nil {
		account = rec.AccountID
	}
	return IAMARN(account, "policy", "/", name)
}

// Queries.

func iamAll[T any](txn *memdb.Txn, table, index string, args ...any) ([]*T, error) {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, err
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out, nil
}

func iamFirst[T any](txn *memdb.Txn, table, name string) (*T, error) {
	raw, err := txn.First(table, "id", name)
	if raw == nil || err != nil {
		return nil, err
	}
	return raw.(*T), nil
}

// Users returns every user, by name.
func Users(txn *memdb.Txn) ([]*User, error) { return iamAll[User](txn, tableUsers, "id") }

// UserByName returns the user with the name, or nil.
func UserByName(txn *memdb.Txn, name string) (*User, error) {
	return iamFirst[User](txn, tableUsers, name)
}

// Groups returns every group, by name.
func Groups(txn *memdb.Txn) ([]*Group, error) { return iamAll[Group](txn, tableGroups, "id") }

// GroupByName returns the group with the name, or nil.
func GroupByName(txn *memdb.Txn, name string) (*Group, error) {
	return iamFirst[Group](txn, tableGroups, name)
}

// Policies returns every managed policy, by name.
func Policies(txn *memdb.Txn) ([]*ManagedPolicy, error) {
	return iamAll[ManagedPolicy](txn, tablePolicies, "id")
}

// PolicyByName returns the managed policy with the name, or nil.
func PolicyByName(txn *memdb.Txn, name string) (*ManagedPolicy, error) {
	return iamFirst[ManagedPolicy](txn, tablePolicies, name)
}

// GroupMembers returns the users in a group, by name.
func GroupMembers(txn *memdb.Txn, group string) ([]*User, error) {
	return iamAll[User](txn, tableUsers, "group", group)
}

// UserAccessKeys returns a user's access keys, by id.
func UserAccessKeys(txn *memdb.Txn, user string) ([]*AccessKey, error) {
	keys, err := iamAll[AccessKey](txn, tableAccessKeys, "user", user)
	slices.SortFunc(keys, func(a, b *AccessKey) int {
		if a.AccessKeyID < b.AccessKeyID {
			return -1
		}
		return 1
	})
	return keys, err
}

// PolicyAttachments returns the users and the groups a policy is attached
// to, by name.
func PolicyAttachments(txn *memdb.Txn, policy string) (users []*User, groups []*Group, err error) {
	if users, err = iamAll[User](txn, tableUsers, "policy", policy); err != nil {
		return nil, nil, err
	}
	groups, err = iamAll[Group](txn, tableGroups, "policy", policy)
	return users, groups, err
}

// CallerPolicies returns the documents of the managed policies that apply
// to a user: those attached to it, then those attached to its groups (in
// group name order), each once. An unknown user has none.
func CallerPolicies(txn *memdb.Txn, userName string) []string {
	u, err := UserByName(txn, userName)
	if err != nil || u == nil {
		return nil
	}
	names := slices.Clone(u.Policies)
	for _, g := range u.Groups {
		if grp, _ := GroupByName(txn, g); grp != nil {
			names = append(names, grp.Policies...)
		}
	}
	var docs []string
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		if p, _ := PolicyByName(txn, n); p != nil {
			docs = append(docs, p.Document)
		}
	}
	return docs
}
