package fsm

import (
	"slices"

	"github.com/cofferhq/coffer/apierr"
	"github.com/hashicorp/go-memdb"
)

// IAM commands (iam.go, docs/iam.md). Each is checked whole against the
// state in its transaction: a refusal (IAM's code and wording) changes
// nothing.
const (
	CmdCreateUser          CommandType = 36
	CmdDeleteUser          CommandType = 37
	CmdCreateGroup         CommandType = 38
	CmdDeleteGroup         CommandType = 39
	CmdAddUserToGroup      CommandType = 40
	CmdRemoveUserFromGroup CommandType = 41
	CmdCreatePolicy        CommandType = 42
	CmdUpdatePolicy        CommandType = 43
	CmdDeletePolicy        CommandType = 44
	CmdAttachPolicy        CommandType = 45
	CmdDetachPolicy        CommandType = 46
	CmdCreateAccessKey     CommandType = 47
	CmdUpdateAccessKey     CommandType = 48
	CmdDeleteAccessKey     CommandType = 49
	CmdRecordKeyUse        CommandType = 50
)

// changesIdentities reports whether a command changes what authorization
// reads of a caller (FSM.IdentityGeneration): users, groups, policies and
// their attachments. Access keys are looked up afresh on every request,
// and key use changes nothing authorization reads.
func changesIdentities(t CommandType) bool {
	return t >= CmdCreateUser && t <= CmdDetachPolicy
}

// CreateUser adds a user (its Groups and Policies are ignored: a new user
// has none). Date is its CreatedDate.
type CreateUser struct {
	User User
	Date int64
}

// DeleteUser removes a user that has no access keys, groups or attached
// policies left.
type DeleteUser struct {
	Name string
}

// CreateGroup adds a group (its Policies are ignored).
type CreateGroup struct {
	Group Group
	Date  int64
}

// DeleteGroup removes a group without members or attached policies.
type DeleteGroup struct {
	Name string
}

// AddUserToGroup makes a user a member of a group; a member already is
// left as it is (IAM's answer is a success).
type AddUserToGroup struct {
	UserName  string
	GroupName string
}

// RemoveUserFromGroup takes a user out of a group it is in.
type RemoveUserFromGroup struct {
	UserName  string
	GroupName string
}

// CreatePolicy adds a customer managed policy; Date is its CreatedDate
// and UpdatedDate.
type CreatePolicy struct {
	Policy ManagedPolicy
	Date   int64
}

// UpdatePolicy replaces a policy's document.
type UpdatePolicy struct {
	Name     string
	Document string
	Date     int64
}

// DeletePolicy removes a policy attached to no user or group.
type DeletePolicy struct {
	Name string
}

// AttachPolicy attaches a policy to a user (UserName) or a group
// (GroupName), exactly one of them; attaching it again changes nothing.
type AttachPolicy struct {
	UserName   string `codec:",omitempty"`
	GroupName  string `codec:",omitempty"`
	PolicyName string
}

// DetachPolicy detaches a policy from a user or a group.
type DetachPolicy struct {
	UserName   string `codec:",omitempty"`
	GroupName  string `codec:",omitempty"`
	PolicyName string
}

// CreateAccessKey gives a user an access key: the secret half sealed
// under the region's keyring as the root key's is (KEKID names the KEK).
type CreateAccessKey struct {
	UserName     string
	AccessKeyID  string
	SealedSecret []byte
	KEKID        string
	CreatedDate  int64
}

// UpdateAccessKey sets a user key's status: StatusActive or
// StatusInactive.
type UpdateAccessKey struct {
	AccessKeyID string
	Status      string
}

// DeleteAccessKey removes a user's access key.
type DeleteAccessKey struct {
	AccessKeyID string
}

// KeyUse is the last moment a node saw a user key authenticate a request.
type KeyUse struct {
	AccessKeyID string
	Date        int64
}

// RecordKeyUse moves the LastUsedDate of user keys forward to the dates
// a node saw them used (a batch of its notes). A key that is gone, or
// already shows a later date, is left alone; the command is never
// refused.
type RecordKeyUse struct {
	Uses []KeyUse
}

