package acl

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Resource and identity policies (shared/spec §7.2, §7.6): parsing with
// the structure checks PutResourcePolicy and ValidateResourcePolicy apply,
// the broad access test behind BlockPublicPolicy, and the lock-out test of
// ValidateResourcePolicy. Evaluation is in eval.go.

// Policy is a parsed resource or identity policy document. Parsing also
// prepares each statement for Evaluate, so a parsed Policy must not be
// changed afterwards (it may be shared by concurrent evaluations).
type Policy struct {
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy. Principal holds the principal
// map ("*" alone is {"AWS": ["*"]}); NotPrincipal, NotAction and
// NotResource say which form the document used.
type Statement struct {
	Sid          string
	Effect       string // Allow or Deny
	Principal    map[string][]string
	NotPrincipal bool
	Actions      []string
	NotAction    bool
	Resources    []string
	NotResource  bool
	// Condition maps an operator (as written) to its keys and values;
	// values are kept as strings (booleans and numbers as JSON text).
	Condition map[string]map[string][]string

	m *matcher // the statement prepared for Evaluate; nil when built by hand
}

// ErrNotJSON is returned by ParsePolicy when the document is not a JSON
// object at all.
type ErrNotJSON struct{ Err error }

func (e *ErrNotJSON) Error() string { return "the policy is not a JSON object: " + e.Err.Error() }

// Policy language versions IAM accepts.
var policyVersions = []string{"2012-10-17", "2008-10-17"}

var principalTypes = []string{"AWS", "Service", "Federated", "CanonicalUser"}

var (
	actionPattern         = regexp.MustCompile(`^(?i:secretsmanager):[A-Za-z*?]+$`)
	identityActionPattern = regexp.MustCompile(`^(?i:secretsmanager|coffer):[A-Za-z*?]+$`)
	accountID             = regexp.MustCompile(`^[0-9]{12}$`)
)

// ParsePolicy parses a resource policy. A document that is not a JSON
// object is an *ErrNotJSON. Otherwise it returns the policy and the
// structure problems found, one sentence each; none means the document is
// valid.
func ParsePolicy(doc string) (*Policy, []string, error) {
	return parsePolicy(doc, false)
}

// ParseIdentityPolicy parses an identity policy (attached to users and
// groups): like ParsePolicy, but Principal/NotPrincipal are refused,
// Resource/NotResource is required, and actions may be secretsmanager:*,
// coffer:* (Coffer's admin actions) or "*". Condition values that cannot
// be read for their operator (a bad CIDR, a non-number for Numeric...)
// are problems too: such a condition could never hold, so a Deny written
// with it would silently never deny.
func ParseIdentityPolicy(doc string) (*Policy, []string, error) {
	return parsePolicy(doc, true)
}

func parsePolicy(doc string, identity bool) (*Policy, []string, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return nil, nil, &ErrNotJSON{err}
	}
	if top == nil {
		return nil, nil, &ErrNotJSON{fmt.Errorf("null")}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &ErrNotJSON{fmt.Errorf("data after the top-level object")}
	}
	p := &Policy{}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for k := range top {
		if !slices.Contains([]string{"Version", "Id", "Statement"}, k) {
			bad("Unknown policy element %q.", k)
		}
	}
	if v, ok := top["Version"]; ok {
		s, isStr := v.(string)
		if !isStr || !slices.Contains(policyVersions, s) {
			bad("Version must be \"2012-10-17\" or \"2008-10-17\".")
		}
		p.Version = s
	}
	if v, ok := top["Id"]; ok {
		if _, isStr := v.(string); !isStr {
			bad("Id must be a string.")
		}
	}
	var raw []any
	switch st := top["Statement"].(type) {
	case nil:
		bad("The policy has no Statement.")
	case map[string]any:
		raw = []any{st}
	case []any:
		if len(st) == 0 {
			bad("Statement must not be empty.")
		}
		raw = st
	default:
		bad("Statement must be an object or a list of objects.")
	}
	for i, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			bad("Statement %d is not an object.", i+1)
			continue
		}
		s := parseStatement(m, identity, func(format string, args ...any) {
			bad("Statement %d: "+format, append([]any{i + 1}, args...)...)
		})
		p.Statements = append(p.Statements, s)
	}
	// Prepared whatever the problems, so that even a policy with problems
	// evaluates without surprises. Unreadable condition values are only
	// reported for identity policies: resource policies keep the checks
	// PutResourcePolicy has always made.
	vars := p.Version == "2012-10-17"
	for i := range p.Statements {
		var valueProblems []string
		p.Statements[i].m, valueProblems = compileStatement(&p.Statements[i], vars)
		if identity {
			for _, msg := range valueProblems {
				bad("Statement %d: %s", i+1, msg)
			}
		}
	}
	return p, problems, nil
}

