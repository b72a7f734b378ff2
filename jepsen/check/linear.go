package check

import (
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The model of one secret: versions with staging labels (research
// §2.3), written from shared/spec/secretsmanager-api.md (§3.4, §4.2,
// §4.4, §4.9), not from fsm:
//
//   - PutSecretValue with token t and the default stages creates version
//     t and moves AWSCURRENT to it; whenever AWSCURRENT moves from P to
//     N, AWSPREVIOUS moves to P (and leaves N), and a move by a new value
//     drops AWSPENDING. The first version always gets AWSCURRENT. A known
//     token with the same value is a no-op; with another value it is
//     ResourceExistsException.
//   - GetSecretValue by label L returns the version holding L, its value
//     and all its labels (when recorded), or ResourceNotFoundException
//     when no version holds L.
//   - UpdateSecretVersionStage(L, RemoveFrom r, MoveTo m) is a
//     compare-and-set: a given id that is not a version, r given but not
//     the holder of L, m given while L is on another version and r not
//     given, or AWSCURRENT with no m, is InvalidParameterException and
//     changes nothing; otherwise L leaves r and goes to m (AWSCURRENT
//     drags AWSPREVIOUS; AWSPENDING is untouched).
//
// An operation whose outcome is unknown may take effect at any point
// after its call, or never.

type secState struct {
	versions map[string]string // VersionId -> value
	labels   map[string]string // label -> VersionId
}

type secInput struct {
	Kind         string
	Token, Value string // put
	Stage        string // get (the label read), move
	Version      string // get by VersionId (Stage empty)
	RemoveFrom   string // move
	MoveTo       string // move
}

type secOutput struct {
	Unknown   bool
	Err       string
	VersionID string
	Value     string
	Stages    []string // nil: not recorded
}

const (
	errNotFound     = "ResourceNotFoundException"
	errInvalidParam = "InvalidParameterException"
	errExists       = "ResourceExistsException"
)

func (s secState) stagesOf(id string) []string {
	var out []string
	for l, v := range s.labels {
		if v == id {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func copyMap(m map[string]string, extra int) map[string]string {
	out := make(map[string]string, len(m)+extra)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// attach moves label l to version id in labels (mutated), applying the
// AWSCURRENT rules; byValue is true for a move caused by a new value.
func attach(labels map[string]string, l, id string, byValue bool) {
	old, had := labels[l]
	labels[l] = id
	if l != StageCurrent || (had && old == id) {
		return
	}
	if byValue {
		delete(labels, StagePending)
	}
	if had {
		labels[StagePrevious] = old
	} else if labels[StagePrevious] == id {
		delete(labels, StagePrevious)
	}
}

func (s secState) put(token, value string) secState {
	n := secState{versions: copyMap(s.versions, 1), labels: copyMap(s.labels, 1)}
	n.versions[token] = value
	attach(n.labels, StageCurrent, token, true)
	return n
}

// move returns the state after UpdateSecretVersionStage and the error
// type it must answer ("" for success).
func (s secState) move(l, r, m string) (secState, string) {
	if _, ok := s.versions[m]; m != "" && !ok {
		return s, errInvalidParam
	}
	if _, ok := s.versions[r]; r != "" && !ok {
		return s, errInvalidParam
	}
	h, held := s.labels[l]
	switch {
	case m == "" && r == "":
		return s, errInvalidParam
	case r != "" && (!held || h != r):
		return s, errInvalidParam
	case m != "" && held && h != m && r == "":
		return s, errInvalidParam
	case l == StageCurrent && m == "":
		return s, errInvalidParam
	}
	n := secState{versions: s.versions, labels: copyMap(s.labels, 1)}
	if r != "" && n.labels[l] == r {
		delete(n.labels, l)
	}
	if m != "" {
		if l == StageCurrent && held {
			n.labels[l] = h // attach sees where AWSCURRENT came from
		}
		attach(n.labels, l, m, false)
	}
	return n, ""
}

func secStep(st, in, out interface{}) (bool, interface{}) {
	s, i, o := st.(secState), in.(secInput), out.(secOutput)
	switch i.Kind {
	case KindPut:
		if v, ok := s.versions[i.Token]; ok { // a retry of a known token
			switch {
			case o.Unknown:
				return true, s
			case v == i.Value:
				return o.Err == "" && o.VersionID == i.Token && (o.Stages == nil || sameSet(o.Stages, s.stagesOf(i.Token))), s
			}
			return o.Err == errExists, s
		}
		n := s.put(i.Token, i.Value)
		if o.Unknown {
			return true, n
		}
		return o.Err == "" && o.VersionID == i.Token && (o.Stages == nil || sameSet(o.Stages, n.stagesOf(i.Token))), n
	case KindGet:
		id, ok := s.labels[i.Stage]
		if i.Version != "" {
			_, ok = s.versions[i.Version]
			id = i.Version
		}
		if o.Err == errNotFound {
			return !ok, s
		}
		return ok && o.Err == "" && o.VersionID == id && o.Value == s.versions[id] &&
			(o.Stages == nil || sameSet(o.Stages, s.stagesOf(id))), s
	case KindMove:
		n, want := s.move(i.Stage, i.RemoveFrom, i.MoveTo)
		if o.Unknown {
			return true, n
		}
		return o.Err == want, n
	}
	return false, s
}

// SecretModel is the porcupine model of one secret's versions and
// staging labels.
var SecretModel = porcupine.Model{
	Init: func() interface{} { return secState{versions: map[string]string{}, labels: map[string]string{}} },
	Step: secStep,
	Equal: func(a, b interface{}) bool {
		x, y := a.(secState), b.(secState)
		if len(x.labels) != len(y.labels) || len(x.versions) != len(y.versions) {
			return false
		}
		for k, v := range x.labels {
			if y.labels[k] != v {
				return false
			}
		}
		for k, v := range x.versions {
			if w, ok := y.versions[k]; !ok || w != v {
				return false
			}
		}
		return true
	},
	Hash: func(st interface{}) uint64 {
		s := st.(secState)
		h := fnv.New64a()
		ls := make([]string, 0, len(s.labels))
		for l, v := range s.labels {
			ls = append(ls, l+"="+v)
		}
		sort.Strings(ls)
		for _, l := range ls {
			h.Write([]byte(l))
			h.Write([]byte{0})
		}
		fmt.Fprintf(h, "%d", len(s.versions))
		return h.Sum64()
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(secInput), out.(secOutput)
		res := "ok"
		switch {
		case o.Unknown:
			res = "unknown"
		case o.Err != "":
			res = o.Err
		}
		switch i.Kind {
		case KindPut:
			return fmt.Sprintf("put(%s) -> %s", short(i.Token), res)
		case KindMove:
			return fmt.Sprintf("move(%s: %s->%s) -> %s", i.Stage, short(i.RemoveFrom), short(i.MoveTo), res)
		}
		if o.Err == "" && !o.Unknown {
			res += " " + short(o.VersionID)
			if o.Stages != nil {
				res += fmt.Sprint(o.Stages)
			}
		}
		if i.Version != "" {
			return fmt.Sprintf("get(version %s) -> %s", short(i.Version), res)
		}
		return fmt.Sprintf("get(%s) -> %s", i.Stage, res)
	},
	DescribeState: func(st interface{}) string {
		s := st.(secState)
		if len(s.versions) == 0 {
			return "(no version)"
		}
		ls := make([]string, 0, len(s.labels))
		for l, v := range s.labels {
			ls = append(ls, l+"="+short(v))
		}
		sort.Strings(ls)
		return fmt.Sprintf("%d versions {%s}", len(s.versions), strings.Join(ls, " "))
	},
}

func short(s string) string {
	if len(s) > 14 {
		return s[len(s)-14:]
	}
	return s
}

// SecretHistories turns the operations into one porcupine history per
// secret. Failed and unknown reads are dropped (they observed nothing);
// failed writes are dropped; an unknown put that no read observed (no
// get, no successful label move naming it and no final version read
// returned its version) is dropped, and one that was observed ends when
// the first observation ended (or never, if only a final read saw it).
// An unknown label move may take effect at any time after its call, or
// never. Label moves answered InvalidParameterException are definite
// answers the model checks.
func SecretHistories(ops []Op, final []FinalRead) map[string][]porcupine.Operation {
	firstSeen := map[string]int64{} // secret/version -> earliest return of an ok op that saw it
	seen := map[string]bool{}
	saw := func(secret, version string, ret int64) {
		if version == "" {
			return
		}
		k := secret + "\x00" + version
		if t, ok := firstSeen[k]; !ok || ret < t {
			firstSeen[k] = ret
		}
		seen[k] = true
	}
	for _, o := range ops {
		if o.Status != StatusOK || o.Err != "" {
			continue
		}
		switch o.Kind {
		case KindGet:
			saw(o.Secret, o.VersionID, o.Ret)
		case KindMove:
			saw(o.Secret, o.MoveTo, o.Ret)
			saw(o.Secret, o.RemoveFrom, o.Ret)
		}
	}
	for _, f := range final {
		if f.Kind == "version" && f.Found && f.Err == "" {
			seen[f.Secret+"\x00"+f.VersionID] = true
		}
	}
	// Client ids are dense per secret (porcupine draws one lane per id).
	clients := map[string]map[int]int{}
	clientID := func(secret string, p int) int {
		m := clients[secret]
		if m == nil {
			m = map[int]int{}
			clients[secret] = m
		}
		if id, ok := m[p]; ok {
			return id
		}
		m[p] = len(m)
		return m[p]
	}
	out := map[string][]porcupine.Operation{}
	for _, o := range ops {
		var in secInput
		var res secOutput
		ret := o.Ret
		switch {
		case o.Kind == KindPut && o.Status == StatusOK:
			in = secInput{Kind: KindPut, Token: o.Token, Value: o.Value}
			res = secOutput{Err: o.Err, VersionID: o.VersionID, Stages: o.Stages}
		case o.Kind == KindPut && o.Status == StatusUnknown:
			k := o.Secret + "\x00" + o.Token
			if !seen[k] {
				continue
			}
			in = secInput{Kind: KindPut, Token: o.Token, Value: o.Value}
			res = secOutput{Unknown: true}
			ret = math.MaxInt64
			if t, ok := firstSeen[k]; ok && t >= o.Call {
				ret = t
			}
		case o.Kind == KindGet && o.Status == StatusOK:
			in = secInput{Kind: KindGet, Stage: o.ReadStage()}
			if o.ByVersion != "" {
				in = secInput{Kind: KindGet, Version: o.ByVersion}
			}
			res = secOutput{Err: o.Err, VersionID: o.VersionID, Value: o.Read, Stages: o.Stages}
		case o.Kind == KindMove && o.Status == StatusOK:
			in = secInput{Kind: KindMove, Stage: o.Stage, RemoveFrom: o.RemoveFrom, MoveTo: o.MoveTo}
			res = secOutput{Err: o.Err}
		case o.Kind == KindMove && o.Status == StatusUnknown:
			in = secInput{Kind: KindMove, Stage: o.Stage, RemoveFrom: o.RemoveFrom, MoveTo: o.MoveTo}
			res = secOutput{Unknown: true}
			ret = math.MaxInt64
		default:
			continue
		}
		out[o.Secret] = append(out[o.Secret], porcupine.Operation{
			ClientId: clientID(o.Secret, o.Process), Input: in, Output: res, Call: o.Call, Return: ret,
			Metadata: fmt.Sprintf("op %d on %s", o.ID, o.Node)})
	}
	return out
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Linearizable checks every secret's register history with porcupine. For
// each secret that is not linearizable it writes porcupine's HTML
// visualisation to htmlDir (if not empty), annotated with nemesis events.
// A secret whose check times out makes the verdict UNKNOWN.
func Linearizable(f Files, timeout time.Duration, htmlDir string) Result {
	r := Result{Name: "linearizable (per secret)"}
	hs := SecretHistories(f.Ops, f.Final)
	secrets := make([]string, 0, len(hs))
	for s := range hs {
		secrets = append(secrets, s)
	}
	sort.Strings(secrets)
	var ok, illegal, unknown, nops int
	for _, s := range secrets {
		h := hs[s]
		nops += len(h)
		res, info := porcupine.CheckOperationsVerbose(SecretModel, h, timeout)
		switch res {
		case porcupine.Ok:
			ok++
		case porcupine.Illegal:
			illegal++
			r.addError("secret " + s + " is not linearizable" + visualize(SecretModel, info, f.Events, htmlDir, "linear-"+s))
		default:
			unknown++
			r.addError("secret " + s + ": check timed out (reduce workers or ops per secret)")
		}
	}
	r.Detail = fmt.Sprintf("%d/%d secrets Ok, %d Illegal, %d Unknown (%d ops checked)", ok, len(secrets), illegal, unknown, nops)
	switch {
	case illegal > 0:
		r.Verdict = Invalid
	case unknown > 0 || len(secrets) == 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// visualize writes porcupine's HTML for an illegal history into htmlDir
// (nothing when htmlDir is empty) and returns "; see PATH" for the error
// message, or "" when no file was written.
func visualize(model porcupine.Model, info porcupine.LinearizationInfo, events []Event, htmlDir, name string) string {
	if htmlDir == "" {
		return ""
	}
	info.AddAnnotations(annotations(events))
	path := filepath.Join(htmlDir, unsafeName.ReplaceAllString(name, "_")+".html")
	if err := os.MkdirAll(htmlDir, 0o755); err != nil {
		return ""
	}
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return ""
	}
	return "; see " + path
}

func annotations(events []Event) []porcupine.Annotation {
	var out []porcupine.Annotation
	open := map[string]Event{}
	for _, e := range events {
		key := e.Fault + "/" + e.Node
		if e.Phase == "start" {
			open[key] = e
			continue
		}
		if s, ok := open[key]; ok {
			delete(open, key)
			out = append(out, porcupine.Annotation{Tag: "nemesis", Start: s.Time, End: e.Time,
				Description: e.Fault + " " + e.Node, Details: s.Detail, BackgroundColor: "#ffd0d0"})
		}
	}
	return out
}
