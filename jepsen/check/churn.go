package check

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kinds of the create/delete churn workload on a small set of names.
const (
	KindChurnCreate   = "churn-create"   // CreateSecret(Name=Secret, token, value)
	KindChurnDelete   = "churn-delete"   // DeleteSecret; Force: ForceDeleteWithoutRecovery, else a 7-day window
	KindChurnRestore  = "churn-restore"  // RestoreSecret
	KindChurnDescribe = "churn-describe" // DescribeSecret: Scheduled (DeletedDate set), VersionID holding AWSCURRENT
)

const errInvalidRequest = "InvalidRequestException"

// IsChurn reports whether kind is one of the churn workload's.
func IsChurn(kind string) bool {
	switch kind {
	case KindChurnCreate, KindChurnDelete, KindChurnRestore, KindChurnDescribe:
		return true
	}
	return false
}

// The per-name model (shared/spec/secretsmanager-api.md §3.5, §3.6,
// §4.1, §4.6, §4.10, §4.11): a name is absent, active or scheduled for
// deletion, and an existing secret has the version its create made
// (token):
//
//   - CreateSecret: absent -> active with the token's version; active ->
//     ResourceExistsException, unless the token is the version the
//     secret has (an idempotent retry: success, no change); scheduled ->
//     InvalidRequestException.
//   - DeleteSecret with ForceDeleteWithoutRecovery: success from any
//     state (even absent), then absent.
//   - DeleteSecret with a recovery window: active -> scheduled;
//     scheduled -> InvalidRequestException; absent ->
//     ResourceNotFoundException.
//   - RestoreSecret: scheduled -> active; active: success, no change;
//     absent -> ResourceNotFoundException.
//   - DescribeSecret: absent -> ResourceNotFoundException; otherwise the
//     secret, with DeletedDate iff scheduled and AWSCURRENT on the
//     token's version.
//
// A write whose outcome is unknown may take effect at any point after its
// call, or never.
const (
	nameAbsent = iota
	nameActive
	nameScheduled
)

type churnState struct {
	state int
	token string
}

type churnInput struct {
	Kind         string
	Token, Value string
	Force        bool
}

type churnOutput struct {
	Unknown   bool
	Err       string
	VersionID string
	Scheduled bool
}

func churnStep(st, in, out interface{}) (bool, interface{}) {
	s, i, o := st.(churnState), in.(churnInput), out.(churnOutput)
	next, want := s, ""
	switch i.Kind {
	case KindChurnCreate:
		switch {
		case s.state == nameAbsent:
			next = churnState{state: nameActive, token: i.Token}
		case s.state == nameScheduled:
			want = errInvalidRequest
		case s.token != i.Token:
			want = errExists
		}
		if !o.Unknown && want == "" && o.VersionID != "" && o.VersionID != i.Token {
			return false, s
		}
	case KindChurnDelete:
		switch {
		case i.Force:
			next = churnState{}
		case s.state == nameAbsent:
			want = errNotFound
		case s.state == nameScheduled:
			want = errInvalidRequest
		default:
			next.state = nameScheduled
		}
	case KindChurnRestore:
		switch s.state {
		case nameAbsent:
			want = errNotFound
		case nameScheduled:
			next.state = nameActive
		}
	case KindChurnDescribe:
		if s.state == nameAbsent {
			return o.Err == errNotFound, s
		}
		return o.Err == "" && o.Scheduled == (s.state == nameScheduled) && o.VersionID == s.token, s
	default:
		return false, s
	}
	if o.Unknown {
		return true, next
	}
	return o.Err == want, next
}

func stateName(s churnState) string {
	switch s.state {
	case nameActive:
		return "active " + short(s.token)
	case nameScheduled:
		return "scheduled " + short(s.token)
	}
	return "absent"
}

// ChurnModel is the porcupine model of one name of the churn workload.
var ChurnModel = porcupine.Model{
	Init: func() interface{} { return churnState{} },
	Step: churnStep,
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(churnInput), out.(churnOutput)
		res := "ok"
		switch {
		case o.Unknown:
			res = "unknown"
		case o.Err != "":
			res = o.Err
		case i.Kind == KindChurnDescribe && o.Scheduled:
			res = "scheduled " + short(o.VersionID)
		case i.Kind == KindChurnDescribe:
			res = "active " + short(o.VersionID)
		}
		switch i.Kind {
		case KindChurnCreate:
			return fmt.Sprintf("create(%s) -> %s", short(i.Token), res)
		case KindChurnDelete:
			if i.Force {
				return "delete(force) -> " + res
			}
			return "delete(window) -> " + res
		case KindChurnRestore:
			return "restore -> " + res
		}
		return "describe -> " + res
	},
	DescribeState: func(st interface{}) string { return stateName(st.(churnState)) },
}