func parseStatement(m map[string]any, identity bool, bad func(string, ...any)) Statement {
	var s Statement
	for k := range m {
		if !slices.Contains([]string{"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
			"Resource", "NotResource", "Condition"}, k) {
			bad("unknown element %q.", k)
		}
	}
	if v, ok := m["Sid"]; ok {
		sid, isStr := v.(string)
		if !isStr {
			bad("Sid must be a string.")
		}
		s.Sid = sid
	}
	s.Effect, _ = m["Effect"].(string)
	if s.Effect != "Allow" && s.Effect != "Deny" {
		bad("Effect must be \"Allow\" or \"Deny\".")
	}

	// Principal: exactly one of the two forms.
	pv, hasP := m["Principal"]
	npv, hasNP := m["NotPrincipal"]
	switch {
	case identity:
		if hasP || hasNP {
			bad("an identity policy statement must not have a Principal or NotPrincipal: it applies to whoever it is attached to.")
		}
		hasP, hasNP = false, false
	case hasP && hasNP:
		bad("use Principal or NotPrincipal, not both.")
	case !hasP && !hasNP:
		bad("a resource policy statement needs a Principal.")
	case hasNP:
		s.NotPrincipal = true
		pv = npv
	}
	if hasP || hasNP {
		s.Principal = parsePrincipal(pv, bad)
	}

	var action any
	switch av, hasA := m["Action"]; {
	case hasA && m["NotAction"] != nil:
		bad("use Action or NotAction, not both.")
	case hasA:
		action = av
	case m["NotAction"] != nil:
		action, s.NotAction = m["NotAction"], true
	default:
		bad("the statement has no Action.")
	}
	if action != nil {
		s.Actions = stringList(action, "Action", bad)
		for _, a := range s.Actions {
			switch {
			case a == "*":
			case identity && !identityActionPattern.MatchString(a):
				bad("action %q is not a Secrets Manager or Coffer action (secretsmanager:<name> or coffer:<name>, wildcards allowed).", a)
			case !identity && !actionPattern.MatchString(a):
				bad("action %q is not a Secrets Manager action (secretsmanager:<name>, wildcards allowed).", a)
			}
		}
	}

	rv, hasR := m["Resource"]
	nrv, hasNR := m["NotResource"]
	switch {
	case hasR && hasNR:
		bad("use Resource or NotResource, not both.")
	case hasNR:
		s.NotResource, rv, hasR = true, nrv, true
	case identity && !hasR:
		// A resource policy's statements are about its secret; an
		// identity policy's must say which resources they cover.
		bad("the statement has no Resource.")
	}
	if hasR {
		s.Resources = stringList(rv, "Resource", bad)
		for _, r := range s.Resources {
			if r != "*" && (!strings.HasPrefix(r, "arn:") || strings.Count(r, ":") < 5) {
				bad("resource %q is not an ARN or \"*\".", r)
			}
		}
	}

	if cv, ok := m["Condition"]; ok {
		s.Condition = parseCondition(cv, bad)
	}
	return s
}

func parsePrincipal(v any, bad func(string, ...any)) map[string][]string {
	if str, ok := v.(string); ok {
		if str != "*" {
			bad("a Principal given as a string must be \"*\".")
		}
		return map[string][]string{"AWS": {"*"}}
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		bad("Principal must be \"*\" or an object such as {\"AWS\": \"123456789012\"}.")
		return nil
	}
	out := map[string][]string{}
	for typ, val := range m {
		if !slices.Contains(principalTypes, typ) {
			bad("unknown principal type %q.", typ)
			continue
		}
		ids := stringList(val, "Principal", bad)
		for _, id := range ids {
			if typ == "AWS" && id != "*" && !accountID.MatchString(id) && !strings.HasPrefix(id, "arn:") {
				bad("principal %q is not \"*\", an account id or an ARN.", id)
			}
		}
		out[typ] = ids
	}
	return out
}

