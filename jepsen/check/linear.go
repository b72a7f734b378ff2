package check

import (
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register model of one secret, written from the API spec (not from
// fsm): a put of value v with ClientRequestToken t creates version t and
// moves AWSCURRENT to it; a get of AWSCURRENT returns the current version
// id and value, or ResourceNotFoundException before the first version. A
// put whose outcome is unknown may take effect at any point after its call
// or never.

type regState struct{ VersionID, Value string }

type regInput struct {
	Kind         string
	Token, Value string
}

type regOutput struct {
	Unknown   bool
	Err       string
	VersionID string
	Value     string
}

const errNotFound = "ResourceNotFoundException"

func regStep(st, in, out interface{}) (bool, interface{}) {
	s, i, o := st.(regState), in.(regInput), out.(regOutput)
	switch i.Kind {
	case KindPut:
		next := regState{VersionID: i.Token, Value: i.Value}
		if o.Unknown {
			return true, next
		}
		return o.Err == "" && o.VersionID == i.Token, next
	case KindGet:
		if o.Err == errNotFound {
			return s.VersionID == "", s
		}
		return o.Err == "" && o.VersionID == s.VersionID && o.Value == s.Value, s
	}
	return false, s
}

// RegisterModel is the porcupine model of one secret's AWSCURRENT.
var RegisterModel = porcupine.Model{
	Init: func() interface{} { return regState{} },
	Step: regStep,
	Hash: func(st interface{}) uint64 {
		h := fnv.New64a()
		s := st.(regState)
		h.Write([]byte(s.VersionID))
		h.Write([]byte{0})
		h.Write([]byte(s.Value))
		return h.Sum64()
	},
	DescribeOperation: func(in, out interface{}) string {
		i, o := in.(regInput), out.(regOutput)
		res := "ok " + short(o.VersionID)
		switch {
		case o.Unknown:
			res = "unknown"
		case o.Err != "":
			res = o.Err
		}
		if i.Kind == KindPut {
			return fmt.Sprintf("put(%s) -> %s", short(i.Token), res)
		}
		if o.Err == "" && !o.Unknown {
			res += " " + short(o.Value)
		}
		return "get() -> " + res
	},
	DescribeState: func(st interface{}) string {
		s := st.(regState)
		if s.VersionID == "" {
			return "(no version)"
		}
		return "AWSCURRENT=" + short(s.VersionID)
	},
}

func short(s string) string {
	if len(s) > 14 {
		return s[len(s)-14:]
	}
	return s
}

// RegisterHistories turns the register operations into one porcupine
// history per secret. Failed and unknown reads are dropped (they observed
// nothing); failed puts are dropped; an unknown put that no read observed
// (no get and no final version read returned its version) is dropped, and
// one that was observed ends when the first read that saw it ended (or
// never, if none did).
func RegisterHistories(ops []Op, final []FinalRead) map[string][]porcupine.Operation {
	firstSeen := map[string]int64{} // secret/version -> earliest return of an ok read that saw it
	seen := map[string]bool{}
	for _, o := range ops {
		if o.Kind == KindGet && o.Status == StatusOK && o.Err == "" {
			k := o.Secret + "\x00" + o.VersionID
			if t, ok := firstSeen[k]; !ok || o.Ret < t {
				firstSeen[k] = o.Ret
			}
			seen[k] = true
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
		var in regInput
		var res regOutput
		ret := o.Ret
		switch {
		case o.Kind == KindPut && o.Status == StatusOK:
			in = regInput{Kind: KindPut, Token: o.Token, Value: o.Value}
			res = regOutput{VersionID: o.VersionID}
		case o.Kind == KindPut && o.Status == StatusUnknown:
			k := o.Secret + "\x00" + o.Token
			if !seen[k] {
				continue
			}
			in = regInput{Kind: KindPut, Token: o.Token, Value: o.Value}
			res = regOutput{Unknown: true}
			ret = math.MaxInt64
			if t, ok := firstSeen[k]; ok && t >= o.Call {
				ret = t
			}
		case o.Kind == KindGet && o.Status == StatusOK:
			in = regInput{Kind: KindGet}
			res = regOutput{Err: o.Err, VersionID: o.VersionID, Value: o.Read}
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
	hs := RegisterHistories(f.Ops, f.Final)
	secrets := make([]string, 0, len(hs))
	for s := range hs {
		secrets = append(secrets, s)
	}
	sort.Strings(secrets)
	var ok, illegal, unknown, nops int
	for _, s := range secrets {
		h := hs[s]
		nops += len(h)
		res, info := porcupine.CheckOperationsVerbose(RegisterModel, h, timeout)
		switch res {
		case porcupine.Ok:
			ok++
		case porcupine.Illegal:
			illegal++
			msg := "secret " + s + " is not linearizable"
			if htmlDir != "" {
				info.AddAnnotations(annotations(f.Events))
				path := filepath.Join(htmlDir, "linear-"+unsafeName.ReplaceAllString(s, "_")+".html")
				if err := os.MkdirAll(htmlDir, 0o755); err == nil {
					if err := porcupine.VisualizePath(RegisterModel, info, path); err == nil {
						msg += "; see " + path
					}
				}
			}
			r.addError(msg)
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
