package acl

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Statements prepared for evaluation: patterns cut into tokens, principals
// sorted by kind, condition operators decoded and their values read for
// the operator, all once at parse time.

// matcher is a statement ready for evaluation.
type matcher struct {
	effect       effect
	actions      [][]token // no variables; matched case-insensitively
	notAction    bool
	resources    [][]token
	notResource  bool
	principals   *principalSet // nil when the statement has none
	notPrincipal bool
	conditions   []condition
}

type effect uint8

const (
	effectNone effect = iota // not "Allow" or "Deny": the statement never applies
	effectAllow
	effectDeny
)

// principalSet is a Principal element sorted by what it names.
type principalSet struct {
	anyone   bool     // "*" or {"AWS": "*"}
	accounts []string // 12-digit ids, from "123456789012" or "arn:aws:iam::123456789012:root"
	arns     []string // other ARNs, matched exactly (IAM allows no wildcards here)
	services []string
}

var rootARN = regexp.MustCompile(`^arn:[^:]+:iam::([0-9]{12}):root$`)

// compileStatement prepares s. vars says whether policy variables are
// substituted (Version 2012-10-17 only). It also returns the condition
// values that cannot be read for their operator, one sentence each.
func compileStatement(s *Statement, vars bool) (*matcher, []string) {
	m := &matcher{notAction: s.NotAction, notResource: s.NotResource, notPrincipal: s.NotPrincipal}
	switch s.Effect {
	case "Allow":
		m.effect = effectAllow
	case "Deny":
		m.effect = effectDeny
	}
	for _, a := range s.Actions {
		m.actions = append(m.actions, tokenize(a, true, false))
	}
	for _, r := range s.Resources {
		m.resources = append(m.resources, tokenize(r, true, vars))
	}
	if s.Principal != nil {
		ps := &principalSet{}
		for _, id := range s.Principal["AWS"] {
			switch {
			case id == "*":
				ps.anyone = true
			case accountID.MatchString(id):
				ps.accounts = append(ps.accounts, id)
			case rootARN.MatchString(id):
				ps.accounts = append(ps.accounts, rootARN.FindStringSubmatch(id)[1])
			default:
				ps.arns = append(ps.arns, id)
			}
		}
		ps.services = s.Principal["Service"]
		m.principals = ps
	}
	var problems []string
	// Sorted so that problems come out in a stable order; the order of
	// evaluation does not matter (all conditions must hold).
	for _, op := range slices.Sorted(maps.Keys(s.Condition)) {
		keys := s.Condition[op]
		for _, key := range slices.Sorted(maps.Keys(keys)) {
			c, bad := compileCondition(op, key, keys[key], vars)
			m.conditions = append(m.conditions, c)
			for _, v := range bad {
				problems = append(problems, fmt.Sprintf("condition %s %s: %q is not a valid value for the operator.", op, key, v))
			}
		}
	}
	return m, problems
}

// token is one piece of a pattern.
type token struct {
	kind tokenKind
	text string // the literal text, or the lower-case key of a variable
}

type tokenKind uint8

const (
	tokLiteral tokenKind = iota
	tokStar              // * : any run of characters
	tokOne               // ? : any one character
	tokVar               // ${key}
)

// tokenize cuts a pattern into tokens. glob makes * and ? wildcards;
// vars makes ${key} a variable and ${*}, ${?}, ${$} the literal
// characters. An unclosed ${ is literal text.
func tokenize(s string, glob, vars bool) []token {
	var toks []token
	var lit strings.Builder // literal text not yet made a token
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, token{tokLiteral, lit.String()})
			lit.Reset()
		}
	}
	// Where the last } is tells in constant time whether a ${ is closed,
	// which keeps a document full of unclosed ${ linear to read.
	lastClose := strings.LastIndexByte(s, '}')
	isVar := func(i int) bool { return vars && strings.HasPrefix(s[i:], "${") && lastClose > i+1 }
	isWild := func(i int) bool { return glob && (s[i] == '*' || s[i] == '?') }
	for i := 0; i < len(s); {
		switch {
		case isWild(i):
			flush()
			kind := tokStar
			if s[i] == '?' {
				kind = tokOne
			}
			if n := len(toks); kind != tokStar || n == 0 || toks[n-1].kind != tokStar {
				toks = append(toks, token{kind: kind}) // ** is *
			}
			i++
		case isVar(i):
			end := i + strings.IndexByte(s[i:], '}')
			switch name := s[i+2 : end]; name {
			case "*", "?", "$":
				lit.WriteString(name)
			default:
				flush()
				toks = append(toks, token{tokVar, strings.ToLower(name)})
			}
			i = end + 1
		default:
			j := i + 1
			for j < len(s) && !isWild(j) && !isVar(j) {
				j++
			}
			lit.WriteString(s[i:j])
			i = j
		}
	}
	flush()
	return toks
}

func hasVariables(toks []token) bool {
	return slices.ContainsFunc(toks, func(t token) bool { return t.kind == tokVar })
}

// globMatch reports whether s matches the pattern toks; fold compares
// letters case-insensitively. Variables are looked up in e (nil: none);
// a variable that has no single value makes the pattern match nothing,
// and a substituted value is matched literally, so a * in it is no
// wildcard.
//
// The classic one-star backtracking: on a mismatch, let the last * seen
// swallow one more character and retry after it. Every other token has a
// fixed length once substituted, which is what makes this enough.
func globMatch(e *evaluator, toks []token, s string, fold bool) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(toks) {
			t := &toks[ti]
			switch t.kind {
			case tokStar:
				if ti == len(toks)-1 {
					return true // a final star takes whatever is left
				}
				starT, starS = ti, si
				ti++
				continue
			case tokOne:
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			default:
				text := t.text
				if t.kind == tokVar {
					v, ok := e.variable(t.text)
					if !ok {
						return false
					}
					text = v
				}
				if n, ok := hasPrefix(s[si:], text, fold); ok {
					si += n
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if starT < 0 || starS >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starS:])
		starS += n
		// A literal after the star can only match where it occurs: jump
		// there rather than trying every position (ARN patterns are
		// mostly literal text between stars).
		if next := starT + 1; !fold && next < len(toks) && toks[next].kind == tokLiteral {
			j := strings.Index(s[starS:], toks[next].text)
			if j < 0 {
				return false
			}
			starS += j
		}
		si, ti = starS, starT+1
	}
}

// hasPrefix reports whether s starts with prefix and how many bytes of s
// that prefix covers (case folding may change a character's length).
func hasPrefix(s, prefix string, fold bool) (int, bool) {
	if !fold {
		return len(prefix), strings.HasPrefix(s, prefix)
	}
	i := 0
	for _, pr := range prefix {
		if i >= len(s) {
			return 0, false
		}
		sr, n := rune(s[i]), 1
		if sr >= utf8.RuneSelf {
			sr, n = utf8.DecodeRuneInString(s[i:])
		}
		if sr != pr && lower(sr) != lower(pr) {
			return 0, false
		}
		i += n
	}
	return i, true
}

func lower(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}
