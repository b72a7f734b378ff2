package check

import (
	"fmt"
	"sort"
	"time"
)

// NoLostWrites checks that every acknowledged put's version is readable
// by VersionId with its value in the final reads, and that every
// acknowledged create exists. An acknowledged write with no successful
// final read makes the verdict UNKNOWN; one read as absent (or with
// another value) makes it INVALID.
func NoLostWrites(f Files) Result {
	r := Result{Name: "acked writes lost"}
	type key struct{ kind, secret, version string }
	finals := map[key][]FinalRead{}
	for _, fr := range f.Final {
		finals[key{fr.Kind, fr.Secret, fr.VersionID}] = append(finals[key{fr.Kind, fr.Secret, fr.VersionID}], fr)
	}
	var acked, lost, unread int
	for _, o := range f.Ops {
		if o.Status != StatusOK || o.Final {
			continue
		}
		var k key
		switch o.Kind {
		case KindPut:
			k = key{"version", o.Secret, o.Token}
		case KindCreate:
			k = key{"exists", o.Secret, ""}
		default:
			continue
		}
		acked++
		var read, found bool
		for _, fr := range finals[k] {
			if fr.Err != "" {
				continue
			}
			read = true
			if fr.Found && (o.Kind == KindCreate || fr.Value == o.Value) {
				found = true
			}
		}
		switch {
		case !read:
			unread++
			r.addError(fmt.Sprintf("op %d: %s %s %s acknowledged but no final read succeeded", o.ID, o.Kind, o.Secret, o.Token))
		case !found:
			lost++
			r.addError(fmt.Sprintf("op %d: %s %s %s acknowledged at %s but missing (or changed) in the final reads", o.ID, o.Kind, o.Secret, o.Token, time.Duration(o.Ret)))
		}
	}
	r.Detail = fmt.Sprintf("%d of %d acknowledged writes lost, %d not read back", lost, acked, unread)
	switch {
	case lost > 0:
		r.Verdict = Invalid
	case unread > 0 || acked == 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// NoPhantoms checks that every (VersionId, value) a read returned — a get
// during the run or a final version read — was written by some attempted
// put of that secret (whatever its outcome), and that every set element
// found at the end was attempted.
func NoPhantoms(f Files) Result {
	r := Result{Name: "phantom versions"}
	written := map[[2]string]string{} // secret, token -> value
	created := map[string]bool{}
	for _, o := range f.Ops {
		switch o.Kind {
		case KindPut:
			written[[2]string{o.Secret, o.Token}] = o.Value
		case KindCreate:
			created[o.Secret] = true
		}
	}
	var reads, phantoms int
	check := func(what, secret, version, value string) {
		reads++
		v, ok := written[[2]string{secret, version}]
		if !ok || v != value {
			phantoms++
			r.addError(fmt.Sprintf("%s of %s returned version %s with a value no put wrote there", what, secret, version))
		}
	}
	for _, o := range f.Ops {
		if o.Kind == KindGet && o.Status == StatusOK && o.Err == "" {
			check(fmt.Sprintf("op %d", o.ID), o.Secret, o.VersionID, o.Read)
		}
	}
	for _, fr := range f.Final {
		switch {
		case fr.Err != "" || !fr.Found:
		case fr.Kind == "version":
			check("final read on "+fr.Node, fr.Secret, fr.VersionID, fr.Value)
		case fr.Kind == "exists":
			reads++
			if !created[fr.Secret] {
				phantoms++
				r.addError("final read found " + fr.Secret + ", which no create attempted")
			}
		}
	}
	r.Detail = fmt.Sprintf("%d phantoms in %d reads", phantoms, reads)
	r.Verdict = Valid
	if phantoms > 0 {
		r.Verdict = Invalid
	}
	return r
}

// Window is the unavailability after one fault: from the fault's start to
// the completion of the first successful write invoked after it.
type Window struct {
	Fault  string        `json:"fault"`
	Node   string        `json:"node"`
	Start  time.Duration `json:"start"`
	Window time.Duration `json:"window"`
	// Recovered is false when no write succeeded after the fault.
	Recovered bool `json:"recovered"`
}

// Unavailability computes one Window per fault start.
func Unavailability(f Files) []Window {
	var writes []Op
	for _, o := range f.Ops {
		if (o.Kind == KindPut || o.Kind == KindCreate || (o.Kind == KindRotate && o.Err == "")) && o.Status == StatusOK && !o.Final {
			writes = append(writes, o)
		}
	}
	sort.Slice(writes, func(i, j int) bool { return writes[i].Ret < writes[j].Ret })
	var out []Window
	for _, e := range f.Events {
		if e.Phase != "start" {
			continue
		}
		w := Window{Fault: e.Fault, Node: e.Node, Start: time.Duration(e.Time)}
		for _, o := range writes {
			if o.Call >= e.Time {
				w.Window, w.Recovered = time.Duration(o.Ret-e.Time), true
				break
			}
		}
		out = append(out, w)
	}
	return out
}

// Percentiles returns the p50 and max of the recovered windows.
func Percentiles(ws []Window) (n int, p50, max time.Duration) {
	var ds []time.Duration
	for _, w := range ws {
		if w.Recovered {
			ds = append(ds, w.Window)
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return len(ds), ds[(len(ds)-1)/2], ds[len(ds)-1]
}

// Counts is ok/fail/unknown per op kind (final reads excluded).
type Counts map[string]*[3]int

// Count tallies the history.
func Count(ops []Op) Counts {
	c := Counts{}
	for _, o := range ops {
		if o.Final {
			continue
		}
		if c[o.Kind] == nil {
			c[o.Kind] = &[3]int{}
		}
		switch o.Status {
		case StatusOK:
			c[o.Kind][0]++
		case StatusFail:
			c[o.Kind][1]++
		default:
			c[o.Kind][2]++
		}
	}
	return c
}

// All runs every checker over a loaded run.
func All(f Files, timeout time.Duration, htmlDir string) []Result {
	out := []Result{Linearizable(f, timeout, htmlDir), NoLostWrites(f), NoPhantoms(f), LabelInvariants(f), IdempotentRetries(f), OneLeaderPerTerm(f), NoPanics(f)}
	if r, ok := ChurnLinearizable(f, timeout, htmlDir); ok {
		out = append(out, r)
	}
	if r, ok := ChurnSet(f); ok {
		out = append(out, r)
	}
	if r, ok := Convergence(f); ok {
		out = append(out, r)
	}
	if f.Disk != nil {
		out = append(out, Plaintext(*f.Disk))
	}
	for _, fr := range f.Final {
		if fr.Created != 0 { // recorded since the clock fault exists
			out = append(out, VersionDatesFollowLog(f))
			break
		}
	}
	out = append(out, RaftLogAgreement(f))
	return out
}

// IdempotentRetries checks the puts the workload resent with the same
// token and value after an unknown outcome (research §7, kill): a retry
// answered ResourceExistsException, or acknowledged with another
// VersionId than its token, is INVALID. A chain (the unknown put and its
// retries) with no acknowledged attempt is reported as unresolved (the
// retries stop when the main phase ends), not judged.
func IdempotentRetries(f Files) Result {
	r := Result{Name: "idempotent retries"}
	type chain struct {
		attempts int
		ok       bool
	}
	chains := map[int64]*chain{}
	var order []int64
	bad := 0
	for _, o := range f.Ops {
		if o.Kind != KindPut || o.RetryOf == 0 {
			continue
		}
		c := chains[o.RetryOf]
		if c == nil {
			c = &chain{}
			chains[o.RetryOf] = c
			order = append(order, o.RetryOf)
		}
		c.attempts++
		switch {
		case o.Err == errExists:
			bad++
			r.addError(fmt.Sprintf("op %d on %s: retry of op %d (token %s, same value) answered ResourceExistsException", o.ID, o.Node, o.RetryOf, o.Token))
		case o.Status == StatusOK && o.VersionID != o.Token:
			bad++
			r.addError(fmt.Sprintf("op %d on %s: retry of op %d acknowledged with VersionId %s, want %s", o.ID, o.Node, o.RetryOf, o.VersionID, o.Token))
		case o.Status == StatusOK:
			c.ok = true
		}
	}
	resolved, attempts := 0, 0
	for _, id := range order {
		attempts += chains[id].attempts
		if chains[id].ok {
			resolved++
		}
	}
	r.Detail = fmt.Sprintf("%d unknown puts retried (%d attempts): %d acknowledged with their token, %d unresolved, %d bad answers",
		len(order), attempts, resolved, len(order)-resolved, bad)
	r.Verdict = Valid
	if bad > 0 {
		r.Verdict = Invalid
	}
	return r
}