func init() {
	register(CmdCreateUser, "CreateUser", applyCreateUser)
	register(CmdDeleteUser, "DeleteUser", applyDeleteUser)
	register(CmdCreateGroup, "CreateGroup", applyCreateGroup)
	register(CmdDeleteGroup, "DeleteGroup", applyDeleteGroup)
	register(CmdAddUserToGroup, "AddUserToGroup", applyAddUserToGroup)
	register(CmdRemoveUserFromGroup, "RemoveUserFromGroup", applyRemoveUserFromGroup)
	register(CmdCreatePolicy, "CreatePolicy", applyCreatePolicy)
	register(CmdUpdatePolicy, "UpdatePolicy", applyUpdatePolicy)
	register(CmdDeletePolicy, "DeletePolicy", applyDeletePolicy)
	register(CmdAttachPolicy, "AttachPolicy", applyAttachPolicy)
	register(CmdDetachPolicy, "DetachPolicy", applyDetachPolicy)
	register(CmdCreateAccessKey, "CreateAccessKey", applyCreateAccessKey)
	register(CmdUpdateAccessKey, "UpdateAccessKey", applyUpdateAccessKey)
	register(CmdDeleteAccessKey, "DeleteAccessKey", applyDeleteAccessKey)
	register(CmdRecordKeyUse, "RecordKeyUse", applyRecordKeyUse)
}

// insertSorted adds s to a sorted list (a copy), unless it is there.
func insertSorted(list []string, s string) []string {
	i, found := slices.BinarySearch(list, s)
	if found {
		return list
	}
	return slices.Insert(slices.Clone(list), i, s)
}

// without removes s from a list (a copy); nil when nothing is left.
func without(list []string, s string) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
	if len(out) == 0 {
		return nil
	}
	return out
}

func applyCreateUser(txn *memdb.Txn, index uint64, c *CreateUser) any {
	u := c.User
	if e := ValidateIAMName("userName", u.Name, 64); e != nil {
		return e
	}
	if e := ValidateIAMPath(u.Path); e != nil {
		return e
	}
	if u.Name == RootUserName {
		return apierr.Newf(apierr.ValidationError, "The user name %s is reserved: it is the region's root identity.", u.Name)
	}
	old, err := UserByName(txn, u.Name)
	if err != nil {
		return internal(err)
	}
	if old != nil {
		return apierr.Newf(apierr.EntityAlreadyExists, "User with name %s already exists.", u.Name)
	}
	u.CreatedDate, u.Groups, u.Policies = c.Date, nil, nil
	if err := txn.Insert(tableUsers, &u); err != nil {
		return internal(err)
	}
	return &Result{ARN: u.ARN, Name: u.Name}
}

func applyDeleteUser(txn *memdb.Txn, index uint64, c *DeleteUser) any {
	u, err := UserByName(txn, c.Name)
	if err != nil {
		return internal(err)
	}
	if u == nil {
		return errNoSuchUser(c.Name)
	}
	keys, err := UserAccessKeys(txn, u.Name)
	if err != nil {
		return internal(err)
	}
	switch {
	case len(keys) > 0:
		return apierr.New(apierr.DeleteConflict, "Cannot delete entity, must delete access keys first.")
	case len(u.Groups) > 0:
		return apierr.New(apierr.DeleteConflict, "Cannot delete entity, must remove users from group first.")
	case len(u.Policies) > 0:
		return apierr.New(apierr.DeleteConflict, "Cannot delete entity, must detach all policies first.")
	}
	if err := txn.Delete(tableUsers, u); err != nil {
		return internal(err)
	}
	return &Result{ARN: u.ARN, Name: u.Name}
}

