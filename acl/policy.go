package acl

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Resource policies (shared/spec §7.2, §7.6): parsing with the structure
// checks PutResourcePolicy and ValidateResourcePolicy apply, the broad
// access test behind BlockPublicPolicy, and the lock-out test of
// ValidateResourcePolicy. Evaluation of policies comes with identities.

// Policy is a parsed resource policy document.
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
}

// ErrNotJSON is returned by ParsePolicy when the document is not a JSON
// object at all.
type ErrNotJSON struct{ Err error }

func (e *ErrNotJSON) Error() string { return "the policy is not a JSON object: " + e.Err.Error() }

// Policy language versions IAM accepts.
var policyVersions = []string{"2012-10-17", "2008-10-17"}

// Condition operators (without the ForAnyValue:/ForAllValues: prefixes and
// the IfExists suffix).
var conditionOperators = []string{
	"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
	"StringLike", "StringNotLike",
	"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
	"NumericGreaterThan", "NumericGreaterThanEquals",
	"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
	"Bool", "BinaryEquals", "IpAddress", "NotIpAddress",
	"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}

var principalTypes = []string{"AWS", "Service", "Federated", "CanonicalUser"}

var (
	actionPattern = regexp.MustCompile(`^(?i:secretsmanager):[A-Za-z*?]+$`)
	accountID     = regexp.MustCompile(`^[0-9]{12}$`)
)

// ParsePolicy parses a resource policy. A document that is not a JSON
// object is an *ErrNotJSON. Otherwise it returns the policy and the
// structure problems found, one sentence each; none means the document is
// valid.
func ParsePolicy(doc string) (*Policy, []string, error) {
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
		s := parseStatement(m, func(format string, args ...any) {
			bad("Statement %d: "+format, append([]any{i + 1}, args...)...)
		})
		p.Statements = append(p.Statements, s)
	}
	return p, problems, nil
}

func parseStatement(m map[string]any, bad func(string, ...any)) Statement {
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
			if a != "*" && !actionPattern.MatchString(a) {
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

// conditionBase strips the set prefix and the IfExists suffix of an
// operator and reports whether what is left is a known operator.
func conditionBase(op string) (base string, ok bool) {
	base = op
	for _, prefix := range []string{"ForAnyValue:", "ForAllValues:"} {
		base = strings.TrimPrefix(base, prefix)
	}
	if b, found := strings.CutSuffix(base, "IfExists"); found && b != "Null" {
		base = b
	}
	return base, slices.Contains(conditionOperators, base)
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
func (p *Policy) LocksOut(callerARN, account, secretARN string) []string {
	var out []string
	for i, s := range p.Statements {
		if s.Effect != "Deny" || len(s.Condition) > 0 || s.NotResource {
			continue
		}
		if s.matchesAction("secretsmanager:PutResourcePolicy") && s.matchesPrincipal(callerARN, account) && s.matchesResource(secretARN) {
			out = append(out, fmt.Sprintf("Statement %d denies you secretsmanager:PutResourcePolicy on this secret, so you could not change or remove the policy afterwards.", i+1))
		}
	}
	return out
}

func (s *Statement) matchesAction(action string) bool {
	hit := slices.ContainsFunc(s.Actions, func(pattern string) bool {
		return wildcardMatch(strings.ToLower(pattern), strings.ToLower(action))
	})
	return hit != s.NotAction
}

func (s *Statement) matchesPrincipal(callerARN, account string) bool {
	hit := slices.ContainsFunc(s.Principal["AWS"], func(id string) bool {
		return id == "*" || id == account || id == callerARN || id == "arn:aws:iam::"+account+":root"
	})
	return hit != s.NotPrincipal
}

func (s *Statement) matchesResource(arn string) bool {
	if len(s.Resources) == 0 || arn == "" {
		return true // in a resource policy, no Resource means this secret
	}
	return slices.ContainsFunc(s.Resources, func(pattern string) bool { return wildcardMatch(pattern, arn) })
}

// wildcardMatch matches s against a pattern with * (any run) and ? (any
// one character).
func wildcardMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
