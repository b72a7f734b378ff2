package acl

import "strings"

// Policy evaluation (shared/spec §7.3): a request's principal, action,
// resource and condition keys against the caller's identity policies and
// the secret's resource policy. Everything that can be worked out from a
// policy alone is worked out when it is parsed (compile.go), so that
// Evaluate, which runs on every API request, neither parses nor allocates
// in the common case. Evaluate only reads the policies, so one *Policy may
// serve any number of concurrent evaluations.

// Principal is the caller of a request.
type Principal struct {
	ARN      string // arn:aws:iam::123456789012:user/alice, or arn:aws:iam::123456789012:root
	Account  string // 12 digits
	Type     string // "Root", "IAMUser" or "AWSService"
	UserName string // IAM user name (empty for Root)
	UserID   string // unique id (AIDA...), the account id for Root
	Service  string // for AWSService only, e.g. "secretsmanager.amazonaws.com"
}

// Context holds a request's condition keys. Key names are case-insensitive
// (IAM's rule): Set and Get normalise them; values are kept as given. A key
// set with no values counts as absent when conditions are evaluated.
type Context map[string][]string

// Set sets a key's values (the map must have been made).
func (c Context) Set(key string, values ...string) { c[strings.ToLower(key)] = values }

// Get returns a key's values and whether the key is set.
func (c Context) Get(key string) ([]string, bool) {
	v, ok := c[strings.ToLower(key)]
	return v, ok
}

// Request is one authorization question.
type Request struct {
	Principal Principal
	Action    string  // "secretsmanager:GetSecretValue" or "coffer:CreateUser"
	Resource  string  // the secret's ARN, or "*" for actions without a resource
	Context   Context // request and resource keys, filled by the caller
}

// Decision is the outcome of Evaluate.
type Decision uint8

const (
	ImplicitDeny Decision = iota // no statement allows
	Allow
	DenyIdentity // an identity policy denies explicitly
	DenyResource // the resource policy denies explicitly
	// ImplicitDenyResource is a cross-account refusal where the identity
	// policies allow but no resource-policy statement does. It is an
	// implicit deny like ImplicitDeny, kept apart because AWS words its
	// message differently (§7.4).
	ImplicitDenyResource
)

// repairActions are never denied to the account's root: whatever a
// resource policy says, the root can read, replace or delete it, so a
// lock-out can always be undone. This is Coffer's rule (AWS has it for S3
// bucket policies); AWS Secrets Manager leaves a locked-out secret to
// support.
var repairActions = []string{
	"secretsmanager:GetResourcePolicy", "secretsmanager:PutResourcePolicy",
	"secretsmanager:DeleteResourcePolicy", "secretsmanager:DescribeSecret",
}

// Evaluate decides req against the caller's identity policies and the
// secret's resource policy (nil when there is none or the action has no
// resource).
//
// Order (§7.3): an explicit Deny in either kind of policy wins (identity
// first); then, in the secret's own account, an Allow in either kind
// grants, except that a resource-policy Allow reaching the caller only
// through its account principal delegates to the identity policies; across
// accounts both kinds must allow. The account root is not governed by
// identity policies: in its own account it is allowed whatever a resource
// policy does not explicitly deny. An AWS service principal has no
// identity policies, so only a resource policy can grant it anything.
func Evaluate(req Request, identity []*Policy, resource *Policy) Decision {
	e := evaluator{ctx: req.Context, p: req.Principal}
	e.derive()
	if req.Resource == "*" {
		resource = nil // actions without a resource: resource policies never apply
	}
	p := &req.Principal
	root := p.Type == "Root"
	cross := false
	if acct := arnAccount(req.Resource); acct != "" && acct != p.Account && p.Type != "AWSService" {
		cross = true
	}
	if root && !cross {
		for _, a := range repairActions {
			if strings.EqualFold(a, req.Action) {
				return Allow
			}
		}
	}

	idAllow := root // the root's own permissions are not written in policies
	if !root {
		for _, pol := range identity {
			if pol == nil {
				continue
			}
			for i := range pol.Statements {
				m := prepared(pol, i)
				if m.effect == effectNone || (m.effect == effectAllow && idAllow) {
					continue // an Allow adds nothing once one statement allows
				}
				if !e.identityApplies(m, req.Action, req.Resource) {
					continue
				}
				if m.effect == effectDeny {
					return DenyIdentity
				}
				idAllow = true
			}
		}
	}

	var rpSelf, rpAccount bool // a resource-policy Allow names the caller / only its account
	if resource != nil {
		for i := range resource.Statements {
			m := prepared(resource, i)
			if m.effect == effectNone || (m.effect == effectAllow && rpSelf) {
				continue
			}
			who := e.resourceApplies(m, req.Action, req.Resource)
			switch {
			case who == matchNone:
			case m.effect == effectDeny:
				return DenyResource
			case who == matchSelf:
				rpSelf = true
			default:
				rpAccount = true
			}
		}
	}

	switch {
	case !cross && (root || idAllow || rpSelf):
		return Allow
	case !cross:
		return ImplicitDeny
	case idAllow && (rpSelf || rpAccount):
		return Allow
	case idAllow:
		return ImplicitDenyResource
	}
	return ImplicitDeny
}

// prepared returns statement i of p ready for evaluation: as compiled by
// the parser, or compiled now (into a copy, not stored: p may be shared)
// for a policy built by hand.
func prepared(p *Policy, i int) *matcher {
	if m := p.Statements[i].m; m != nil {
		return m
	}
	m, _ := compileStatement(&p.Statements[i], p.Version == "2012-10-17")
	return m
}