// ChurnHistories turns the churn operations into one porcupine history
// per name. Failed operations and failed reads are dropped; definite
// error answers are kept (the model checks them); unknown writes stay
// open to the end.
func ChurnHistories(ops []Op) map[string][]porcupine.Operation {
	clients := map[string]map[int]int{}
	out := map[string][]porcupine.Operation{}
	for _, o := range ops {
		if !IsChurn(o.Kind) || o.Status == StatusFail {
			continue
		}
		in := churnInput{Kind: o.Kind, Token: o.Token, Value: o.Value, Force: o.Force}
		res := churnOutput{Err: o.Err, VersionID: o.VersionID, Scheduled: o.Scheduled}
		ret := o.Ret
		if o.Status == StatusUnknown {
			if o.Kind == KindChurnDescribe {
				continue
			}
			res, ret = churnOutput{Unknown: true}, math.MaxInt64
		}
		m := clients[o.Secret]
		if m == nil {
			m = map[int]int{}
			clients[o.Secret] = m
		}
		id, ok := m[o.Process]
		if !ok {
			id = len(m)
			m[o.Process] = id
		}
		out[o.Secret] = append(out[o.Secret], porcupine.Operation{ClientId: id, Input: in, Output: res,
			Call: o.Call, Return: ret, Metadata: fmt.Sprintf("op %d on %s", o.ID, o.Node)})
	}
	return out
}

// ChurnLinearizable checks every churn name with ChurnModel; HTML for
// every illegal name goes to htmlDir. The second result is false when
// the run had no churn workload.
func ChurnLinearizable(f Files, timeout time.Duration, htmlDir string) (Result, bool) {
	r := Result{Name: "churn linearizable (per name)"}
	hs := ChurnHistories(f.Ops)
	if len(hs) == 0 {
		return r, false
	}
	names := make([]string, 0, len(hs))
	for n := range hs {
		names = append(names, n)
	}
	sort.Strings(names)
	var ok, illegal, unknown, nops int
	for _, n := range names {
		nops += len(hs[n])
		res, info := porcupine.CheckOperationsVerbose(ChurnModel, hs[n], timeout)
		switch res {
		case porcupine.Ok:
			ok++
		case porcupine.Illegal:
			illegal++
			r.addError("name " + n + " is not linearizable" + visualize(ChurnModel, info, f.Events, htmlDir, "churn-"+n))
		default:
			unknown++
			r.addError("name " + n + ": check timed out")
		}
	}
	r.Detail = fmt.Sprintf("%d/%d names Ok, %d Illegal, %d Unknown (%d ops checked)", ok, len(names), illegal, unknown, nops)
	switch {
	case illegal > 0:
		r.Verdict = Invalid
	case unknown > 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r, true
}

// ChurnSet checks research §7's churn rule: every acknowledged create of
// a name that no force delete could have followed (no force delete that
// did not definitely fail returned after the create was called) exists
// at the end (a final DescribeSecret finds it, active or scheduled). A
// name with such a create and no successful final describe is UNKNOWN.
func ChurnSet(f Files) (Result, bool) {
	r := Result{Name: "churn creates kept"}
	type finalView struct{ read, found bool }
	finals := map[string]*finalView{}
	lastForce := map[string]int64{} // name -> latest return of a force delete that may have happened
	seen := false
	for _, o := range f.Ops {
		if !IsChurn(o.Kind) {
			continue
		}
		seen = true
		switch {
		case o.Final && o.Kind == KindChurnDescribe && o.Status == StatusOK:
			fv := finals[o.Secret]
			if fv == nil {
				fv = &finalView{}
				finals[o.Secret] = fv
			}
			fv.read = true
			if o.Err == "" {
				fv.found = true
			}
		case o.Kind == KindChurnDelete && o.Force && (o.Status == StatusUnknown || o.Status == StatusOK && o.Err == ""):
			ret := o.Ret
			if o.Status == StatusUnknown {
				ret = math.MaxInt64
			}
			lastForce[o.Secret] = max(lastForce[o.Secret], ret)
		}
	}
	if !seen {
		return r, false
	}
	var kept, lost, unread int
	for _, o := range f.Ops {
		if o.Kind != KindChurnCreate || o.Status != StatusOK || o.Err != "" {
			continue
		}
		if t, ok := lastForce[o.Secret]; ok && t > o.Call {
			continue // may have been deleted since
		}
		kept++
		fv := finals[o.Secret]
		switch {
		case fv == nil || !fv.read:
			unread++
			r.addError(fmt.Sprintf("op %d: create of %s acknowledged, no final describe succeeded", o.ID, o.Secret))
		case !fv.found:
			lost++
			r.addError(fmt.Sprintf("op %d: create of %s (token %s) acknowledged at %s, never force-deleted after, but absent at the end",
				o.ID, o.Secret, o.Token, time.Duration(o.Ret)))
		}
	}
	r.Detail = fmt.Sprintf("%d of %d acknowledged creates never force-deleted after lost, %d not read back", lost, kept, unread)
	switch {
	case lost > 0:
		r.Verdict = Invalid
	case unread > 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r, true
}
