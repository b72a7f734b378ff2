package server

import (
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/labstack/echo/v4"
)

// Authorization (docs/iam.md "How a request is authorized"): every API
// operation and every signed operator call is decided by acl.Evaluate
// before it touches state, against the caller's identity policies and,
// for a secret, the secret's resource policy, as IAM does. The caller's
// policies and the secret are read from the node's local state: a policy
// change takes effect on a node as soon as it applies it (IAM itself is
// eventually consistent).
//
// The in-process caller of the built-in rotators (Caller, as
// ServicePrincipal) is not authorized: it acts for the rotation the
// secret's configuration asked for, which an authorized RotateSecret set.

// authz is the caller of one request as authorization sees it; nil for
// the in-process service caller.
type authz struct {
	srv       *Server
	principal acl.Principal
	policies  []*acl.Policy
	// global holds the keys of the request itself: aws:SourceIp,
	// aws:SecureTransport, aws:CurrentTime, aws:EpochTime,
	// aws:RequestedRegion. Built by globals on the first decision that
	// needs a context (the root identity on a secret without a resource
	// policy never does).
	global acl.Context
	now    time.Time
	region string
	secure bool
	peer   string
}

// globals returns the request's global keys, building them once.
func (a *authz) globals() acl.Context {
	if a.global == nil {
		a.global = acl.Context{}
		a.global.Set("aws:CurrentTime", a.now.Format(time.RFC3339))
		a.global.Set("aws:EpochTime", strconv.FormatInt(a.now.Unix(), 10))
		a.global.Set("aws:SecureTransport", strconv.FormatBool(a.secure))
		a.global.Set("aws:RequestedRegion", a.region)
		if host, _, err := net.SplitHostPort(a.peer); err == nil {
			a.global.Set("aws:SourceIp", host)
		}
	}
	return a.global
}

// root reports whether the caller is the account's root identity.
func (a *authz) root() bool { return a.principal.Type == "Root" }

// authorizer builds the authz of an authenticated caller of region r.
func (s *Server) authorizer(c echo.Context, r Region, identity string) (*authz, error) {
	cc, err := s.callers.get(s, r, identity)
	if err != nil {
		return nil, err
	}
	if ev := auditOf(c); ev != nil {
		ev.principal = cc.principal
	}
	return &authz{srv: s, principal: cc.principal, policies: cc.policies,
		now: r.Now().UTC(), region: r.Name(), secure: c.Request().TLS != nil, peer: c.Request().RemoteAddr}, nil
}

// decide evaluates one action on resource ("*" or a secret's ARN; sec is
// the secret when it exists), with the request's keys, and answers
// AccessDenied naming the resource as the client sent it.
func (a *authz) decide(action, resource, asSent string, sec *fsm.Secret, keys acl.Context) error {
	d, req, err := a.evaluate(action, resource, sec, keys)
	if err != nil || d == acl.Allow {
		return err
	}
	return apierr.New(apierr.AccessDenied, d.Message(req, asSent))
}

// evaluate is decide's decision.
func (a *authz) evaluate(action, resource string, sec *fsm.Secret, keys acl.Context) (acl.Decision, acl.Request, error) {
	req := acl.Request{Principal: a.principal, Action: action, Resource: resource}
	var resPolicy *acl.Policy
	if sec != nil && sec.ResourcePolicy != "" {
		p, err := a.srv.policies.resource(sec.ResourcePolicy)
		if err != nil {
			a.srv.logger.Error("a stored resource policy does not parse", "secret", sec.ARN, "error", err)
			return acl.ImplicitDeny, req, apierr.Newf(apierr.AccessDenied, "User: %s is not authorized to perform: %s on resource: %s because the secret's resource policy cannot be read by this server (%v).", a.principal.ARN, action, sec.ARN, err)
		}
		resPolicy = p
	}
	if a.root() && resPolicy == nil {
		// Nothing could deny the root identity: skip building a context.
		return acl.Allow, req, nil
	}
	global := a.globals()
	ctx := make(acl.Context, len(global)+len(keys)+8)
	for k, v := range global {
		ctx[k] = v
	}
	for k, v := range keys {
		ctx[k] = v
	}
	if sec != nil {
		resourceKeys(ctx, sec)
	} else if resource != "*" {
		ctx.Set("secretsmanager:SecretId", resource)
	}
	req.Context = ctx
	return acl.Evaluate(req, a.policies, resPolicy), req, nil
}