func applyCreateGroup(txn *memdb.Txn, index uint64, c *CreateGroup) any {
	g := c.Group
	if e := ValidateIAMName("groupName", g.Name, 64); e != nil {
		return e
	}
	if e := ValidateIAMPath(g.Path); e != nil {
		return e
	}
	old, err := GroupByName(txn, g.Name)
	if err != nil {
		return internal(err)
	}
	if old != nil {
		return apierr.Newf(apierr.EntityAlreadyExists, "Group with name %s already exists.", g.Name)
	}
	g.CreatedDate, g.Policies = c.Date, nil
	if err := txn.Insert(tableGroups, &g); err != nil {
		return internal(err)
	}
	return &Result{ARN: g.ARN, Name: g.Name}
}

func applyDeleteGroup(txn *memdb.Txn, index uint64, c *DeleteGroup) any {
	g, err := GroupByName(txn, c.Name)
	if err != nil {
		return internal(err)
	}
	if g == nil {
		return errNoSuchGroup(c.Name)
	}
	members, err := GroupMembers(txn, g.Name)
	if err != nil {
		return internal(err)
	}
	switch {
	case len(members) > 0:
		return apierr.New(apierr.DeleteConflict, "Cannot delete entity, must remove users from group first.")
	case len(g.Policies) > 0:
		return apierr.New(apierr.DeleteConflict, "Cannot delete entity, must detach all policies first.")
	}
	if err := txn.Delete(tableGroups, g); err != nil {
		return internal(err)
	}
	return &Result{ARN: g.ARN, Name: g.Name}
}

// userAndGroup finds both entities of a membership change.
func userAndGroup(txn *memdb.Txn, user, group string) (*User, *Group, *apierr.Error) {
	g, err := GroupByName(txn, group)
	if err != nil {
		return nil, nil, internal(err)
	}
	if g == nil {
		return nil, nil, errNoSuchGroup(group)
	}
	u, err := UserByName(txn, user)
	if err != nil {
		return nil, nil, internal(err)
	}
	if u == nil {
		return nil, nil, errNoSuchUser(user)
	}
	return u, g, nil
}

func applyAddUserToGroup(txn *memdb.Txn, index uint64, c *AddUserToGroup) any {
	u, g, e := userAndGroup(txn, c.UserName, c.GroupName)
	if e != nil {
		return e
	}
	if slices.Contains(u.Groups, g.Name) {
		return &Result{ARN: g.ARN, Name: g.Name}
	}
	if len(u.Groups) >= MaxGroupsPerUser {
		return apierr.Newf(apierr.IAMLimitExceeded, "Cannot exceed quota for GroupsPerUser: %d", MaxGroupsPerUser)
	}
	nu := *u
	nu.Groups = insertSorted(u.Groups, g.Name)
	if err := txn.Insert(tableUsers, &nu); err != nil {
		return internal(err)
	}
	return &Result{ARN: g.ARN, Name: g.Name}
}

func applyRemoveUserFromGroup(txn *memdb.Txn, index uint64, c *RemoveUserFromGroup) any {
	u, g, e := userAndGroup(txn, c.UserName, c.GroupName)
	if e != nil {
		return e
	}
	if !slices.Contains(u.Groups, g.Name) {
		// [unverified wording]
		return apierr.Newf(apierr.NoSuchEntity, "The user with name %s is not in the group with name %s.", u.Name, g.Name)
	}
	nu := *u
	nu.Groups = without(u.Groups, g.Name)
	if err := txn.Insert(tableUsers, &nu); err != nil {
		return internal(err)
	}
	return &Result{ARN: g.ARN, Name: g.Name}
}

func applyCreatePolicy(txn *memdb.Txn, index uint64, c *CreatePolicy) any {
	p := c.Policy
	if e := ValidateIAMName("policyName", p.Name, 128); e != nil {
		return e
	}
	if e := ValidateIAMPath(p.Path); e != nil {
		return e
	}
	old, err := PolicyByName(txn, p.Name)
	if err != nil {
		return internal(err)
	}
	if old != nil {
		return apierr.Newf(apierr.EntityAlreadyExists, "A policy called %s already exists. Duplicate names are not allowed.", p.Name)
	}
	p.CreatedDate, p.UpdatedDate = c.Date, c.Date
	if err := txn.Insert(tablePolicies, &p); err != nil {
		return internal(err)
	}
	return &Result{ARN: p.ARN, Name: p.Name}
}

