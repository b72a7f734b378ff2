package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/hashicorp/go-memdb"
	"github.com/labstack/echo/v4"
)

// The IAM admin endpoints, for `coffer iam …` (docs/iam.md). Each is
// SigV4-signed (signing name "coffer") and authorized through
// authenticateAdmin with its coffer: action name. JSON in and out; errors
// in the admin API's shape ({"__type", "Message"}) with IAM's codes.
// Writes go through Raft (linearizable); reads read the local state after
// a read index.
//
//	GET  /v1/iam/users                 coffer:ListUsers
//	POST /v1/iam/users                 coffer:CreateUser        {"name", "path"}
//	GET  /v1/iam/user?name=            coffer:GetUser           groups, policies, keys (no secrets)
//	POST /v1/iam/user/delete           coffer:DeleteUser        {"name"}
//	POST /v1/iam/keys                  coffer:CreateAccessKey   {"user"}: the only answer with the secret
//	GET  /v1/iam/keys?user=            coffer:ListAccessKeys
//	POST /v1/iam/key/update            coffer:UpdateAccessKey   {"access_key_id", "status": "Active"|"Inactive"}
//	POST /v1/iam/key/delete            coffer:DeleteAccessKey   {"access_key_id"}
//	GET  /v1/iam/groups                coffer:ListGroups
//	POST /v1/iam/groups                coffer:CreateGroup       {"name", "path"}
//	GET  /v1/iam/group?name=           coffer:GetGroup          members, policies
//	POST /v1/iam/group/delete          coffer:DeleteGroup       {"name"}
//	POST /v1/iam/group/add-user        coffer:AddUserToGroup    {"group", "user"}
//	POST /v1/iam/group/remove-user     coffer:RemoveUserFromGroup
//	GET  /v1/iam/policies              coffer:ListPolicies
//	POST /v1/iam/policies              coffer:CreatePolicy      {"name", "path", "description", "document"}
//	GET  /v1/iam/policy?name=          coffer:GetPolicy
//	POST /v1/iam/policy/update         coffer:UpdatePolicy      {"name", "document"}
//	POST /v1/iam/policy/delete         coffer:DeletePolicy      {"name"}
//	POST /v1/iam/policy/attach         coffer:AttachUserPolicy | coffer:AttachGroupPolicy  {"policy", "user" | "group"}
//	POST /v1/iam/policy/detach         coffer:DetachUserPolicy | coffer:DetachGroupPolicy

func (s *Server) iamRoutes(e *echo.Echo, mw ...echo.MiddlewareFunc) {
	e.GET("/v1/iam/users", s.handleListUsers, mw...)
	e.POST("/v1/iam/users", s.handleCreateUser, mw...)
	e.GET("/v1/iam/user", s.handleGetUser, mw...)
	e.POST("/v1/iam/user/delete", s.handleDeleteUser, mw...)
	e.POST("/v1/iam/keys", s.handleCreateAccessKey, mw...)
	e.GET("/v1/iam/keys", s.handleListAccessKeys, mw...)
	e.POST("/v1/iam/key/update", s.handleUpdateAccessKey, mw...)
	e.POST("/v1/iam/key/delete", s.handleDeleteAccessKey, mw...)
	e.GET("/v1/iam/groups", s.handleListGroups, mw...)
	e.POST("/v1/iam/groups", s.handleCreateGroup, mw...)
	e.GET("/v1/iam/group", s.handleGetGroup, mw...)
	e.POST("/v1/iam/group/delete", s.handleDeleteGroup, mw...)
	e.POST("/v1/iam/group/add-user", s.handleGroupMembership(true), mw...)
	e.POST("/v1/iam/group/remove-user", s.handleGroupMembership(false), mw...)
	e.GET("/v1/iam/policies", s.handleListPolicies, mw...)
	e.POST("/v1/iam/policies", s.handleCreatePolicy, mw...)
	e.GET("/v1/iam/policy", s.handleGetPolicy, mw...)
	e.POST("/v1/iam/policy/update", s.handleUpdatePolicy, mw...)
	e.POST("/v1/iam/policy/delete", s.handleDeletePolicy, mw...)
	e.POST("/v1/iam/policy/attach", s.handleAttachment(true), mw...)
	e.POST("/v1/iam/policy/detach", s.handleAttachment(false), mw...)
}

