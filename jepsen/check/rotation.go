package check

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Rotation (the `rotation` scenario): RotateSecret runs while leaders are
// killed; a webhook rotator served by the harness (the "hook") acts as an
// AWS rotation Lambda. The pass criteria: never two AWSCURRENT
// versions, never a lost rotation result. The checkers below are pure
// functions over the history (rotate, describe and get operations), the
// hook's record of every request it received (hook.jsonl), the final
// reads and rotation.json.

// KindRotate is RotateSecret with the hook's rotator and a fresh
// ClientRequestToken (Token); VersionID is the answer's.
const KindRotate = "rotate"

// RotatedValue is the value the hook's createSecret step writes into the
// version of token.
func RotatedValue(token string) string { return "rot-" + token }

// RotSecret is one secret of a rotation run: its name and ARN, and the
// version its CreateSecret made.
type RotSecret struct {
	Name         string `json:"name"`
	ARN          string `json:"arn"`
	InitialToken string `json:"initial_token"`
	InitialValue string `json:"initial_value"`
}

// RotationRun is rotation.json.
type RotationRun struct {
	Secrets []RotSecret `json:"secrets"`
	Rotator string      `json:"rotator"`  // the rotator's name
	HookURL string      `json:"hook_url"` // where the hook listened
	// Settled: after healing, a linearizable DescribeSecret of every
	// secret showed no rotation in flight (SettleTime ns after the heal);
	// InFlight: the tokens still in flight when the harness gave up.
	Settled    bool     `json:"settled"`
	SettleTime int64    `json:"settle_time"`
	InFlight   []string `json:"in_flight,omitempty"`
}

// HookCall is one record of hook.jsonl: a webhook request the hook
// received and what it did. Times are ns since the run started.
type HookCall struct {
	Call   int64  `json:"call"`
	Ret    int64  `json:"ret"`
	Step   string `json:"step"`
	Secret string `json:"secret"` // the event's SecretId (an ARN)
	Token  string `json:"token"`
	Status int    `json:"status"` // HTTP status answered; 401: the signature did not verify
	Err    string `json:"err,omitempty"`
	// createSecret: the pending value was there already (Exists) or the
	// hook's PutSecretValue was acknowledged (Put).
	Exists bool `json:"exists,omitempty"`
	Put    bool `json:"put,omitempty"`
	// finishSecret: the AWSCURRENT holder the hook's last DescribeSecret
	// showed (From), whether the token carried AWSPENDING then
	// (Pending), whether it held AWSCURRENT already (Already), and
	// whether UpdateSecretVersionStage was acknowledged (Moved).
	From    string `json:"from,omitempty"`
	Pending bool   `json:"pending,omitempty"`
	Already bool   `json:"already,omitempty"`
	Moved   bool   `json:"moved,omitempty"`
	Index   string `json:"index,omitempty"` // X-Coffer-Index of the move
}

// Step names as the hook receives them.
const (
	hookCreate = "createSecret"
	hookFinish = "finishSecret"
)

// rotationTokens returns, per secret name, the tokens of every RotateSecret
// attempted (any outcome) and of those acknowledged, in history order.
func rotationTokens(f Files) (attempted map[string]map[string]bool, acked map[string][]Op) {
	attempted, acked = map[string]map[string]bool{}, map[string][]Op{}
	for _, o := range f.Ops {
		if o.Kind != KindRotate {
			continue
		}
		if attempted[o.Secret] == nil {
			attempted[o.Secret] = map[string]bool{}
		}
		attempted[o.Secret][o.Token] = true
		if o.Status == StatusOK && o.Err == "" {
			acked[o.Secret] = append(acked[o.Secret], o)
		}
	}
	return attempted, acked
}

// holder returns the version of versions that carries label, and how
// many carry it.
func holder(versions map[string][]string, label string) (string, int) {
	id, n := "", 0
	for v, stages := range versions {
		if slices.Contains(stages, label) {
			if n == 0 || v < id {
				id = v
			}
			n++
		}
	}
	return id, n
}

// currentObs is one observation of a secret's AWSCURRENT holder at an
// applied index.
type currentObs struct {
	index  uint64
	holder string
	what   string
}

