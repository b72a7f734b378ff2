package region

import (
	"cmp"
	"context"
	"sync"

	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
)

// IAM identities (docs/iam.md): users, groups, customer managed policies
// and users' access keys, all Raft state of the region. Each change is
// validated here, built with everything random or timed decided on this
// node (ids, ARNs, dates, the sealed secret), and applied through Raft;
// the FSM re-checks it against the state and refuses with IAM's code and
// wording. Reads are the admin API's (fsm's queries on a read
// transaction).

// usableKey is the access key with the id if it may sign requests: it
// exists, is active, and its user (for a user's key) still exists.
func usableKey(txn *memdb.Txn, id string) *fsm.AccessKey {
	ak := fsm.LookupAccessKey(txn, id)
	if ak == nil || !ak.Active() {
		return nil
	}
	if ak.UserName != "" {
		if u, err := fsm.UserByName(txn, ak.UserName); err != nil || u == nil {
			return nil
		}
	}
	return ak
}

func (r *Region) iamARN(kind, path, name string) string {
	return fsm.IAMARN(r.cfg.AccountID, kind, path, name)
}

// apply applies one IAM command and drops its result.
func (r *Region) applyIAM(ctx context.Context, t fsm.CommandType, cmd any) error {
	_, _, err := r.Apply(ctx, t, cmd)
	return err
}

// CreateUser creates an IAM user; path "" is "/".
func (r *Region) CreateUser(ctx context.Context, name, path string) (*fsm.User, error) {
	path = cmp.Or(path, "/")
	if e := fsm.ValidateIAMName("userName", name, 64); e != nil {
		return nil, e
	}
	if e := fsm.ValidateIAMPath(path); e != nil {
		return nil, e
	}
	u := fsm.User{Name: name, UserID: "AIDA" + randomString(16, idAlphabet), Path: path, ARN: r.iamARN("user", path, name)}
	date := r.Now().UnixMilli()
	if err := r.applyIAM(ctx, fsm.CmdCreateUser, &fsm.CreateUser{User: u, Date: date}); err != nil {
		return nil, err
	}
	u.CreatedDate = date
	return &u, nil
}

// DeleteUser deletes a user without access keys, groups or policies.
func (r *Region) DeleteUser(ctx context.Context, name string) error {
	return r.applyIAM(ctx, fsm.CmdDeleteUser, &fsm.DeleteUser{Name: name})
}

// CreateGroup creates an IAM group; path "" is "/".
func (r *Region) CreateGroup(ctx context.Context, name, path string) (*fsm.Group, error) {
	path = cmp.Or(path, "/")
	if e := fsm.ValidateIAMName("groupName", name, 64); e != nil {
		return nil, e
	}
	if e := fsm.ValidateIAMPath(path); e != nil {
		return nil, e
	}
	g := fsm.Group{Name: name, GroupID: "AGPA" + randomString(16, idAlphabet), Path: path, ARN: r.iamARN("group", path, name)}
	date := r.Now().UnixMilli()
	if err := r.applyIAM(ctx, fsm.CmdCreateGroup, &fsm.CreateGroup{Group: g, Date: date}); err != nil {
		return nil, err
	}
	g.CreatedDate = date
	return &g, nil
}

// DeleteGroup deletes a group without members or policies.
func (r *Region) DeleteGroup(ctx context.Context, name string) error {
	return r.applyIAM(ctx, fsm.CmdDeleteGroup, &fsm.DeleteGroup{Name: name})
}

// AddUserToGroup makes a user a member of a group.
func (r *Region) AddUserToGroup(ctx context.Context, user, group string) error {
	return r.applyIAM(ctx, fsm.CmdAddUserToGroup, &fsm.AddUserToGroup{UserName: user, GroupName: group})
}