// Message is the AccessDeniedException message AWS writes for a refusal
// (spec §7.4), naming the resource as the client sent it ("" for actions
// without a resource: the "... ListSecrets because ..." form). It is ""
// for Allow.
func (d Decision) Message(req Request, resourceAsSent string) string {
	var ending string
	switch d {
	case Allow:
		return ""
	case DenyIdentity:
		ending = "with an explicit deny in an identity-based policy"
	case DenyResource:
		ending = "with an explicit deny in a resource-based policy"
	case ImplicitDenyResource:
		ending = "because no resource-based policy allows the " + req.Action + " action"
	default:
		ending = "because no identity-based policy allows the " + req.Action + " action"
	}
	who := req.Principal.ARN
	if who == "" {
		who = req.Principal.Service
	}
	var b strings.Builder
	b.WriteString("User: ")
	b.WriteString(who)
	b.WriteString(" is not authorized to perform: ")
	b.WriteString(req.Action)
	if resourceAsSent != "" {
		b.WriteString(" on resource: ")
		b.WriteString(resourceAsSent)
	}
	b.WriteByte(' ')
	b.WriteString(ending)
	return b.String()
}

// arnAccount returns the account field (the fifth) of an ARN, "" when s
// is not an ARN with one.
func arnAccount(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		return ""
	}
	rest := s
	for range 4 {
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return ""
		}
		rest = rest[i+1:]
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return rest[:i]
	}
	return ""
}

// evaluator is the state of one evaluation: the request's keys, and the
// global keys derived from the principal for those the caller left unset.
type evaluator struct {
	ctx     Context
	p       Principal // a copy: a pointer into the caller's Request would make it escape
	derived [len(derivedKeys)]string
}

// derivedKeys are the global keys Evaluate derives from the Principal
// (lower case, as Context stores them), in the order of evaluator.derived.
var derivedKeys = [...]string{
	"aws:principalarn", "aws:principalaccount", "aws:principaltype", "aws:username", "aws:userid",
}

func (e *evaluator) derive() {
	p := &e.p
	e.derived = [len(derivedKeys)]string{p.ARN, p.Account, p.Type, "", p.UserID}
	if p.Type == "IAMUser" {
		e.derived[3] = p.UserName // aws:username exists for IAM users only
	}
}

// lookup returns the values of a lower-case key; nil when absent. The
// caller's Context wins over what is derived from the Principal.
func (e *evaluator) lookup(key string) []string {
	if v, ok := e.ctx[key]; ok {
		return v
	}
	for i, k := range derivedKeys {
		if k == key {
			if e.derived[i] == "" {
				return nil
			}
			return e.derived[i : i+1]
		}
	}
	return nil
}

// variable returns the value of a policy variable. Only a key with exactly
// one value can stand in for a variable (IAM's rule: absent and
// multi-valued keys are not substituted, and whatever uses the variable
// matches nothing).
func (e *evaluator) variable(key string) (string, bool) {
	if e == nil {
		return "", false
	}
	v := e.lookup(key)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// identityApplies reports whether an identity-policy statement covers
// the request.
func (e *evaluator) identityApplies(m *matcher, action, resource string) bool {
	return m.actionMatches(action) && e.resourceMatches(m, resource, false) && e.conditionsHold(m)
}

// resourceApplies reports how a resource-policy statement covers the
// request: matchNone when it does not.
func (e *evaluator) resourceApplies(m *matcher, action, resource string) principalMatch {
	if !m.actionMatches(action) || !e.resourceMatches(m, resource, true) {
		return matchNone
	}
	who := m.principalMatches(&e.p)
	if who == matchNone || !e.conditionsHold(m) {
		return matchNone
	}
	return who
}

func (m *matcher) actionMatches(action string) bool {
	hit := false
	for _, pat := range m.actions {
		if globMatch(nil, pat, action, true) {
			hit = true
			break
		}
	}
	return hit != m.notAction
}

// resourceMatches matches the request's resource against Resource or
// NotResource, case-sensitively. In a resource policy a statement without
// either applies to the secret, and "*" (which matches anything) means
// the secret too.
func (e *evaluator) resourceMatches(m *matcher, resource string, resourcePolicy bool) bool {
	if len(m.resources) == 0 {
		return resourcePolicy
	}
	hit := false
	for _, pat := range m.resources {
		if globMatch(e, pat, resource, false) {
			hit = true
			break
		}
	}
	return hit != m.notResource
}

type principalMatch uint8

const (
	matchNone    principalMatch = iota
	matchAccount                // only through the caller's account principal
	matchSelf                   // "*", the caller's own ARN, its service, or NotPrincipal
)

func (m *matcher) principalMatches(p *Principal) principalMatch {
	if m.principals == nil {
		return matchNone
	}
	who := m.principals.match(p)
	if m.notPrincipal {
		if who == matchNone {
			return matchSelf
		}
		return matchNone
	}
	return who
}

func (ps *principalSet) match(p *Principal) principalMatch {
	switch {
	case ps.anyone:
		return matchSelf
	case p.ARN != "" && contains(ps.arns, p.ARN):
		return matchSelf
	case p.Type == "AWSService":
		if p.Service != "" && contains(ps.services, p.Service) {
			return matchSelf
		}
		return matchNone // a service is nobody's account member
	case p.Account != "" && contains(ps.accounts, p.Account):
		return matchAccount
	}
	return matchNone
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