// RotationLabels checks "never two AWSCURRENT versions": every
// DescribeSecret (during the run and the final ones) shows exactly one
// version with AWSCURRENT (every secret has had a value since its
// create), at most one with AWSPENDING and one with AWSPREVIOUS, and
// never AWSCURRENT and AWSPREVIOUS on one version; every GetSecretValue
// of AWSCURRENT returns a version whose stages include AWSCURRENT. Reads
// carrying X-Coffer-Index (the applied index their snapshot was taken
// at) must agree on the holder at one index, and, ordered by index,
// AWSCURRENT must never return to a version it left (a rotation's finish
// moves it forward only; a late finishSecret of an older rotation that
// moved it back would show here).
func RotationLabels(f Files) Result {
	r := Result{Name: "one AWSCURRENT"}
	bad, describes := 0, 0
	obs := map[string][]currentObs{}
	addObs := func(secret, idx, h, what string) {
		if n, err := strconv.ParseUint(idx, 10, 64); err == nil && h != "" {
			obs[secret] = append(obs[secret], currentObs{n, h, what})
		}
	}
	for _, o := range f.Ops {
		if o.Status != StatusOK || o.Err != "" {
			continue
		}
		what := fmt.Sprintf("op %d (%s on %s)", o.ID, o.Kind, o.Node)
		switch {
		case o.Kind == KindDescribe && o.Versions != nil:
			describes++
			cur, n := holder(o.Versions, StageCurrent)
			if n != 1 {
				bad++
				r.addError(fmt.Sprintf("%s of %s showed %d versions with AWSCURRENT: %v", what, o.Secret, n, o.Versions))
			}
			for _, l := range []string{StagePending, StagePrevious} {
				if _, m := holder(o.Versions, l); m > 1 {
					bad++
					r.addError(fmt.Sprintf("%s of %s showed %d versions with %s: %v", what, o.Secret, m, l, o.Versions))
				}
			}
			for v, st := range o.Versions {
				if slices.Contains(st, StageCurrent) && slices.Contains(st, StagePrevious) {
					bad++
					r.addError(fmt.Sprintf("%s of %s: version %s is both AWSCURRENT and AWSPREVIOUS", what, o.Secret, v))
				}
			}
			if n == 1 {
				addObs(o.Secret, o.Index, cur, what)
			}
		case o.Kind == KindGet && o.Stage == "" && o.ByVersion == "":
			if o.Stages != nil && !slices.Contains(o.Stages, StageCurrent) {
				bad++
				r.addError(fmt.Sprintf("%s of %s: AWSCURRENT read returned version %s with stages %v", what, o.Secret, o.VersionID, o.Stages))
				continue
			}
			addObs(o.Secret, o.Index, o.VersionID, what)
		}
	}
	var secrets []string
	for s := range obs {
		secrets = append(secrets, s)
	}
	sort.Strings(secrets)
	pairs := 0
	for _, s := range secrets {
		os := obs[s]
		sort.SliceStable(os, func(i, j int) bool { return os[i].index < os[j].index })
		left := map[string]bool{}
		for i, o := range os {
			pairs++
			if i == 0 {
				continue
			}
			p := os[i-1]
			if p.holder == o.holder {
				continue
			}
			if p.index == o.index {
				bad++
				r.addError(fmt.Sprintf("%s: at index %d %s saw AWSCURRENT on %s, %s on %s", s, o.index, p.what, p.holder, o.what, o.holder))
				continue
			}
			left[p.holder] = true
			if left[o.holder] {
				bad++
				r.addError(fmt.Sprintf("%s: AWSCURRENT went back to %s at index %d (%s), after it had moved on from it", s, o.holder, o.index, o.what))
			}
		}
	}
	r.Detail = fmt.Sprintf("%d violations in %d describes (%d indexed AWSCURRENT observations)", bad, describes, pairs)
	switch {
	case bad > 0:
		r.Verdict = Invalid
	case describes == 0:
		r.Verdict, r.Detail = Unknown, "no successful DescribeSecret"
	default:
		r.Verdict = Valid
	}
	return r
}

// wasCurrent returns, per secret name, the versions seen holding
// AWSCURRENT or AWSPREVIOUS (which a version gets only when AWSCURRENT
// moves off it) in any read: describes, gets of AWSCURRENT, final
// version reads, and the hook's own DescribeSecret before a finish
// (From; Already: the token held AWSCURRENT).
func wasCurrent(f Files, byARN map[string]string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(secret, v string) {
		if v == "" {
			return
		}
		if out[secret] == nil {
			out[secret] = map[string]bool{}
		}
		out[secret][v] = true
	}
	for _, o := range f.Ops {
		if o.Status != StatusOK || o.Err != "" {
			continue
		}
		switch {
		case o.Kind == KindDescribe:
			for v, st := range o.Versions {
				if slices.Contains(st, StageCurrent) || slices.Contains(st, StagePrevious) {
					add(o.Secret, v)
				}
			}
		case o.Kind == KindGet && o.Stage == "" && o.ByVersion == "":
			add(o.Secret, o.VersionID)
		}
	}
	for _, fr := range f.Final {
		if fr.Kind == "version" && fr.Found && (slices.Contains(fr.Stages, StageCurrent) || slices.Contains(fr.Stages, StagePrevious)) {
			add(fr.Secret, fr.VersionID)
		}
	}
	for _, h := range f.Hook {
		if h.Step != hookFinish {
			continue
		}
		add(byARN[h.Secret], h.From)
		if h.Already {
			add(byARN[h.Secret], h.Token)
		}
	}
	return out
}