// RemoveUserFromGroup takes a user out of a group.
func (r *Region) RemoveUserFromGroup(ctx context.Context, user, group string) error {
	return r.applyIAM(ctx, fsm.CmdRemoveUserFromGroup, &fsm.RemoveUserFromGroup{UserName: user, GroupName: group})
}

// CreatePolicy creates a customer managed policy; the caller has checked
// the document (server's identityPolicyProblems).
func (r *Region) CreatePolicy(ctx context.Context, name, path, description, document string) (*fsm.ManagedPolicy, error) {
	path = cmp.Or(path, "/")
	if e := fsm.ValidateIAMName("policyName", name, 128); e != nil {
		return nil, e
	}
	if e := fsm.ValidateIAMPath(path); e != nil {
		return nil, e
	}
	p := fsm.ManagedPolicy{Name: name, PolicyID: "ANPA" + randomString(16, idAlphabet), Path: path,
		ARN: r.iamARN("policy", path, name), Description: description, Document: document}
	date := r.Now().UnixMilli()
	if err := r.applyIAM(ctx, fsm.CmdCreatePolicy, &fsm.CreatePolicy{Policy: p, Date: date}); err != nil {
		return nil, err
	}
	p.CreatedDate, p.UpdatedDate = date, date
	return &p, nil
}

// UpdatePolicy replaces a policy's document.
func (r *Region) UpdatePolicy(ctx context.Context, name, document string) error {
	return r.applyIAM(ctx, fsm.CmdUpdatePolicy, &fsm.UpdatePolicy{Name: name, Document: document, Date: r.Now().UnixMilli()})
}

// DeletePolicy deletes a policy attached to nothing.
func (r *Region) DeletePolicy(ctx context.Context, name string) error {
	return r.applyIAM(ctx, fsm.CmdDeletePolicy, &fsm.DeletePolicy{Name: name})
}

// AttachPolicy attaches a policy to a user or (user "") a group.
func (r *Region) AttachPolicy(ctx context.Context, user, group, policy string) error {
	return r.applyIAM(ctx, fsm.CmdAttachPolicy, &fsm.AttachPolicy{UserName: user, GroupName: group, PolicyName: policy})
}

// DetachPolicy detaches a policy from a user or (user "") a group.
func (r *Region) DetachPolicy(ctx context.Context, user, group, policy string) error {
	return r.applyIAM(ctx, fsm.CmdDetachPolicy, &fsm.DetachPolicy{UserName: user, GroupName: group, PolicyName: policy})
}

// CreateAccessKey gives a user a new access key pair: the secret half is
// sealed as every access key is (sealAccessKey) and only the sealed form
// enters the log; the pair is returned once, to be shown once.
func (r *Region) CreateAccessKey(ctx context.Context, user string) (Credentials, error) {
	kr, err := r.Keyring()
	if err != nil {
		return Credentials{}, err
	}
	creds := GenerateCredentials()
	sealed, err := sealAccessKey(kr, creds.AccessKeyID, []byte(creds.SecretAccessKey))
	if err != nil {
		return Credentials{}, err
	}
	err = r.applyIAM(ctx, fsm.CmdCreateAccessKey, &fsm.CreateAccessKey{UserName: user, AccessKeyID: creds.AccessKeyID,
		SealedSecret: sealed, KEKID: kr.KEKID, CreatedDate: r.Now().UnixMilli()})
	if err != nil {
		return Credentials{}, err
	}
	return creds, nil
}

// UpdateAccessKey sets a user key's status, Active or Inactive.
func (r *Region) UpdateAccessKey(ctx context.Context, id, status string) error {
	return r.applyIAM(ctx, fsm.CmdUpdateAccessKey, &fsm.UpdateAccessKey{AccessKeyID: id, Status: status})
}

// DeleteAccessKey deletes a user's access key.
func (r *Region) DeleteAccessKey(ctx context.Context, id string) error {
	return r.applyIAM(ctx, fsm.CmdDeleteAccessKey, &fsm.DeleteAccessKey{AccessKeyID: id})
}