type iamRequest struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Description string `json:"description"`
	Document    string `json:"document"`
	User        string `json:"user"`
	Group       string `json:"group"`
	Policy      string `json:"policy"`
	AccessKeyID string `json:"access_key_id"`
	Status      string `json:"status"`
}

// UserInfo is an IAM user as the admin API shows it; AccessKeys only in
// GET /v1/iam/user.
type UserInfo struct {
	Name        string          `json:"name"`
	UserID      string          `json:"user_id"`
	Path        string          `json:"path"`
	ARN         string          `json:"arn"`
	CreatedDate int64           `json:"created_date"`
	Groups      []string        `json:"groups"`
	Policies    []string        `json:"policies"`
	AccessKeys  []AccessKeyInfo `json:"access_keys,omitempty"`
}

// AccessKeyInfo is an access key without its secret.
type AccessKeyInfo struct {
	AccessKeyID  string `json:"access_key_id"`
	User         string `json:"user"`
	Status       string `json:"status"`
	CreatedDate  int64  `json:"created_date"`
	LastUsedDate int64  `json:"last_used_date,omitempty"`
}

// NewAccessKey is POST /v1/iam/keys's answer: the one time the secret
// is shown.
type NewAccessKey struct {
	AccessKeyInfo
	SecretAccessKey string `json:"secret_access_key"`
}

// GroupInfo is an IAM group with its members.
type GroupInfo struct {
	Name        string   `json:"name"`
	GroupID     string   `json:"group_id"`
	Path        string   `json:"path"`
	ARN         string   `json:"arn"`
	CreatedDate int64    `json:"created_date"`
	Policies    []string `json:"policies"`
	Members     []string `json:"members"`
}

// PolicyInfo is a customer managed policy and where it is attached.
type PolicyInfo struct {
	Name           string   `json:"name"`
	PolicyID       string   `json:"policy_id"`
	Path           string   `json:"path"`
	ARN            string   `json:"arn"`
	Description    string   `json:"description,omitempty"`
	Document       string   `json:"document"`
	CreatedDate    int64    `json:"created_date"`
	UpdatedDate    int64    `json:"updated_date"`
	AttachedUsers  []string `json:"attached_users"`
	AttachedGroups []string `json:"attached_groups"`
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

func userInfo(u *fsm.User) UserInfo {
	return UserInfo{Name: u.Name, UserID: u.UserID, Path: u.Path, ARN: u.ARN, CreatedDate: u.CreatedDate,
		Groups: orEmpty(u.Groups), Policies: orEmpty(u.Policies)}
}

func keyInfo(k *fsm.AccessKey) AccessKeyInfo {
	return AccessKeyInfo{AccessKeyID: k.AccessKeyID, User: k.UserName, Status: k.StatusName(), CreatedDate: k.CreatedDate,
		LastUsedDate: k.LastUsedDate}
}

func stateError(err error) error {
	return apierr.Newf(apierr.InternalServiceError, "state store: %v", err)
}

func noSuchUser(name string) error {
	return apierr.Newf(apierr.NoSuchEntity, "The user with name %s cannot be found.", name)
}

func noSuchGroup(name string) error {
	return apierr.Newf(apierr.NoSuchEntity, "The group with name %s cannot be found.", name)
}

// identityPolicyProblems lists what is wrong with an identity policy
// document (nil: nothing): IAM's size limit for a managed policy, then
// the policy language as acl.ParseIdentityPolicy reads it, so a document
// stored here is one authorization can evaluate.
func identityPolicyProblems(doc string) []string {
	if n := len([]rune(doc)); n > fsm.MaxPolicyDocument {
		return []string{fmt.Sprintf("The policy is %d characters long; a managed policy may have at most %d.", n, fsm.MaxPolicyDocument)}
	}
	_, problems, err := acl.ParseIdentityPolicy(doc)
	if err != nil {
		return []string{"The policy must be a JSON object."}
	}
	return problems
}

func checkPolicyDocument(doc string) error {
	if p := identityPolicyProblems(doc); len(p) > 0 {
		return apierr.New(apierr.IAMMalformedPolicyDocument, "Syntax errors in policy. "+strings.Join(p, " "))
	}
	return nil
}

// iamCall reads and authenticates an IAM call for action and decodes its
// body. action may depend on the body (attach and detach name the user
// or the group): it is then chosen from the body decoded first, and a
// body that does not decode is refused after authentication.
func (s *Server) iamCall(c echo.Context, action func(*iamRequest) string) (Region, *iamRequest, error) {
	body, err := s.readBody(c)
	if err != nil {
		return nil, nil, err
	}
	var req iamRequest
	var decodeErr error
	if len(body) > 0 {
		decodeErr = json.Unmarshal(body, &req)
	}
	r, _, err := s.authenticateAdmin(c, body, action(&req))
	if err != nil {
		return nil, nil, err
	}
	if decodeErr != nil {
		return nil, nil, apierr.Newf(apierr.Serialization, "the body must be a JSON object: %v", decodeErr)
	}
	return r, &req, nil
}

func named(action string) func(*iamRequest) string { return func(*iamRequest) string { return action } }

// iamRead is a read transaction after a read index.
func iamRead(c echo.Context, r Region) (*memdb.Txn, error) {
	txn, _, err := r.Read(c.Request().Context(), false)
	return txn, err
}

func (s *Server) handleListUsers(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:ListUsers"))
	if err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	users, err := fsm.Users(txn)
	if err != nil {
		return writeError(c, stateError(err))
	}
	out := make([]UserInfo, 0, len(users))
	for _, u := range users {
		out = append(out, userInfo(u))
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out})
}