// stringList reads a string or a non-empty list of non-empty strings.
func stringList(v any, what string, bad func(string, ...any)) []string {
	switch x := v.(type) {
	case string:
		if x == "" {
			bad("%s must not be empty.", what)
		}
		return []string{x}
	case []any:
		if len(x) == 0 {
			bad("%s must not be an empty list.", what)
		}
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok || s == "" {
				bad("%s must hold non-empty strings.", what)
				continue
			}
			out = append(out, s)
		}
		return out
	}
	bad("%s must be a string or a list of strings.", what)
	return nil
}

func parseCondition(v any, bad func(string, ...any)) map[string]map[string][]string {
	m, ok := v.(map[string]any)
	if !ok {
		bad("Condition must be an object.")
		return nil
	}
	out := map[string]map[string][]string{}
	for op, keysRaw := range m {
		if _, known := conditionBase(op); !known {
			bad("unknown condition operator %q.", op)
			continue
		}
		keys, ok := keysRaw.(map[string]any)
		if !ok || len(keys) == 0 {
			bad("condition %s must map condition keys to values.", op)
			continue
		}
		out[op] = map[string][]string{}
		for key, val := range keys {
			if key == "" {
				bad("condition %s has an empty key.", op)
				continue
			}
			vals := []any{val}
			if list, isList := val.([]any); isList {
				if len(list) == 0 {
					bad("condition %s %s has no values.", op, key)
				}
				vals = list
			}
			for _, e := range vals {
				switch x := e.(type) {
				case string:
					out[op][key] = append(out[op][key], x)
				case bool, json.Number:
					out[op][key] = append(out[op][key], fmt.Sprint(x))
				default:
					bad("condition %s %s values must be strings, numbers or booleans.", op, key)
				}
			}
		}
	}
	return out
}

// narrowingKeys are the condition keys that limit a "*" principal to known
// callers (shared/spec §7.6).
var narrowingKeys = []string{"aws:principalaccount", "aws:principalarn", "aws:principalorgid",
	"aws:sourceaccount", "aws:sourcearn", "aws:userid"}

// BroadAccess returns, for each Allow statement that grants access to any
// principal ("*", {"AWS": "*"} or NotPrincipal) without a condition that
// narrows it to named accounts, organizations or ARNs, a sentence saying
// which. Empty means the policy does not grant public access.
func (p *Policy) BroadAccess() []string {
	var out []string
	for i, s := range p.Statements {
		if s.Effect != "Allow" {
			continue
		}
		public := s.NotPrincipal || slices.Contains(s.Principal["AWS"], "*")
		if public && !s.narrowed() {
			out = append(out, fmt.Sprintf("Statement %d allows access to any principal: narrow it with a condition on aws:PrincipalAccount, aws:PrincipalArn or aws:PrincipalOrgID.", i+1))
		}
	}
	return out
}

func (s *Statement) narrowed() bool {
	for op, keys := range s.Condition {
		if !slices.Contains([]string{"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"}, op) {
			continue
		}
		for key, vals := range keys {
			if !slices.Contains(narrowingKeys, strings.ToLower(key)) || len(vals) == 0 {
				continue
			}
			if !slices.ContainsFunc(vals, func(v string) bool { return v == "" || strings.ContainsAny(v, "*?") }) {
				return true
			}
		}
	}
	return false
}

// LocksOut reports whether the policy explicitly denies the caller (its
// principal ARN and account) the PutResourcePolicy action on the secret,
// so the caller could never change the policy again. secretARN "" means
// any secret. Statements with conditions are not counted: they cannot be
// evaluated without a request.
//
// It matches each statement as Evaluate does, but statement by statement
// (to name the ones that lock out) and without Evaluate's rule that the
// account root may always repair a policy: the warning is about what the
// policy says.
func (p *Policy) LocksOut(callerARN, account, secretARN string) []string {
	const action = "secretsmanager:PutResourcePolicy"
	caller := Principal{ARN: callerARN, Account: account, Type: "IAMUser"}
	e := evaluator{p: caller}
	e.derive()
	var out []string
	for i, s := range p.Statements {
		if s.Effect != "Deny" || len(s.Condition) > 0 || s.NotResource {
			continue
		}
		m := prepared(p, i)
		if !m.actionMatches(action) || m.principalMatches(&caller) == matchNone {
			continue
		}
		if secretARN != "" && !e.resourceMatches(m, secretARN, true) {
			continue
		}
		out = append(out, fmt.Sprintf("Statement %d denies you %s on this secret, so you could not change or remove the policy afterwards.", i+1, action))
	}
	return out
}