func errNoSuchPolicy(txn *memdb.Txn, name string) *apierr.Error {
	return apierr.Newf(apierr.NoSuchEntity, "Policy %s was not found.", policyRef(txn, name))
}

func applyUpdatePolicy(txn *memdb.Txn, index uint64, c *UpdatePolicy) any {
	p, err := PolicyByName(txn, c.Name)
	if err != nil {
		return internal(err)
	}
	if p == nil {
		return errNoSuchPolicy(txn, c.Name)
	}
	np := *p
	np.Document, np.UpdatedDate = c.Document, max(p.UpdatedDate, c.Date)
	if err := txn.Insert(tablePolicies, &np); err != nil {
		return internal(err)
	}
	return &Result{ARN: np.ARN, Name: np.Name}
}

func applyDeletePolicy(txn *memdb.Txn, index uint64, c *DeletePolicy) any {
	p, err := PolicyByName(txn, c.Name)
	if err != nil {
		return internal(err)
	}
	if p == nil {
		return errNoSuchPolicy(txn, c.Name)
	}
	users, groups, err := PolicyAttachments(txn, p.Name)
	if err != nil {
		return internal(err)
	}
	if len(users)+len(groups) > 0 {
		return apierr.New(apierr.DeleteConflict, "Cannot delete a policy attached to entities.")
	}
	if err := txn.Delete(tablePolicies, p); err != nil {
		return internal(err)
	}
	return &Result{ARN: p.ARN, Name: p.Name}
}

// attachment finds the policy and the one entity of an attach or detach
// and returns the entity's attached policies and a function that stores
// the entity with a new list.
func attachment(txn *memdb.Txn, user, group, policy string, attach bool) (*ManagedPolicy, []string, func([]string) error, *apierr.Error) {
	if (user == "") == (group == "") {
		return nil, nil, nil, apierr.New(apierr.ValidationError, "Name exactly one of a user and a group.")
	}
	p, err := PolicyByName(txn, policy)
	if err != nil {
		return nil, nil, nil, internal(err)
	}
	if p == nil {
		if attach {
			return nil, nil, nil, apierr.Newf(apierr.NoSuchEntity, "Policy %s does not exist or is not attachable.", policyRef(txn, policy))
		}
		return nil, nil, nil, errNoSuchPolicy(txn, policy)
	}
	if user != "" {
		u, err := UserByName(txn, user)
		if err != nil {
			return nil, nil, nil, internal(err)
		}
		if u == nil {
			return nil, nil, nil, errNoSuchUser(user)
		}
		return p, u.Policies, func(list []string) error {
			nu := *u
			nu.Policies = list
			return txn.Insert(tableUsers, &nu)
		}, nil
	}
	g, err := GroupByName(txn, group)
	if err != nil {
		return nil, nil, nil, internal(err)
	}
	if g == nil {
		return nil, nil, nil, errNoSuchGroup(group)
	}
	return p, g.Policies, func(list []string) error {
		ng := *g
		ng.Policies = list
		return txn.Insert(tableGroups, &ng)
	}, nil
}

func applyAttachPolicy(txn *memdb.Txn, index uint64, c *AttachPolicy) any {
	p, list, store, e := attachment(txn, c.UserName, c.GroupName, c.PolicyName, true)
	if e != nil {
		return e
	}
	if slices.Contains(list, p.Name) {
		return &Result{ARN: p.ARN, Name: p.Name}
	}
	if len(list) >= MaxPoliciesPerEntity {
		kind := "PoliciesPerUser"
		if c.GroupName != "" {
			kind = "PoliciesPerGroup"
		}
		return apierr.Newf(apierr.IAMLimitExceeded, "Cannot exceed quota for %s: %d", kind, MaxPoliciesPerEntity)
	}
	if err := store(insertSorted(list, p.Name)); err != nil {
		return internal(err)
	}
	return &Result{ARN: p.ARN, Name: p.Name}
}