// resourceKeys adds the keys every action on a secret carries (spec §7.1).
func resourceKeys(ctx acl.Context, s *fsm.Secret) {
	ctx.Set("secretsmanager:SecretId", s.ARN)
	if s.PrimaryRegion != "" {
		ctx.Set("secretsmanager:SecretPrimaryRegion", s.PrimaryRegion)
	}
	for _, t := range s.Tags {
		ctx.Set("secretsmanager:ResourceTag/"+t.Key, t.Value)
		ctx.Set("aws:ResourceTag/"+t.Key, t.Value)
	}
	if s.Rotation != nil && s.Rotation.Rotator != "" {
		ctx.Set("secretsmanager:resource/AllowRotationLambdaArn", s.Rotation.Rotator)
	}
	if s.Type != "" {
		ctx.Set("secretsmanager:resource/Type", s.Type)
	}
}

// wouldBeARN is the resource a SecretId that names no secret is
// authorized against (spec §7.3): the ARN given, or the ARN the name
// would have without its suffix.
func wouldBeARN(r Region, id string) string {
	if strings.HasPrefix(id, "arn:") {
		return id
	}
	return "arn:aws:secretsmanager:" + r.Name() + ":" + r.AccountID() + ":secret:" + id
}

// authorize decides req's own action on the secret s (nil: id names
// none), with the request's condition keys. Handlers call it, through
// resolveSecret, readSecret and writeSecret, before they read or change
// the secret; handleAPI refuses an answer no authorization preceded.
func (req *request) authorize(r Region, s *fsm.Secret, id string) error {
	return req.authorizeAction(r, req.action, s, id)
}

// authorizeAction is authorize for another action a compound operation
// needs (CreateSecret's TagResource, BatchGetSecretValue's
// GetSecretValue).
func (req *request) authorizeAction(r Region, action string, s *fsm.Secret, id string) error {
	req.authorized = true
	if req.authz == nil {
		return nil
	}
	resource := "*"
	switch {
	case s != nil:
		resource = s.ARN
	case id != "":
		resource = wouldBeARN(r, id)
	}
	asSent := id
	if resource == "*" {
		asSent = ""
	}
	return req.authz.decide("secretsmanager:"+action, resource, asSent, s, req.keysFor(action))
}

// authorizeNew decides CreateSecret's actions on the ARN the new secret
// will have.
func (req *request) authorizeNew(r Region, action, arn string) error {
	req.authorized = true
	if req.authz == nil {
		return nil
	}
	return req.authz.decide("secretsmanager:"+action, arn, arn, nil, req.keysFor(action))
}

// keepsAccess refuses a tag change that would leave the caller without
// the permission it is using (spec §7.5, tag-based lock-out protection):
// the action is decided again on the secret with the tags change gives it.
func (req *request) keepsAccess(r Region, s *fsm.Secret, change func([]fsm.Tag) []fsm.Tag) error {
	if req.authz == nil {
		return nil
	}
	after := *s
	after.Tags = change(s.Tags)
	action := "secretsmanager:" + req.action
	if err := req.authz.decide(action, s.ARN, s.ARN, &after, req.keysFor(req.action)); err != nil {
		return apierr.Newf(apierr.AccessDenied, "User: %s is not authorized to perform: %s on resource: %s because the secret would then deny it to the caller (tag-based lock-out protection): nothing was changed.",
			req.authz.principal.ARN, action, s.ARN)
	}
	return nil
}

// mergeTags is the tag set TagResource leaves: values of keys already
// present replaced, new keys added.
func mergeTags(old, add []fsm.Tag) []fsm.Tag {
	out := slices.Clone(old)
	for _, t := range add {
		if i := slices.IndexFunc(out, func(x fsm.Tag) bool { return x.Key == t.Key }); i >= 0 {
			out[i].Value = t.Value
		} else {
			out = append(out, t)
		}
	}
	return out
}