// Caller is an authenticated identity as authorization sees it.
type Caller struct {
	Identity string
	// ARN is the user's ARN, or arn:aws:iam::ACCOUNT:root for the root
	// identity, whose UserID is the account.
	ARN      string
	UserID   string
	UserName string
	Account  string
	Root     bool
	// Policies are the documents of the managed policies that apply to a
	// user (fsm.CallerPolicies).
	Policies []string
}

// IdentityGeneration moves when users, groups or policies change (read it
// before Caller: what is derived from a Caller stays valid while it does
// not move).
func (r *Region) IdentityGeneration() uint64 { return r.fsm.IdentityGeneration() }

// Caller describes an identity (AccessKey's) from local state, without a
// round trip; false if there is no such identity.
func (r *Region) Caller(identity string) (Caller, bool) {
	account := r.cfg.AccountID
	if identity == RootIdentity {
		return Caller{Identity: identity, ARN: "arn:aws:iam::" + account + ":root", UserID: account, Account: account, Root: true}, true
	}
	txn, _ := r.fsm.ReadTxn()
	u, err := fsm.UserByName(txn, identity)
	if err != nil || u == nil {
		return Caller{}, false
	}
	return Caller{Identity: identity, ARN: u.ARN, UserID: u.UserID, UserName: u.Name, Account: account,
		Policies: fsm.CallerPolicies(txn, u.Name)}, true
}

// Last use of user keys. A request that authenticates with a user's key
// is noted in memory (NoteKeyUse: no Raft write on the request path); the
// access flusher (access.go) sends the notes with LastAccessedDate's, as
// RecordKeyUse commands, every AccessFlushInterval.

// keyUseBatch bounds the keys one RecordKeyUse carries.
const keyUseBatch = 500

type keyUses struct {
	mu   sync.Mutex
	last map[string]int64
}

// NoteKeyUse notes that a request authenticated with access key id now.
// The root key's use is not recorded.
func (r *Region) NoteKeyUse(id string) {
	txn, _ := r.fsm.ReadTxn()
	ak := fsm.LookupAccessKey(txn, id)
	if ak == nil || ak.UserName == "" {
		return
	}
	now := r.Now().UnixMilli()
	r.keyUse.mu.Lock()
	defer r.keyUse.mu.Unlock()
	if r.keyUse.last == nil {
		r.keyUse.last = map[string]int64{}
	}
	r.keyUse.last[id] = max(r.keyUse.last[id], now)
}

// take empties the notes and returns them as commands, keys sorted.
func (k *keyUses) take() []*fsm.RecordKeyUse {
	k.mu.Lock()
	last := k.last
	k.last = nil
	k.mu.Unlock()
	var out []*fsm.RecordKeyUse
	for _, id := range slicesSortedKeys(last) {
		if len(out) == 0 || len(out[len(out)-1].Uses) == keyUseBatch {
			out = append(out, &fsm.RecordKeyUse{})
		}
		c := out[len(out)-1]
		c.Uses = append(c.Uses, fsm.KeyUse{AccessKeyID: id, Date: last[id]})
	}
	return out
}

// putBack keeps commands that were not applied for the next flush.
func (k *keyUses) putBack(cmds []*fsm.RecordKeyUse) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil {
		k.last = map[string]int64{}
	}
	for _, c := range cmds {
		for _, u := range c.Uses {
			k.last[u.AccessKeyID] = max(k.last[u.AccessKeyID], u.Date)
		}
	}
}

// flushKeyUse sends the notes of key use; the caller holds the access
// flusher's semaphore.
func (r *Region) flushKeyUse(ctx context.Context) error {
	cmds := r.keyUse.take()
	for i, c := range cmds {
		if _, _, err := r.Apply(ctx, fsm.CmdRecordKeyUse, c); err != nil {
			r.keyUse.putBack(cmds[i:])
			return err
		}
	}
	return nil
}
