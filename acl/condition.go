package acl

import (
	"bytes"
	"encoding/base64"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Condition operators: decoding at parse time, evaluation per request.
//
// Rules followed (IAM's documented behaviour, "IAM JSON policy elements:
// Condition operators"):
//   - A key that is absent from the request (or set with no values)
//     makes a positive operator false and a negated one (…NotEquals,
//     …NotLike, NotIpAddress, ArnNotEquals, ArnNotLike) true: "If the key
//     that you specify in a policy condition is not present in the request
//     context, the values do not match and the condition is false. If the
//     policy condition requires that the key is not matched, such as
//     StringNotLike or ArnNotLike, and the right key is not present, the
//     condition is true." …IfExists makes any operator true, Null tests
//     presence, ForAllValues: is true and ForAnyValue: false.
//   - A multi-valued key without a set prefix: a positive operator holds
//     when any request value matches any policy value; a negated one holds
//     when no request value matches any policy value (one value equal to a
//     listed one makes it false).
//   - ForAnyValue: some request value satisfies the operator, ForAllValues:
//     every one does; for a negated operator "satisfies" means matches none
//     of the policy values.
//   - A value that cannot be read for the operator, on either side (a
//     non-number for Numeric, a bad CIDR, an ARN without six parts), makes
//     the condition false, negated operators included: nothing can be said
//     about it.
//   - A policy value with a variable that has no single value matches no
//     request value (IAM's "does not match"), so it never makes a negated
//     operator false either.

type family uint8

const (
	famString family = iota
	famStringFold
	famStringLike
	famNumeric
	famDate
	famBool
	famBinary
	famIP
	famARN // ArnEquals and ArnLike are the same: wildcards per part
	famNull
)

type comparison uint8

const (
	cmpEq comparison = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

type operator struct {
	fam family
	cmp comparison
	neg bool
}

// operators are the condition operators without set prefix and IfExists.
var operators = map[string]operator{
	"StringEquals":              {famString, cmpEq, false},
	"StringNotEquals":           {famString, cmpEq, true},
	"StringEqualsIgnoreCase":    {famStringFold, cmpEq, false},
	"StringNotEqualsIgnoreCase": {famStringFold, cmpEq, true},
	"StringLike":                {famStringLike, cmpEq, false},
	"StringNotLike":             {famStringLike, cmpEq, true},
	"NumericEquals":             {famNumeric, cmpEq, false},
	"NumericNotEquals":          {famNumeric, cmpEq, true},
	"NumericLessThan":           {famNumeric, cmpLt, false},
	"NumericLessThanEquals":     {famNumeric, cmpLe, false},
	"NumericGreaterThan":        {famNumeric, cmpGt, false},
	"NumericGreaterThanEquals":  {famNumeric, cmpGe, false},
	"DateEquals":                {famDate, cmpEq, false},
	"DateNotEquals":             {famDate, cmpEq, true},
	"DateLessThan":              {famDate, cmpLt, false},
	"DateLessThanEquals":        {famDate, cmpLe, false},
	"DateGreaterThan":           {famDate, cmpGt, false},
	"DateGreaterThanEquals":     {famDate, cmpGe, false},
	"Bool":                      {famBool, cmpEq, false},
	"BinaryEquals":              {famBinary, cmpEq, false},
	"IpAddress":                 {famIP, cmpEq, false},
	"NotIpAddress":              {famIP, cmpEq, true},
	"ArnEquals":                 {famARN, cmpEq, false},
	"ArnLike":                   {famARN, cmpEq, false},
	"ArnNotEquals":              {famARN, cmpEq, true},
	"ArnNotLike":                {famARN, cmpEq, true},
	"Null":                      {famNull, cmpEq, false},
}

type setOp uint8

const (
	setNone setOp = iota
	setAny        // ForAnyValue:
	setAll        // ForAllValues:
)

// parseOperator splits an operator as written into its base, set prefix
// and IfExists suffix; ok is false for an unknown operator.
func parseOperator(op string) (base string, set setOp, ifExists, ok bool) {
	base = op
	if b, found := strings.CutPrefix(base, "ForAnyValue:"); found {
		base, set = b, setAny
	} else if b, found := strings.CutPrefix(base, "ForAllValues:"); found {
		base, set = b, setAll
	}
	if b, found := strings.CutSuffix(base, "IfExists"); found && b != "Null" {
		base, ifExists = b, true
	}
	_, ok = operators[base]
	return base, set, ifExists, ok
}

// conditionBase strips the set prefix and the IfExists suffix of an
// operator and reports whether what is left is a known operator.
func conditionBase(op string) (base string, ok bool) {
	base, _, _, ok = parseOperator(op)
	return base, ok
}

// condition is one key of one operator of a Condition block.
type condition struct {
	operator
	set      setOp
	ifExists bool
	key      string // lower case, as Context stores keys
	values   []condValue
	broken   bool // unknown operator, or a value unreadable for it: never holds
}

// condValue is one policy value, read for its operator when it has no
// variables (otherwise read after substitution, per request).
type condValue struct {
	toks []token    // the value as a pattern: strings, and any value with variables
	arn  [6][]token // ARN operators: the six parts
	vars bool
	num  float64
	t    time.Time
	b    bool
	bin  []byte
	ip   netip.Prefix
}

// compileCondition prepares one key of one operator. It returns the
// values that cannot be read for the operator.
func compileCondition(op, key string, values []string, vars bool) (condition, []string) {
	base, set, ifExists, ok := parseOperator(op)
	c := condition{operator: operators[base], set: set, ifExists: ifExists, key: strings.ToLower(key), broken: !ok}
	if !ok {
		return c, nil
	}
	var bad []string
	for _, v := range values {
		var cv condValue
		valid := true
		switch c.fam {
		case famString, famStringFold:
			cv.toks = tokenize(v, false, vars)
		case famStringLike:
			cv.toks = tokenize(v, true, vars)
		case famARN:
			valid = splitARN(tokenize(v, true, vars), &cv.arn)
		case famNull:
			cv.b, valid = parseBool(v)
		default:
			cv.toks = tokenize(v, false, vars)
			cv.vars = hasVariables(cv.toks)
			if !cv.vars {
				valid = c.read(v, &cv)
			}
		}
		if !valid {
			c.broken = true
			bad = append(bad, v)
		}
		c.values = append(c.values, cv)
	}
	return c, bad
}

// read reads a Numeric, Date, Bool, Binary or IP policy value into cv.
func (c *condition) read(v string, cv *condValue) bool {
	var ok bool
	switch c.fam {
	case famNumeric:
		cv.num, ok = parseNumber(v)
	case famDate:
		cv.t, ok = parseDate(v)
	case famBool:
		cv.b, ok = parseBool(v)
	case famBinary:
		var err error
		cv.bin, err = base64.StdEncoding.DecodeString(v)
		ok = err == nil
	case famIP:
		cv.ip, ok = parsePrefix(v)
	}
	return ok
}

// splitARN cuts ARN pattern tokens into the six colon-separated parts
// (the last part keeps any further colons). A variable's value stays in
// the part it is written in. false when there are fewer than six parts.
func splitARN(toks []token, parts *[6][]token) bool {
	n := 0
	for _, t := range toks {
		if t.kind != tokLiteral {
			parts[n] = append(parts[n], t)
			continue
		}
		text := t.text
		for n < 5 {
			i := strings.IndexByte(text, ':')
			if i < 0 {
				break
			}
			if i > 0 {
				parts[n] = append(parts[n], token{tokLiteral, text[:i]})
			}
			text = text[i+1:]
			n++
		}
		if text != "" {
			parts[n] = append(parts[n], token{tokLiteral, text})
		}
	}
	return n == 5
}

// conditionsHold reports whether every condition of the statement holds.
func (e *evaluator) conditionsHold(m *matcher) bool {
	for i := range m.conditions {
		if !e.holds(&m.conditions[i]) {
			return false
		}
	}
	return true
}

func (e *evaluator) holds(c *condition) bool {
	if c.broken {
		return false
	}
	vals := e.lookup(c.key)
	if c.fam == famNull {
		for _, v := range c.values {
			if v.b == (len(vals) == 0) { // "true": the key must be absent
				return true
			}
		}
		return false
	}
	if len(vals) == 0 {
		switch {
		case c.ifExists, c.set == setAll:
			return true
		case c.set == setAny:
			return false
		}
		return c.neg
	}
	switch c.set {
	case setAny:
		holds := false
		for _, v := range vals {
			hit, ok := e.matchesAny(c, v)
			if !ok {
				return false
			}
			holds = holds || hit != c.neg
		}
		return holds
	case setAll:
		for _, v := range vals {
			hit, ok := e.matchesAny(c, v)
			if !ok || hit == c.neg {
				return false
			}
		}
		return true
	}
	hit := false
	for _, v := range vals {
		h, ok := e.matchesAny(c, v)
		if !ok {
			return false
		}
		hit = hit || h
	}
	return hit != c.neg
}

// matchesAny reports whether the request value v matches any of the
// policy values under the positive form of the operator; ok is false when
// a value cannot be read for the operator.
func (e *evaluator) matchesAny(c *condition, v string) (hit, ok bool) {
	for i := range c.values {
		h, ok := e.match(c, &c.values[i], v)
		if !ok {
			return false, false
		}
		hit = hit || h
	}
	return hit, true
}

func (e *evaluator) match(c *condition, cv *condValue, v string) (hit, ok bool) {
	switch c.fam {
	case famString, famStringLike:
		return globMatch(e, cv.toks, v, false), true
	case famStringFold:
		return globMatch(e, cv.toks, v, true), true
	case famARN:
		return e.matchARN(&cv.arn, v)
	}
	if cv.vars {
		s, resolved := e.substitute(cv.toks)
		if !resolved {
			return false, true // matches nothing
		}
		var sub condValue
		if !c.read(s, &sub) {
			return false, false
		}
		cv = &sub
	}
	switch c.fam {
	case famNumeric:
		x, ok := parseNumber(v)
		return ok && compare(c.cmp, cmpFloat(x, cv.num)), ok
	case famDate:
		t, ok := parseDate(v)
		return ok && compare(c.cmp, t.Compare(cv.t)), ok
	case famBool:
		b, ok := parseBool(v)
		return ok && b == cv.b, ok
	case famBinary:
		x, err := base64.StdEncoding.DecodeString(v)
		return err == nil && bytes.Equal(x, cv.bin), err == nil
	case famIP:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return false, false
		}
		return cv.ip.Contains(a.WithZone("").Unmap()), true
	}
	return false, false
}

// matchARN matches a request ARN against the six pattern parts, each
// with its own wildcards (so * does not cross a colon, except in the
// last part, which holds the rest of the ARN).
func (e *evaluator) matchARN(parts *[6][]token, v string) (hit, ok bool) {
	rest := v
	hit = true
	for i := range 6 {
		part := rest
		if i < 5 {
			j := strings.IndexByte(rest, ':')
			if j < 0 {
				return false, false // not an ARN
			}
			part, rest = rest[:j], rest[j+1:]
		}
		if hit && !globMatch(e, parts[i], part, false) {
			hit = false
		}
	}
	return hit, true
}

// substitute resolves the variables of a value; false when one has no
// single value.
func (e *evaluator) substitute(toks []token) (string, bool) {
	if len(toks) == 1 && toks[0].kind == tokVar {
		return e.variable(toks[0].text)
	}
	var b strings.Builder
	for _, t := range toks {
		if t.kind != tokVar {
			b.WriteString(t.text)
			continue
		}
		v, ok := e.variable(t.text)
		if !ok {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare tells whether the result of a three-way comparison (request
// value against policy value) satisfies the operator.
func compare(op comparison, r int) bool {
	switch op {
	case cmpLt:
		return r < 0
	case cmpLe:
		return r <= 0
	case cmpGt:
		return r > 0
	case cmpGe:
		return r >= 0
	}
	return r == 0
}

// parseNumber reads a decimal number; NaN and infinities are refused, as
// they compare with nothing.
func parseNumber(s string) (float64, bool) {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}

// dateLayouts are the ISO 8601 forms accepted besides epoch seconds; a
// time without a zone is UTC.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseDate reads an ISO 8601 / RFC 3339 date or date and time, or epoch
// seconds (aws:EpochTime).
func parseDate(s string) (time.Time, bool) {
	if s != "" && s[0] >= '0' && s[0] <= '9' && !strings.Contains(s, "-") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > 1<<40 {
			return time.Time{}, false
		}
		return time.Unix(n, 0), true
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parsePrefix reads a CIDR block or a single address, IPv4 or IPv6.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}