// hidden reports whether an explicit deny keeps secret s out of a listing
// (ListSecrets and BatchGetSecretValue by filters filter per secret: a
// deny whose resource or conditions match the secret hides it; the
// listing itself was allowed on "*").
func (req *request) hidden(r Region, action string, s *fsm.Secret) bool {
	if req.authz == nil || (req.authz.root() && s.ResourcePolicy == "") {
		return false
	}
	d, _, err := req.authz.evaluate("secretsmanager:"+action, s.ARN, s, req.keysFor(action))
	return err != nil || d == acl.DenyIdentity || d == acl.DenyResource
}

// keysFor returns the request's condition keys for action (spec §7.1),
// decoded from the body on first use: a root caller of a secret without
// a resource policy never needs them.
func (req *request) keysFor(action string) acl.Context {
	if req.keys == nil {
		req.keys = map[string]acl.Context{}
	}
	if k, ok := req.keys[action]; ok {
		return k
	}
	k := requestKeys(action, req.body)
	req.keys[action] = k
	return k
}

// requestKeys builds an action's request keys from the body the handler
// has already validated.
func requestKeys(action string, body []byte) acl.Context {
	var in struct {
		Name, Description, KmsKeyID, Type    *string
		VersionID, VersionStage              *string
		RotationLambdaARN                    *string
		ExternalSecretRotationRoleArn        *string
		Tags                                 []tagJSON
		TagKeys                              []string
		AddReplicaRegions                    []replicaRegionJSON
		ForceOverwriteReplicaSecret          *bool
		BlockPublicPolicy                    *bool
		ForceDeleteWithoutRecovery           *bool
		RotateImmediately                    *bool
		RecoveryWindowInDays                 *int64
		RotationRules                        json.RawMessage
		MoveToVersionID, RemoveFromVersionID *string
	}
	_ = json.Unmarshal(body, &in) // validated by the handler; a key it lacks is absent
	k := acl.Context{}
	str := func(key string, v *string) {
		if v != nil {
			k.Set(key, *v)
		}
	}
	boolean := func(key string, v *bool, absent string) {
		switch {
		case v != nil:
			k.Set(key, strconv.FormatBool(*v))
		case absent != "":
			k.Set(key, absent)
		}
	}
	kms := func() {
		str("secretsmanager:KmsKeyId", in.KmsKeyID)
		if in.KmsKeyID != nil && strings.HasPrefix(*in.KmsKeyID, "arn:") {
			k.Set("secretsmanager:KmsKeyArn", *in.KmsKeyID)
		}
	}
	tags := func() {
		keys := make([]string, 0, len(in.Tags))
		for _, t := range in.Tags {
			if t.Key != nil {
				k.Set("aws:RequestTag/"+*t.Key, deref(t.Value))
				keys = append(keys, *t.Key)
			}
		}
		if in.Tags != nil {
			k.Set("aws:TagKeys", keys...)
		}
	}
	regions := func() {
		if in.AddReplicaRegions == nil {
			return
		}
		var names []string
		for _, rr := range in.AddReplicaRegions {
			if rr.Region != nil {
				names = append(names, *rr.Region)
			}
		}
		k.Set("secretsmanager:AddReplicaRegions", names...)
		boolean("secretsmanager:ForceOverwriteReplicaSecret", in.ForceOverwriteReplicaSecret, "")
	}
	switch action {
	case "CreateSecret":
		str("secretsmanager:Name", in.Name)
		str("secretsmanager:Description", in.Description)
		str("secretsmanager:Type", in.Type)
		kms()
		tags()
		regions()
	case "ReplicateSecretToRegions":
		regions()
	case "UpdateSecret":
		str("secretsmanager:Description", in.Description)
		str("secretsmanager:Type", in.Type)
		kms()
	case "DeleteSecret":
		if in.RecoveryWindowInDays != nil {
			k.Set("secretsmanager:RecoveryWindowInDays", strconv.FormatInt(*in.RecoveryWindowInDays, 10))
		}
		boolean("secretsmanager:ForceDeleteWithoutRecovery", in.ForceDeleteWithoutRecovery, "")
	case "GetSecretValue":
		str("secretsmanager:VersionId", in.VersionID)
		str("secretsmanager:VersionStage", in.VersionStage)
	case "UpdateSecretVersionStage":
		str("secretsmanager:VersionStage", in.VersionStage)
	case "PutResourcePolicy":
		boolean("secretsmanager:BlockPublicPolicy", in.BlockPublicPolicy, "false")
	case "RotateSecret":
		str("secretsmanager:RotationLambdaARN", in.RotationLambdaARN)
		boolean("secretsmanager:RotateImmediately", in.RotateImmediately, "true")
		k.Set("secretsmanager:ModifyRotationRules", strconv.FormatBool(len(in.RotationRules) > 0 && string(in.RotationRules) != "null"))
		str("secretsmanager:ExternalSecretRotationRoleArn", in.ExternalSecretRotationRoleArn)
	case "TagResource":
		tags()
	case "UntagResource":
		if in.TagKeys != nil {
			k.Set("aws:TagKeys", in.TagKeys...)
		}
	}
	return k
}