func arnNames(run *RotationRun) map[string]string {
	m := map[string]string{}
	if run != nil {
		for _, s := range run.Secrets {
			m[s.ARN] = s.Name
		}
	}
	return m
}

// RotationNoLost checks "never a lost rotation result". A RotateSecret
// acknowledged ok started a rotation (its version exists with
// AWSPENDING); once every rotation settled after healing, each of them
// must have finished: its version reads by VersionId with the value
// "rot-"+token, carries AWSPENDING no more, and held AWSCURRENT at some
// point (seen holding AWSCURRENT or AWSPREVIOUS in some read, or as the
// AWSCURRENT holder the hook read before moving the label on to the next
// rotation's version: rotations of a secret are serialized, so each
// finish reads its predecessor there). The final AWSCURRENT of every
// secret, one holder on every node, is its initial version (only if no
// rotation was acknowledged) or the token of an attempted RotateSecret,
// with that token's value. An acknowledged rotation still in flight at
// the end (the run did not settle) is counted, not judged here (see
// "rotations settle after heal").
func RotationNoLost(f Files) Result {
	r := Result{Name: "no lost rotation result"}
	run := f.Rotation
	_, acked := rotationTokens(f)
	attempted, _ := rotationTokens(f)
	seen := wasCurrent(f, arnNames(run))
	inFlight := map[string]bool{}
	if run != nil {
		for _, t := range run.InFlight {
			inFlight[t] = true
		}
	}
	type vkey struct{ secret, version string }
	finals := map[vkey][]FinalRead{}
	for _, fr := range f.Final {
		if fr.Kind == "version" {
			k := vkey{fr.Secret, fr.VersionID}
			finals[k] = append(finals[k], fr)
		}
	}
	finalCurrent := map[string]map[string]bool{} // secret -> holders in the final describes
	for _, o := range f.Ops {
		if o.Kind == KindDescribe && o.Final && o.Status == StatusOK && o.Err == "" {
			if o.Rotating != "" {
				inFlight[o.Rotating] = true
			}
			if h, n := holder(o.Versions, StageCurrent); n == 1 {
				if finalCurrent[o.Secret] == nil {
					finalCurrent[o.Secret] = map[string]bool{}
				}
				finalCurrent[o.Secret][h] = true
			}
		}
	}
	nAcked, finished, flying, lost, unread := 0, 0, 0, 0, 0
	var names []string
	for s := range acked {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		for _, o := range acked[s] {
			nAcked++
			t := o.Token
			if inFlight[t] {
				flying++
				continue
			}
			var read, valued, pending bool
			for _, fr := range finals[vkey{s, t}] {
				if fr.Err != "" {
					continue
				}
				read = true
				if fr.Found && fr.Value == RotatedValue(t) {
					valued = true
				}
				if slices.Contains(fr.Stages, StagePending) {
					pending = true
				}
			}
			switch {
			case !read:
				unread++
				r.addError(fmt.Sprintf("op %d: rotation %s of %s acknowledged but no final read of its version succeeded", o.ID, t, s))
			case !valued:
				lost++
				r.addError(fmt.Sprintf("op %d: rotation %s of %s acknowledged at %s: its version is missing or does not hold %q at the end", o.ID, t, s, time.Duration(o.Ret), RotatedValue(t)))
			case pending:
				lost++
				r.addError(fmt.Sprintf("op %d: rotation %s of %s acknowledged, no rotation in flight at the end, yet its version still carries AWSPENDING", o.ID, t, s))
			case !seen[s][t]:
				lost++
				r.addError(fmt.Sprintf("op %d: rotation %s of %s acknowledged at %s never became AWSCURRENT (no read saw it AWSCURRENT or AWSPREVIOUS)", o.ID, t, s, time.Duration(o.Ret)))
			default:
				finished++
			}
		}
	}
	// The final AWSCURRENT of every secret.
	if run != nil {
		for _, sec := range run.Secrets {
			hs := finalCurrent[sec.Name]
			switch len(hs) {
			case 0:
				unread++
				r.addError(fmt.Sprintf("%s: no final DescribeSecret showed one AWSCURRENT", sec.Name))
				continue
			case 1:
			default:
				lost++
				r.addError(fmt.Sprintf("%s: the nodes' final DescribeSecrets disagree on AWSCURRENT: %v", sec.Name, keys(hs)))
				continue
			}
			cur := keys(hs)[0]
			want := RotatedValue(cur)
			switch {
			case cur == sec.InitialToken:
				if len(acked[sec.Name]) > 0 {
					lost++
					r.addError(fmt.Sprintf("%s: AWSCURRENT is still the initial version %s after %d acknowledged rotations", sec.Name, cur, len(acked[sec.Name])))
				}
				want = sec.InitialValue
			case !attempted[sec.Name][cur]:
				lost++
				r.addError(fmt.Sprintf("%s: the final AWSCURRENT %s is no rotation's token", sec.Name, cur))
				continue
			}
			ok, read := false, false
			for _, fr := range finals[vkey{sec.Name, cur}] {
				if fr.Err == "" {
					read = true
					ok = ok || (fr.Found && fr.Value == want)
				}
			}
			switch {
			case !read:
				unread++
				r.addError(fmt.Sprintf("%s: no final read of the AWSCURRENT version %s", sec.Name, cur))
			case !ok:
				lost++
				r.addError(fmt.Sprintf("%s: the final AWSCURRENT version %s does not hold %q", sec.Name, cur, want))
			}
		}
	}
	r.Detail = fmt.Sprintf("%d acknowledged rotations: %d finished, %d lost, %d not read back, %d still in flight at the end", nAcked, finished, lost, unread, flying)
	switch {
	case lost > 0:
		r.Verdict = Invalid
	case unread > 0 || nAcked == 0 || run == nil:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RotationValues checks that nothing shows up that nobody wrote: every
// value read as AWSCURRENT (during the run or at the end) and every
// version read by VersionId is the secret's initial version with its
// value, or "rot-"+T in version T for a token T of an attempted
// RotateSecret of that secret; every version a DescribeSecret lists is one
// of those; a GetSecretValue of AWSCURRENT is never ResourceNotFound (the
// label never sits on a version without a value). And of the hook: every
// request's signature verified (rotation.VerifyWebhook), every event
// names a token some RotateSecret of its secret sent, and every token
// that became AWSCURRENT had a successful createSecret before the
// finishSecret that moved AWSCURRENT to it (or found it there).
func RotationValues(f Files) Result {
	r := Result{Name: "rotation values written"}
	run := f.Rotation
	if run == nil {
		return Result{Name: r.Name, Verdict: Unknown, Detail: "no rotation.json"}
	}
	attempted, _ := rotationTokens(f)
	initial := map[string]RotSecret{}
	for _, s := range run.Secrets {
		initial[s.Name] = s
	}
	bad, reads := 0, 0
	known := func(secret, version string) bool {
		return version == initial[secret].InitialToken || attempted[secret][version]
	}
	valueOK := func(secret, version, value string) bool {
		if version == initial[secret].InitialToken {
			return value == initial[secret].InitialValue
		}
		return attempted[secret][version] && value == RotatedValue(version)
	}
	for _, o := range f.Ops {
		what := fmt.Sprintf("op %d (%s on %s)", o.ID, o.Kind, o.Node)
		switch {
		case o.Kind == KindGet && o.Err == errNotFound && o.ByVersion == "":
			bad++
			r.addError(fmt.Sprintf("%s of %s: AWSCURRENT answered ResourceNotFoundException", what, o.Secret))
		case o.Kind == KindGet && o.Status == StatusOK && o.Err == "":
			reads++
			if !valueOK(o.Secret, o.VersionID, o.Read) {
				bad++
				r.addError(fmt.Sprintf("%s of %s returned version %s with a value nobody wrote there", what, o.Secret, o.VersionID))
			}
		case o.Kind == KindDescribe && o.Status == StatusOK && o.Err == "":
			for v := range o.Versions {
				if !known(o.Secret, v) {
					bad++
					r.addError(fmt.Sprintf("%s of %s lists version %s, which no RotateSecret sent", what, o.Secret, v))
				}
			}
		}
	}
	for _, fr := range f.Final {
		if fr.Kind == "version" && fr.Found && fr.Err == "" {
			reads++
			if !valueOK(fr.Secret, fr.VersionID, fr.Value) {
				bad++
				r.addError(fmt.Sprintf("final read on %s of %s version %s: a value nobody wrote there", fr.Node, fr.Secret, fr.VersionID))
			}
		}
	}
	byARN := arnNames(run)
	type tk struct{ secret, token string }
	created := map[tk][]HookCall{}
	finished := map[tk][]HookCall{}
	unverified := 0
	for _, h := range f.Hook {
		if h.Status == 401 {
			unverified++
			bad++
			r.addError(fmt.Sprintf("hook request at %s did not verify: %s", time.Duration(h.Call), h.Err))
			continue
		}
		s := byARN[h.Secret]
		if !attempted[s][h.Token] {
			bad++
			r.addError(fmt.Sprintf("hook %s for %s token %s, which no RotateSecret of that secret sent", h.Step, h.Secret, h.Token))
			continue
		}
		k := tk{s, h.Token}
		switch {
		case h.Step == hookCreate && h.Status == 200:
			created[k] = append(created[k], h)
		case h.Step == hookFinish && h.Status == 200 && (h.Moved || h.Already):
			finished[k] = append(finished[k], h)
		}
	}
	seen := wasCurrent(f, byARN)
	became := 0
	for _, sec := range run.Secrets {
		for _, t := range keys(seen[sec.Name]) {
			if t == sec.InitialToken {
				continue
			}
			became++
			k := tk{sec.Name, t}
			fins := finished[k]
			if len(fins) == 0 {
				bad++
				r.addError(fmt.Sprintf("%s: version %s became AWSCURRENT but the hook never finished it", sec.Name, t))
				continue
			}
			first := fins[0]
			for _, h := range fins {
				if h.Call < first.Call {
					first = h
				}
			}
			ok := false
			for _, c := range created[k] {
				ok = ok || c.Ret <= first.Call
			}
			if !ok {
				bad++
				r.addError(fmt.Sprintf("%s: version %s was finished at %s with no successful createSecret before", sec.Name, t, time.Duration(first.Call)))
			}
		}
	}
	r.Detail = fmt.Sprintf("%d bad in %d value reads and %d hook requests (%d unverified); %d rotated versions became AWSCURRENT, each created before its finish",
		bad, reads, len(f.Hook), unverified, became)
	r.Verdict = Valid
	if bad > 0 {
		r.Verdict = Invalid
	}
	return r
}

// RotationAll runs the rotation scenario's checks, and the Raft, digest,
// panic and plaintext checks every run gets.
func RotationAll(f Files) []Result {
	out := []Result{RotationLabels(f), RotationNoLost(f), RotationValues(f), OneLeaderPerTerm(f), NoPanics(f)}
	if r, ok := Convergence(f); ok {
		out = append(out, r)
	}
	if f.Disk != nil {
		out = append(out, Plaintext(*f.Disk))
	}
	return append(out, RaftLogAgreement(f))
}

// RotationReport is the report's rotation section.
func RotationReport(f Files) string {
	if f.Rotation == nil {
		return ""
	}
	var b strings.Builder
	refused, acked, unknown := 0, 0, 0
	for _, o := range f.Ops {
		if o.Kind != KindRotate {
			continue
		}
		switch {
		case o.Status == StatusOK && o.Err == "":
			acked++
		case o.Status == StatusUnknown:
			unknown++
		case strings.Contains(o.Message, "still in progress"):
			refused++
		}
	}
	steps := map[string][2]int{}
	for _, h := range f.Hook {
		c := steps[h.Step]
		if h.Status == 200 {
			c[0]++
		} else {
			c[1]++
		}
		steps[h.Step] = c
	}
	fmt.Fprintf(&b, "\nrotation: %d RotateSecret acknowledged, %d unknown, %d refused as still in progress\n", acked, unknown, refused)
	fmt.Fprintf(&b, "  hook requests (200 / other):")
	for _, s := range []string{"createSecret", "setSecret", "testSecret", "finishSecret"} {
		fmt.Fprintf(&b, " %s %d/%d", s, steps[s][0], steps[s][1])
	}
	b.WriteString("\n")
	// Steps the hook received more than once for one token: a step run
	// again after a failure or by the next leader.
	type st struct{ token, step string }
	times := map[st]int{}
	for _, h := range f.Hook {
		times[st{h.Token, h.Step}]++
	}
	again, tokens := 0, map[string]bool{}
	for k, n := range times {
		if n > 1 {
			again += n - 1
			tokens[k.token] = true
		}
	}
	fmt.Fprintf(&b, "  steps received again (a retry, or a new leader resuming): %d, in %d rotations\n", again, len(tokens))
	run := f.Rotation
	if run.Settled {
		fmt.Fprintf(&b, "  settled (no rotation in flight) %s after healing\n", time.Duration(run.SettleTime).Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "  NOT settled: still in flight %v\n", run.InFlight)
	}
	return b.String()
}