func applyDetachPolicy(txn *memdb.Txn, index uint64, c *DetachPolicy) any {
	p, list, store, e := attachment(txn, c.UserName, c.GroupName, c.PolicyName, false)
	if e != nil {
		return e
	}
	if !slices.Contains(list, p.Name) {
		return errNoSuchPolicy(txn, p.Name)
	}
	if err := store(without(list, p.Name)); err != nil {
		return internal(err)
	}
	return &Result{ARN: p.ARN, Name: p.Name}
}

func applyCreateAccessKey(txn *memdb.Txn, index uint64, c *CreateAccessKey) any {
	u, err := UserByName(txn, c.UserName)
	if err != nil {
		return internal(err)
	}
	if u == nil {
		return errNoSuchUser(c.UserName)
	}
	if c.AccessKeyID == "" || len(c.SealedSecret) == 0 {
		return apierr.New(apierr.ValidationError, "An access key needs an id and a sealed secret.")
	}
	if LookupAccessKey(txn, c.AccessKeyID) != nil {
		return apierr.Newf(apierr.EntityAlreadyExists, "Access key with id %s already exists.", c.AccessKeyID)
	}
	keys, err := UserAccessKeys(txn, u.Name)
	if err != nil {
		return internal(err)
	}
	if len(keys) >= MaxAccessKeysPerUser {
		return apierr.Newf(apierr.IAMLimitExceeded, "Cannot exceed quota for AccessKeysPerUser: %d", MaxAccessKeysPerUser)
	}
	k := &AccessKey{AccessKeyID: c.AccessKeyID, Identity: u.Name, UserName: u.Name, SealedSecret: c.SealedSecret,
		KEKID: c.KEKID, CreatedDate: c.CreatedDate}
	if err := txn.Insert(tableAccessKeys, k); err != nil {
		return internal(err)
	}
	return &Result{ARN: u.ARN, Name: k.AccessKeyID}
}

// userKey finds a user's access key; the root key is not one.
func userKey(txn *memdb.Txn, id string) (*AccessKey, *apierr.Error) {
	k := LookupAccessKey(txn, id)
	if k == nil {
		return nil, errNoSuchKey(id)
	}
	if k.UserName == "" {
		return nil, apierr.Newf(apierr.ValidationError,
			"The access key %s belongs to the region's root identity, which IAM does not manage: it cannot be updated or deleted here.", id)
	}
	return k, nil
}

func applyUpdateAccessKey(txn *memdb.Txn, index uint64, c *UpdateAccessKey) any {
	var status string
	switch c.Status {
	case StatusActive:
	case StatusInactive:
		status = StatusInactive
	default:
		return apierr.Newf(apierr.ValidationError,
			"1 validation error detected: Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", c.Status)
	}
	k, e := userKey(txn, c.AccessKeyID)
	if e != nil {
		return e
	}
	nk := *k
	nk.Status = status
	if err := txn.Insert(tableAccessKeys, &nk); err != nil {
		return internal(err)
	}
	return &Result{Name: nk.AccessKeyID}
}

func applyDeleteAccessKey(txn *memdb.Txn, index uint64, c *DeleteAccessKey) any {
	k, e := userKey(txn, c.AccessKeyID)
	if e != nil {
		return e
	}
	if err := txn.Delete(tableAccessKeys, k); err != nil {
		return internal(err)
	}
	return &Result{Name: k.AccessKeyID}
}

func applyRecordKeyUse(txn *memdb.Txn, index uint64, c *RecordKeyUse) any {
	n := 0
	for _, use := range c.Uses {
		k := LookupAccessKey(txn, use.AccessKeyID)
		if k == nil || k.UserName == "" || k.LastUsedDate >= use.Date {
			continue
		}
		nk := *k
		nk.LastUsedDate = use.Date
		if err := txn.Insert(tableAccessKeys, &nk); err != nil {
			return internal(err)
		}
		n++
	}
	return &Result{Count: n}
}