// callerCache keeps each caller's principal and parsed policies while the
// region's identities do not change (Region.IdentityGeneration), so a
// request reads no user, group or policy. Bounded like policyCache.
type callerCache struct {
	mu sync.Mutex
	m  map[callerKey]cachedCaller
}

type callerKey struct{ region, identity string }

type cachedCaller struct {
	gen       uint64
	principal acl.Principal
	policies  []*acl.Policy
}

func (cc *callerCache) get(s *Server, r Region, identity string) (cachedCaller, error) {
	key := callerKey{r.Name(), identity}
	gen := r.IdentityGeneration() // before the state is read: see its doc
	cc.mu.Lock()
	hit, ok := cc.m[key]
	cc.mu.Unlock()
	if ok && hit.gen == gen {
		return hit, nil
	}
	caller, ok := r.Caller(identity)
	if !ok {
		// The key's user was deleted between the signature check and now.
		return cachedCaller{}, apierr.New(apierr.UnrecognizedClient, "The security token included in the request is invalid.")
	}
	out := cachedCaller{gen: gen, principal: acl.Principal{ARN: caller.ARN, Account: caller.Account, UserName: caller.UserName, UserID: caller.UserID, Type: "IAMUser"}}
	if caller.Root {
		out.principal.Type = "Root"
	}
	for _, doc := range caller.Policies {
		p, err := s.policies.identity(doc)
		if err != nil {
			// Stored documents were checked when written; one that no
			// longer parses might have denied something, so nothing is
			// allowed rather than more than the policy meant.
			s.logger.Error("a stored identity policy does not parse", "identity", identity, "error", err)
			return cachedCaller{}, apierr.Newf(apierr.AccessDenied, "User: %s is not authorized: one of its policies cannot be read by this server (%v).", caller.ARN, err)
		}
		out.policies = append(out.policies, p)
	}
	cc.mu.Lock()
	if cc.m == nil || len(cc.m) >= callerCacheSize {
		cc.m = map[callerKey]cachedCaller{}
	}
	cc.m[key] = out
	cc.mu.Unlock()
	return out, nil
}

const callerCacheSize = 16384

// policyCache keeps parsed policies by document, so a request does not
// parse its caller's policies again. It is bounded: when full it starts
// over (documents are few; a full cache means churn, not a working set).
type policyCache struct {
	mu         sync.Mutex
	identities map[string]*acl.Policy
	resources  map[string]*acl.Policy
}

const policyCacheSize = 4096

func (pc *policyCache) identity(doc string) (*acl.Policy, error) {
	return pc.get(&pc.identities, doc, acl.ParseIdentityPolicy)
}

func (pc *policyCache) resource(doc string) (*acl.Policy, error) {
	return pc.get(&pc.resources, doc, acl.ParsePolicy)
}

func (pc *policyCache) get(m *map[string]*acl.Policy, doc string, parse func(string) (*acl.Policy, []string, error)) (*acl.Policy, error) {
	pc.mu.Lock()
	p, ok := (*m)[doc]
	pc.mu.Unlock()
	if ok {
		return p, nil
	}
	p, problems, err := parse(doc)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, &policyProblems{problems}
	}
	pc.mu.Lock()
	if *m == nil || len(*m) >= policyCacheSize {
		*m = map[string]*acl.Policy{}
	}
	(*m)[doc] = p
	pc.mu.Unlock()
	return p, nil
}

type policyProblems struct{ problems []string }

func (e *policyProblems) Error() string { return strings.Join(e.problems, " ") }