func (s *Server) handleCreateUser(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:CreateUser"))
	if err != nil {
		return writeError(c, err)
	}
	u, err := r.CreateUser(c.Request().Context(), req.Name, req.Path)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, userInfo(u))
}

func (s *Server) handleGetUser(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:GetUser"))
	if err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	name := c.QueryParam("name")
	u, err := fsm.UserByName(txn, name)
	if err != nil {
		return writeError(c, stateError(err))
	}
	if u == nil {
		return writeError(c, noSuchUser(name))
	}
	info := userInfo(u)
	keys, err := fsm.UserAccessKeys(txn, name)
	if err != nil {
		return writeError(c, stateError(err))
	}
	info.AccessKeys = []AccessKeyInfo{}
	for _, k := range keys {
		info.AccessKeys = append(info.AccessKeys, keyInfo(k))
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) handleDeleteUser(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:DeleteUser"))
	if err != nil {
		return writeError(c, err)
	}
	if err := r.DeleteUser(c.Request().Context(), req.Name); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": req.Name})
}

func (s *Server) handleCreateAccessKey(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:CreateAccessKey"))
	if err != nil {
		return writeError(c, err)
	}
	creds, err := r.CreateAccessKey(c.Request().Context(), req.User)
	if err != nil {
		return writeError(c, err)
	}
	out := NewAccessKey{AccessKeyInfo: AccessKeyInfo{AccessKeyID: creds.AccessKeyID, User: req.User, Status: fsm.StatusActive},
		SecretAccessKey: creds.SecretAccessKey}
	if txn, err := iamRead(c, r); err == nil {
		if k := fsm.LookupAccessKey(txn, creds.AccessKeyID); k != nil {
			out.AccessKeyInfo = keyInfo(k)
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleListAccessKeys(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:ListAccessKeys"))
	if err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	name := c.QueryParam("user")
	if u, err := fsm.UserByName(txn, name); err != nil {
		return writeError(c, stateError(err))
	} else if u == nil {
		return writeError(c, noSuchUser(name))
	}
	keys, err := fsm.UserAccessKeys(txn, name)
	if err != nil {
		return writeError(c, stateError(err))
	}
	out := make([]AccessKeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyInfo(k))
	}
	return c.JSON(http.StatusOK, map[string]any{"access_keys": out})
}

func (s *Server) handleUpdateAccessKey(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:UpdateAccessKey"))
	if err != nil {
		return writeError(c, err)
	}
	if err := r.UpdateAccessKey(c.Request().Context(), req.AccessKeyID, req.Status); err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	k := fsm.LookupAccessKey(txn, req.AccessKeyID)
	if k == nil {
		return writeError(c, apierr.Newf(apierr.NoSuchEntity, "The Access Key with id %s cannot be found.", req.AccessKeyID))
	}
	return c.JSON(http.StatusOK, keyInfo(k))
}

func (s *Server) handleDeleteAccessKey(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:DeleteAccessKey"))
	if err != nil {
		return writeError(c, err)
	}
	if err := r.DeleteAccessKey(c.Request().Context(), req.AccessKeyID); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": req.AccessKeyID})
}

func groupInfo(txn *memdb.Txn, g *fsm.Group) (GroupInfo, error) {
	info := GroupInfo{Name: g.Name, GroupID: g.GroupID, Path: g.Path, ARN: g.ARN, CreatedDate: g.CreatedDate,
		Policies: orEmpty(g.Policies), Members: []string{}}
	members, err := fsm.GroupMembers(txn, g.Name)
	for _, m := range members {
		info.Members = append(info.Members, m.Name)
	}
	return info, err
}

func (s *Server) handleListGroups(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:ListGroups"))
	if err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	groups, err := fsm.Groups(txn)
	if err != nil {
		return writeError(c, stateError(err))
	}
	out := make([]GroupInfo, 0, len(groups))
	for _, g := range groups {
		info, err := groupInfo(txn, g)
		if err != nil {
			return writeError(c, stateError(err))
		}
		out = append(out, info)
	}
	return c.JSON(http.StatusOK, map[string]any{"groups": out})
}

func (s *Server) handleCreateGroup(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:CreateGroup"))
	if err != nil {
		return writeError(c, err)
	}
	g, err := r.CreateGroup(c.Request().Context(), req.Name, req.Path)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, GroupInfo{Name: g.Name, GroupID: g.GroupID, Path: g.Path, ARN: g.ARN, CreatedDate: g.CreatedDate,
		Policies: []string{}, Members: []string{}})
}

// describeGroup answers with a group as the local state shows it after a
// read index.
func (s *Server) describeGroup(c echo.Context, r Region, name string) error {
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	g, err := fsm.GroupByName(txn, name)
	if err != nil {
		return writeError(c, stateError(err))
	}
	if g == nil {
		return writeError(c, noSuchGroup(name))
	}
	info, err := groupInfo(txn, g)
	if err != nil {
		return writeError(c, stateError(err))
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) handleGetGroup(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:GetGroup"))
	if err != nil {
		return writeError(c, err)
	}
	return s.describeGroup(c, r, c.QueryParam("name"))
}

func (s *Server) handleDeleteGroup(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:DeleteGroup"))
	if err != nil {
		return writeError(c, err)
	}
	if err := r.DeleteGroup(c.Request().Context(), req.Name); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": req.Name})
}

func (s *Server) handleGroupMembership(add bool) echo.HandlerFunc {
	action := "coffer:RemoveUserFromGroup"
	if add {
		action = "coffer:AddUserToGroup"
	}
	return func(c echo.Context) error {
		r, req, err := s.iamCall(c, named(action))
		if err != nil {
			return writeError(c, err)
		}
		ctx := c.Request().Context()
		if add {
			err = r.AddUserToGroup(ctx, req.User, req.Group)
		} else {
			err = r.RemoveUserFromGroup(ctx, req.User, req.Group)
		}
		if err != nil {
			return writeError(c, err)
		}
		return s.describeGroup(c, r, req.Group)
	}
}

func policyInfo(txn *memdb.Txn, p *fsm.ManagedPolicy) (PolicyInfo, error) {
	info := PolicyInfo{Name: p.Name, PolicyID: p.PolicyID, Path: p.Path, ARN: p.ARN, Description: p.Description, Document: p.Document,
		CreatedDate: p.CreatedDate, UpdatedDate: p.UpdatedDate, AttachedUsers: []string{}, AttachedGroups: []string{}}
	users, groups, err := fsm.PolicyAttachments(txn, p.Name)
	for _, u := range users {
		info.AttachedUsers = append(info.AttachedUsers, u.Name)
	}
	for _, g := range groups {
		info.AttachedGroups = append(info.AttachedGroups, g.Name)
	}
	return info, err
}

func (s *Server) handleListPolicies(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:ListPolicies"))
	if err != nil {
		return writeError(c, err)
	}
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	policies, err := fsm.Policies(txn)
	if err != nil {
		return writeError(c, stateError(err))
	}
	out := make([]PolicyInfo, 0, len(policies))
	for _, p := range policies {
		info, err := policyInfo(txn, p)
		if err != nil {
			return writeError(c, stateError(err))
		}
		out = append(out, info)
	}
	return c.JSON(http.StatusOK, map[string]any{"policies": out})
}

func (s *Server) handleCreatePolicy(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:CreatePolicy"))
	if err != nil {
		return writeError(c, err)
	}
	if e := fsm.ValidateIAMName("policyName", req.Name, 128); e != nil {
		return writeError(c, e)
	}
	if err := checkPolicyDocument(req.Document); err != nil {
		return writeError(c, err)
	}
	p, err := r.CreatePolicy(c.Request().Context(), req.Name, req.Path, req.Description, req.Document)
	if err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, PolicyInfo{Name: p.Name, PolicyID: p.PolicyID, Path: p.Path, ARN: p.ARN, Description: p.Description,
		Document: p.Document, CreatedDate: p.CreatedDate, UpdatedDate: p.UpdatedDate, AttachedUsers: []string{}, AttachedGroups: []string{}})
}

// describePolicy answers with a policy as the local state shows it after
// a read index.
func (s *Server) describePolicy(c echo.Context, r Region, name string) error {
	txn, err := iamRead(c, r)
	if err != nil {
		return writeError(c, err)
	}
	p, err := fsm.PolicyByName(txn, name)
	if err != nil {
		return writeError(c, stateError(err))
	}
	if p == nil {
		return writeError(c, apierr.Newf(apierr.NoSuchEntity, "Policy %s was not found.", fsm.IAMARN(r.AccountID(), "policy", "/", name)))
	}
	info, err := policyInfo(txn, p)
	if err != nil {
		return writeError(c, stateError(err))
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) handleGetPolicy(c echo.Context) error {
	r, _, err := s.iamCall(c, named("coffer:GetPolicy"))
	if err != nil {
		return writeError(c, err)
	}
	return s.describePolicy(c, r, c.QueryParam("name"))
}

func (s *Server) handleUpdatePolicy(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:UpdatePolicy"))
	if err != nil {
		return writeError(c, err)
	}
	if err := checkPolicyDocument(req.Document); err != nil {
		return writeError(c, err)
	}
	if err := r.UpdatePolicy(c.Request().Context(), req.Name, req.Document); err != nil {
		return writeError(c, err)
	}
	return s.describePolicy(c, r, req.Name)
}

func (s *Server) handleDeletePolicy(c echo.Context) error {
	r, req, err := s.iamCall(c, named("coffer:DeletePolicy"))
	if err != nil {
		return writeError(c, err)
	}
	if err := r.DeletePolicy(c.Request().Context(), req.Name); err != nil {
		return writeError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"deleted": req.Name})
}

func (s *Server) handleAttachment(attach bool) echo.HandlerFunc {
	verb := "Detach"
	if attach {
		verb = "Attach"
	}
	action := func(req *iamRequest) string {
		if req.Group != "" && req.User == "" {
			return "coffer:" + verb + "GroupPolicy"
		}
		return "coffer:" + verb + "UserPolicy"
	}
	return func(c echo.Context) error {
		r, req, err := s.iamCall(c, action)
		if err != nil {
			return writeError(c, err)
		}
		if (req.User == "") == (req.Group == "") {
			return writeError(c, apierr.New(apierr.ValidationError, "Name exactly one of a user and a group."))
		}
		ctx := c.Request().Context()
		if attach {
			err = r.AttachPolicy(ctx, req.User, req.Group, req.Policy)
		} else {
			err = r.DetachPolicy(ctx, req.User, req.Group, req.Policy)
		}
		if err != nil {
			return writeError(c, err)
		}
		return s.describePolicy(c, r, req.Policy)
	}
}
