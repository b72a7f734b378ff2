package check

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Region failover (research §7, region-failover): two regions, A (the
// primary) and B (its replica); A's servers are killed, B is promoted,
// A comes back and must turn into B's replica, keeping what B never got
// as conflicts. The checkers below are pure functions over the saved
// run: the history (region-tagged puts, gets, describes and version
// lists), the final reads of both regions, failover.json (when the
// fault, the promotion and the restart happened, A's conflicts) and the
// primary region's Raft logs (its commit order).

// Operation kinds of the region-failover workload (with KindPut and
// KindGet).
const (
	KindDescribe     = "describe"      // DescribeSecret: Primary, Versions (labelled versions only)
	KindListVersions = "list-versions" // ListSecretVersionIds with IncludeDeprecated: Versions (every version)
)

// Conflict is one row of GET /v1/region/conflicts: a version the region
// acknowledged as the secret's primary that the region promoted over it
// never received.
type Conflict struct {
	ARN         string    `json:"arn"`
	Name        string    `json:"name"`
	VersionID   string    `json:"version_id"`
	CreatedDate time.Time `json:"created_date"`
	Region      string    `json:"region"`
	Epoch       uint64    `json:"epoch"`
	Found       time.Time `json:"found"`
}

// FailoverRun is failover.json: what the harness did and when (ns since
// the run started), and what it read from the admin endpoints.
type FailoverRun struct {
	Primary      string   `json:"primary_region"` // A
	Replica      string   `json:"replica_region"` // B
	PrimaryNodes []string `json:"primary_nodes"`
	ReplicaNodes []string `json:"replica_nodes"`
	Secrets      []string `json:"secrets"`
	// Kill: the SIGKILLs of every server of A were sent; Killed: all
	// had exited.
	Kill   int64 `json:"kill"`
	Killed int64 `json:"killed"`
	// The promotion of B (POST /v1/region/promote, from A): the call
	// that succeeded (or the last one), how many attempts, its answer.
	PromoteCall     int64  `json:"promote_call"`
	PromoteRet      int64  `json:"promote_ret"`
	PromoteAttempts int    `json:"promote_attempts"`
	Promoted        bool   `json:"promoted"`
	PromoteSecrets  int    `json:"promote_secrets"`
	PromoteIndex    uint64 `json:"promote_index"`
	PromoteErr      string `json:"promote_err,omitempty"`
	// Restart: A's servers were started again (same data dirs).
	Restart int64 `json:"restart"`
	MainEnd int64 `json:"main_end"`
	// Converged: after the main phase, every node of both regions showed
	// every secret with PrimaryRegion B and one AWSCURRENT, at
	// ConvergedAt.
	Converged      bool   `json:"converged"`
	ConvergedAt    int64  `json:"converged_at,omitempty"`
	ConvergeDetail string `json:"converge_detail,omitempty"`
	// GET /v1/region/conflicts of A and of B at the end.
	Conflicts           []Conflict `json:"conflicts"`
	ConflictsErr        string     `json:"conflicts_err,omitempty"`
	ReplicaConflicts    []Conflict `json:"replica_conflicts"`
	ReplicaConflictsErr string     `json:"replica_conflicts_err,omitempty"`
}

// ReplSample is one poll of GET /v1/replication/status
// (replstatus.jsonl): what the polled region reports of its replica
// regions.
type ReplSample struct {
	Time     int64        `json:"time"`
	Node     string       `json:"node"`
	Region   string       `json:"region"`
	Replicas []ReplicaLag `json:"replicas,omitempty"`
	Err      string       `json:"err,omitempty"`
}

// ReplicaLag is one replica region in a ReplSample.
type ReplicaLag struct {
	Region     string  `json:"region"`
	AckedIndex uint64  `json:"acked_index"`
	Pending    int     `json:"pending_changes"`
	LagSeconds float64 `json:"lag_seconds"`
	Error      string  `json:"error,omitempty"`
}

// RPOSlack is what the RPO check allows beyond the largest replication
// lag observed before the fault (research §7: a version lost to the RPO
// must have been acknowledged within max lag + 2 s of the fault).
const RPOSlack = 2 * time.Second

type sv = [2]string // secret, version id

// failoverData is what every failover checker derives from the run.
type failoverData struct {
	run      FailoverRun
	promote  int64     // PromoteCall, or past every op when there was none
	attempts map[sv]Op // first put of each (secret, token) sent to A
	ackedA   []Op      // acknowledged puts to A (CreateSecret included)
	ackedB   []Op      // acknowledged puts to B
	rank     map[sv]uint64
	seenB    map[sv]int64 // first return of a read of B, before the promotion, showing the version
	bFinal   map[sv][]FinalRead
	aFinal   map[sv][]FinalRead
	conflict map[sv]bool
	// atPromotion: secret -> versions B held when it was promoted (the
	// first version list of B after the promotion returned, before A
	// came back); from says where it came from.
	atPromotion map[string]map[string]bool
	from        string
	lags        []time.Duration
}

func (d *failoverData) isA(o Op) bool { return o.Region == d.run.Primary }
func (d *failoverData) isB(o Op) bool { return o.Region == d.run.Replica }

// seen returns the versions a read showed (a get: the one it returned).
func seen(o Op) []string {
	switch o.Kind {
	case KindGet:
		if o.VersionID != "" {
			return []string{o.VersionID}
		}
	case KindDescribe, KindListVersions:
		out := make([]string, 0, len(o.Versions))
		for v := range o.Versions {
			out = append(out, v)
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// current returns the AWSCURRENT holder a read showed ("" if none).
func current(o Op) string {
	switch o.Kind {
	case KindGet:
		if o.ReadStage() == StageCurrent && o.ByVersion == "" {
			return o.VersionID
		}
	case KindDescribe, KindListVersions:
		for v, st := range o.Versions {
			if contains(st, StageCurrent) {
				return v
			}
		}
	}
	return ""
}

func isRead(o Op) bool {
	return (o.Kind == KindGet || o.Kind == KindDescribe || o.Kind == KindListVersions) && o.Status == StatusOK && o.Err == ""
}

func analyzeFailover(f Files) *failoverData {
	d := &failoverData{run: *f.Failover, attempts: map[sv]Op{}, rank: map[sv]uint64{}, seenB: map[sv]int64{},
		bFinal: map[sv][]FinalRead{}, aFinal: map[sv][]FinalRead{}, conflict: map[sv]bool{}}
	d.promote = d.run.PromoteCall
	if d.promote == 0 {
		d.promote = math.MaxInt64
	}
	for _, o := range f.Ops {
		if o.Kind != KindPut || o.Final {
			continue
		}
		k := sv{o.Secret, o.Token}
		if d.isA(o) {
			if _, ok := d.attempts[k]; !ok {
				d.attempts[k] = o
			}
		}
		if o.Status != StatusOK {
			continue
		}
		switch {
		case d.isA(o):
			d.ackedA = append(d.ackedA, o)
		case d.isB(o):
			d.ackedB = append(d.ackedB, o)
		}
	}
	// A's commit order: the index of each put's entry in A's Raft logs
	// (which also orders the puts whose answer was lost, in flight when
	// A was killed), else the X-Coffer-Index A acknowledged it with.
	for _, n := range d.run.PrimaryNodes {
		for _, e := range f.RaftLogs[n] {
			if e.Token == "" || (e.Cmd != CmdPutSecretValue && e.Cmd != CmdCreateSecret) {
				continue
			}
			name := e.Name
			if name == "" {
				name = arnName(e.ARN)
			}
			if k := (sv{name, e.Token}); d.rank[k] == 0 {
				d.rank[k] = e.Index
			}
		}
	}
	for _, o := range d.ackedA {
		k := sv{o.Secret, o.Token}
		if idx, err := strconv.ParseUint(o.Index, 10, 64); err == nil && d.rank[k] == 0 {
			d.rank[k] = idx
		}
	}
	for _, o := range f.Ops {
		if o.Final || !d.isB(o) || !isRead(o) || o.Ret >= d.promote {
			continue
		}
		for _, v := range seen(o) {
			k := sv{o.Secret, v}
			if t, ok := d.seenB[k]; !ok || o.Ret < t {
				d.seenB[k] = o.Ret
			}
		}
	}
	for _, o := range d.ackedA {
		if o.Call >= d.run.Kill && d.run.Kill > 0 {
			continue
		}
		if t, ok := d.seenB[sv{o.Secret, o.Token}]; ok {
			d.lags = append(d.lags, time.Duration(max(0, t-o.Ret)))
		}
	}
	sort.Slice(d.lags, func(i, j int) bool { return d.lags[i] < d.lags[j] })
	for _, fr := range f.Final {
		if fr.Kind != "version" {
			continue
		}
		k := sv{fr.Secret, fr.VersionID}
		switch fr.Region {
		case d.run.Replica:
			d.bFinal[k] = append(d.bFinal[k], fr)
		case d.run.Primary:
			d.aFinal[k] = append(d.aFinal[k], fr)
		}
	}
	for _, c := range d.run.Conflicts {
		d.conflict[sv{c.Name, c.VersionID}] = true
	}
	if d.run.Promoted {
		d.atPromotion, d.from = map[string]map[string]bool{}, "B's first version lists after the promotion"
		for _, o := range f.Ops {
			if o.Final || !d.isB(o) || o.Kind != KindListVersions || !isRead(o) || o.Call < d.run.PromoteRet ||
				(d.run.Restart > 0 && o.Ret > d.run.Restart) || d.atPromotion[o.Secret] != nil {
				continue
			}
			d.atPromotion[o.Secret] = map[string]bool{}
			for v := range o.Versions {
				d.atPromotion[o.Secret][v] = true
			}
		}
		for _, s := range d.run.Secrets {
			if d.atPromotion[s] == nil {
				d.atPromotion, d.from = nil, ""
				break
			}
		}
	}
	return d
}

// inFinal reports whether some successful final read found the version
// with the value, and whether any final read succeeded at all.
func inFinal(reads []FinalRead, value string) (found, read bool) {
	for _, fr := range reads {
		if fr.Err != "" {
			continue
		}
		read = true
		if fr.Found && fr.Value == value {
			found = true
		}
	}
	return found, read
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func secs(ns int64) string { return fmt.Sprintf("%.1fs", time.Duration(ns).Seconds()) }

// FailoverPrefix checks what B showed while it was A's replica (reads
// of B that returned before the promotion was called): every version it
// showed was attempted by a put to A (or is the CreateSecret's); per
// secret, the AWSCURRENT it showed never went back in A's commit order
// between two reads one of which returned before the other was called
// (every read of B is linearizable in B, whichever node serves it and
// whatever B's leader, so monotonic overall is required); and each
// version list is a prefix of A's order: it holds every version A
// acknowledged before the newest one it holds, with AWSCURRENT on that
// newest one. A's commit order is the X-Coffer-Index of A's
// acknowledgements and, for puts whose answer was lost, their index in
// A's Raft logs; comparisons with a version of unknown order are
// skipped and counted.
func FailoverPrefix(f Files) Result {
	r := Result{Name: "failover: B a prefix of A"}
	d := analyzeFailover(f)
	type obs struct {
		op  Op
		cur string
	}
	bySecret := map[string][]obs{}
	var reads, foreign, back, gaps, skipped int
	kinds := map[string]int{}
	ackedBy := map[string][]Op{}
	for _, o := range d.ackedA {
		ackedBy[o.Secret] = append(ackedBy[o.Secret], o)
	}
	for _, o := range f.Ops {
		if o.Final || !d.isB(o) || !isRead(o) || o.Ret >= d.promote {
			continue
		}
		reads++
		kinds[o.Kind]++
		for _, v := range seen(o) {
			if _, ok := d.attempts[sv{o.Secret, v}]; !ok {
				foreign++
				r.addError(fmt.Sprintf("op %d on %s at %s: %s of %s shows version %s, which no put to %s attempted", o.ID, o.Node, secs(o.Ret), o.Kind, o.Secret, v, d.run.Primary))
			}
		}
		cur := current(o)
		if cur != "" {
			bySecret[o.Secret] = append(bySecret[o.Secret], obs{o, cur})
		}
		if o.Kind != KindListVersions {
			continue
		}
		// Prefix: the newest version held (in A's order) has every older
		// acknowledged one with it, and AWSCURRENT.
		var newest string
		var top uint64
		for v := range o.Versions {
			if rk := d.rank[sv{o.Secret, v}]; rk > top {
				newest, top = v, rk
			}
		}
		if top == 0 {
			continue
		}
		for _, a := range ackedBy[o.Secret] {
			rk := d.rank[sv{a.Secret, a.Token}]
			if rk != 0 && rk < top && o.Versions[a.Token] == nil {
				gaps++
				r.addError(fmt.Sprintf("op %d on %s at %s: %s holds %s (A index %d) but not %s, acknowledged by A at index %d", o.ID, o.Node, secs(o.Ret), o.Secret, newest, top, a.Token, rk))
			}
		}
		if cur != "" && d.rank[sv{o.Secret, cur}] == 0 {
			skipped++
		} else if cur != newest {
			gaps++
			r.addError(fmt.Sprintf("op %d on %s at %s: %s has AWSCURRENT on %s, not on its newest version %s (A index %d)", o.ID, o.Node, secs(o.Ret), o.Secret, cur, newest, top))
		}
	}
	for secret, os := range bySecret {
		sort.Slice(os, func(i, j int) bool { return os[i].op.Call < os[j].op.Call })
		for j, b := range os {
			rb := d.rank[sv{secret, b.cur}]
			if rb == 0 {
				skipped++
				continue
			}
			for _, a := range os[:j] {
				ra := d.rank[sv{secret, a.cur}]
				if a.op.Ret < b.op.Call && ra > rb {
					back++
					r.addError(fmt.Sprintf("%s: op %d on %s at %s showed AWSCURRENT %s (A index %d) after op %d on %s had shown %s (A index %d) at %s",
						secret, b.op.ID, b.op.Node, secs(b.op.Call), b.cur, rb, a.op.ID, a.op.Node, a.cur, ra, secs(a.op.Ret)))
					break
				}
			}
		}
	}
	r.Detail = fmt.Sprintf("%d reads of B as a replica (%d gets, %d version lists, %d describes): %d versions no put to A attempted, %d steps back, %d prefix violations; %d comparisons skipped (order unknown)",
		reads, kinds[KindGet], kinds[KindListVersions], kinds[KindDescribe], foreign, back, gaps, skipped)
	switch {
	case foreign+back+gaps > 0:
		r.Verdict = Invalid
	case reads == 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// FailoverNothingLost checks that every write A acknowledged (before the
// fault or after its restart) is, at the end, a version of the secret in
// B (read by VersionId in B with its value) or one of A's conflicts
// (GET /v1/region/conflicts), which must still read in A with its value.
// A write that is neither is INVALID (lost silently); one no final read
// could check, UNKNOWN. And every conflict A lists is a put some client
// sent to A that was not refused, and not a version B holds (INVALID
// otherwise: a conflict list that invents or misplaces versions).
func FailoverNothingLost(f Files) Result {
	r := Result{Name: "failover: nothing lost silently"}
	d := analyzeFailover(f)
	var inB, asConflict, lost, unread, badConflicts int
	for _, c := range d.run.Conflicts {
		k := sv{c.Name, c.VersionID}
		a, ok := d.attempts[k]
		switch {
		case !ok:
			badConflicts++
			r.addError(fmt.Sprintf("conflict %s %s: no put to %s sent this version", c.Name, c.VersionID, d.run.Primary))
		case a.Status == StatusFail:
			badConflicts++
			r.addError(fmt.Sprintf("conflict %s %s: its put (op %d) was refused", c.Name, c.VersionID, a.ID))
		default:
			if found, _ := inFinal(d.bFinal[k], a.Value); found {
				badConflicts++
				r.addError(fmt.Sprintf("conflict %s %s is a version %s holds", c.Name, c.VersionID, d.run.Replica))
			}
		}
	}
	for _, o := range d.ackedA {
		k := sv{o.Secret, o.Token}
		foundB, readB := inFinal(d.bFinal[k], o.Value)
		switch {
		case foundB:
			inB++
		case d.conflict[k]:
			foundA, readA := inFinal(d.aFinal[k], o.Value)
			switch {
			case foundA:
				asConflict++
			case readA:
				lost++
				r.addError(fmt.Sprintf("op %d: %s %s acknowledged by %s at %s is listed as a conflict but does not read there", o.ID, o.Secret, o.Token, o.Node, secs(o.Ret)))
			default:
				unread++
			}
		case !readB || d.run.ConflictsErr != "":
			unread++
			r.addError(fmt.Sprintf("op %d: %s %s acknowledged by %s: not checked (no final read in B, or no conflict list)", o.ID, o.Secret, o.Token, o.Node))
		default:
			lost++
			r.addError(fmt.Sprintf("op %d: %s %s acknowledged by %s at %s is neither in %s nor a conflict in %s", o.ID, o.Secret, o.Token, o.Node, secs(o.Ret), d.run.Replica, d.run.Primary))
		}
	}
	r.Detail = fmt.Sprintf("%d of %d writes acknowledged by %s lost: %d in %s, %d kept as conflicts (readable in %s), %d not checked; %d conflicts listed, %d not a put to %s or a version of %s",
		lost, len(d.ackedA), d.run.Primary, inB, d.run.Replica, asConflict, d.run.Primary, unread, len(d.run.Conflicts), badConflicts, d.run.Primary, d.run.Replica)
	switch {
	case lost+badConflicts > 0:
		r.Verdict = Invalid
	case unread > 0 || len(d.ackedA) == 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// FailoverFigures are the numbers a region-failover report shows.
type FailoverFigures struct {
	// Replication lag before the fault: a version's acknowledgement by A
	// to the return of the first read of B that showed it (resolution:
	// the readers' polling period plus a read's latency).
	LagN                   int
	LagP50, LagP99, LagMax time.Duration
	// The servers' own figure (GET /v1/replication/status on A): the
	// largest lag_seconds and pending_changes polled before the fault.
	ReportedLagMax  time.Duration
	ReportedPending int
	// RPO: versions A acknowledged before the fault that B did not hold
	// when it was promoted, and how long before the fault the oldest was
	// acknowledged.
	RPOKnown    bool
	RPOVersions int
	RPOAge      time.Duration
	// RTO: fault -> promote call (the harness's scripted decision),
	// promote call -> its answer, promote call -> the first acknowledged
	// write in B invoked after it.
	Decision, Promote time.Duration
	RTO               time.Duration
	RTOKnown          bool
	// Conflicts listed by A at the end, and how many of them are writes
	// A acknowledged (the others' answers were lost: in flight at the
	// kill); writes A acknowledged after the promotion (before it
	// learned of it); writes to A refused as replica writes.
	Conflicts, ConflictsAcked, AckedAfterPromotion, RefusedInA int
}

// Figures computes the report's failover numbers.
func Figures(f Files) FailoverFigures {
	var fig FailoverFigures
	if f.Failover == nil {
		return fig
	}
	d := analyzeFailover(f)
	fig.LagN = len(d.lags)
	fig.LagP50, fig.LagP99 = pct(d.lags, 0.5), pct(d.lags, 0.99)
	if n := len(d.lags); n > 0 {
		fig.LagMax = d.lags[n-1]
	}
	for _, s := range f.ReplStatus {
		if s.Region != d.run.Primary || (d.run.Kill > 0 && s.Time > d.run.Kill) {
			continue
		}
		for _, rl := range s.Replicas {
			if rl.Region == d.run.Replica {
				fig.ReportedLagMax = max(fig.ReportedLagMax, time.Duration(rl.LagSeconds*float64(time.Second)))
				fig.ReportedPending = max(fig.ReportedPending, rl.Pending)
			}
		}
	}
	lost := rpoLost(d)
	fig.RPOKnown = d.atPromotion != nil
	fig.RPOVersions = len(lost)
	for _, o := range lost {
		fig.RPOAge = max(fig.RPOAge, time.Duration(d.run.Kill-o.Ret))
	}
	if d.run.Promoted {
		fig.Decision = time.Duration(d.run.PromoteCall - d.run.Kill)
		fig.Promote = time.Duration(d.run.PromoteRet - d.run.PromoteCall)
		if first, ok := firstWriteAfter(d.ackedB, d.run.PromoteCall); ok {
			fig.RTO, fig.RTOKnown = time.Duration(first.Ret-d.run.PromoteCall), true
		}
	}
	fig.Conflicts = len(d.run.Conflicts)
	for _, c := range d.run.Conflicts {
		if a, ok := d.attempts[sv{c.Name, c.VersionID}]; ok && a.Status == StatusOK {
			fig.ConflictsAcked++
		}
	}
	for _, o := range d.ackedA {
		if o.Call > d.promote {
			fig.AckedAfterPromotion++
		}
	}
	for _, o := range f.Ops {
		if o.Kind == KindPut && d.isA(o) && o.Status == StatusFail && o.Err == "InvalidParameterException" {
			fig.RefusedInA++
		}
	}
	return fig
}

// rpoLost: the writes A acknowledged before the fault that B did not
// hold when it was promoted.
func rpoLost(d *failoverData) []Op {
	if d.atPromotion == nil {
		return nil
	}
	var out []Op
	for _, o := range d.ackedA {
		if o.Call < d.run.Kill && !d.atPromotion[o.Secret][o.Token] {
			out = append(out, o)
		}
	}
	return out
}

func firstWriteAfter(acked []Op, t int64) (Op, bool) {
	var first Op
	ok := false
	for _, o := range acked {
		if o.Call >= t && (!ok || o.Ret < first.Ret) {
			first, ok = o, true
		}
	}
	return first, ok
}

// FailoverRPO checks the versions lost to the RPO (acknowledged by A
// before the fault, absent from B's first version lists after the
// promotion): each must have been acknowledged within the largest
// replication lag observed before the fault plus RPOSlack of the fault
// (research §7). Nothing older may be lost.
func FailoverRPO(f Files) Result {
	r := Result{Name: "failover: RPO bound"}
	d := analyzeFailover(f)
	if !d.run.Promoted || d.atPromotion == nil {
		r.Verdict, r.Detail = Unknown, "no version list of every secret in B between the promotion and A's restart"
		return r
	}
	var maxLag time.Duration
	if n := len(d.lags); n > 0 {
		maxLag = d.lags[n-1]
	}
	bound := maxLag + RPOSlack
	lost := rpoLost(d)
	var oldest time.Duration
	bad := 0
	for _, o := range lost {
		age := time.Duration(d.run.Kill - o.Ret)
		oldest = max(oldest, age)
		if age > bound {
			bad++
			r.addError(fmt.Sprintf("op %d: %s %s acknowledged by %s at %s, %s before the fault, is not in %s at promotion (bound %s)",
				o.ID, o.Secret, o.Token, o.Node, secs(o.Ret), age.Round(time.Millisecond), d.run.Replica, bound.Round(time.Millisecond)))
		}
	}
	acked := 0
	for _, o := range d.ackedA {
		if o.Call < d.run.Kill {
			acked++
		}
	}
	r.Detail = fmt.Sprintf("%d of %d versions acknowledged before the fault lost to the RPO, oldest acknowledged %s before it; bound: max lag %s (n=%d) + %s = %s",
		len(lost), acked, oldest.Round(10*time.Microsecond), maxLag.Round(time.Millisecond), len(d.lags), RPOSlack, bound.Round(time.Millisecond))
	switch {
	case bad > 0:
		r.Verdict = Invalid
	case len(d.lags) == 0:
		r.Verdict = Unknown
		r.Detail += " (no lag observed: no bound)"
	default:
		r.Verdict = Valid
	}
	return r
}

// FailoverFencing checks the old primary after the promotion: once a
// read of A showed a secret with PrimaryRegion B, no write to that
// secret in A is acknowledged (invoked after that read returned); and
// nothing B lacked at the promotion — the writes A acknowledged before
// the fault that were lost to the RPO, and those it acknowledged after
// the promotion, before it learned of it — ever shows up in B (in a read
// of B after the promotion or B's final reads): they are kept in A as
// conflicts, never merged. No fence seen, or no write to A after one,
// is UNKNOWN (not exercised).
func FailoverFencing(f Files) Result {
	r := Result{Name: "failover: old primary fenced"}
	d := analyzeFailover(f)
	fence := map[string]int64{}
	for _, o := range f.Ops {
		if d.isA(o) && o.Kind == KindDescribe && isRead(o) && o.Primary == d.run.Replica {
			if t, ok := fence[o.Secret]; !ok || o.Ret < t {
				fence[o.Secret] = o.Ret
			}
		}
	}
	var after, refused, accepted, merged int
	for _, o := range f.Ops {
		if o.Kind != KindPut || !d.isA(o) || o.Final {
			continue
		}
		t, ok := fence[o.Secret]
		if !ok || o.Call <= t {
			continue
		}
		after++
		switch {
		case o.Status == StatusOK:
			accepted++
			r.addError(fmt.Sprintf("op %d: put %s %s acknowledged by %s at %s, after %s showed %s as its primary at %s", o.ID, o.Secret, o.Token, o.Node, secs(o.Ret), d.run.Primary, d.run.Replica, secs(t)))
		case o.Status == StatusFail && o.Err == "InvalidParameterException":
			refused++
		}
	}
	// Never merged into B.
	notInB := map[sv]Op{}
	for _, o := range rpoLost(d) {
		notInB[sv{o.Secret, o.Token}] = o
	}
	ackedAfter := 0
	for _, o := range d.ackedA {
		if o.Call > d.promote {
			ackedAfter++
			notInB[sv{o.Secret, o.Token}] = o
		}
	}
	for _, o := range f.Ops {
		if !d.isB(o) || !isRead(o) || o.Ret < d.promote {
			continue
		}
		for _, v := range seen(o) {
			if w, ok := notInB[sv{o.Secret, v}]; ok {
				merged++
				r.addError(fmt.Sprintf("op %d on %s at %s shows %s %s, which %s acknowledged (op %d) and %s did not have at the promotion", o.ID, o.Node, secs(o.Ret), o.Secret, v, d.run.Primary, w.ID, d.run.Replica))
				delete(notInB, sv{o.Secret, v})
			}
		}
	}
	for k, w := range notInB {
		if found, _ := inFinal(d.bFinal[k], w.Value); found {
			merged++
			r.addError(fmt.Sprintf("%s %s, acknowledged by %s (op %d) and not in %s at the promotion, is in %s's final state", k[0], k[1], d.run.Primary, w.ID, d.run.Replica, d.run.Replica))
		}
	}
	first := int64(math.MaxInt64)
	for _, t := range fence {
		first = min(first, t)
	}
	r.Detail = fmt.Sprintf("%d of %d secrets seen fenced in %s", len(fence), len(d.run.Secrets), d.run.Primary)
	if len(fence) > 0 {
		r.Detail += fmt.Sprintf(" (first at %s, %s after its restart)", secs(first), time.Duration(first-d.run.Restart).Round(time.Millisecond))
	}
	r.Detail += fmt.Sprintf("; %d writes to %s after that: %d acknowledged, %d refused as replica writes; %d writes it acknowledged after the promotion call; %d merged into %s",
		after, d.run.Primary, accepted, refused, ackedAfter, merged, d.run.Replica)
	switch {
	case accepted+merged > 0:
		r.Verdict = Invalid
	case len(fence) == 0 || after == 0:
		r.Verdict = Unknown
		r.Detail += " (fencing not exercised)"
	default:
		r.Verdict = Valid
	}
	return r
}

// FailoverReplicaUsable checks B after its promotion: the promotion
// succeeded, B acknowledged a write invoked after the promote call (the
// RTO is reported), and every write B acknowledged reads in B at the end
// with its value.
func FailoverReplicaUsable(f Files) Result {
	r := Result{Name: "failover: B usable after promotion"}
	d := analyzeFailover(f)
	if !d.run.Promoted {
		r.Verdict, r.Detail = Invalid, fmt.Sprintf("the promotion of %s failed after %d attempts: %s", d.run.Replica, d.run.PromoteAttempts, d.run.PromoteErr)
		return r
	}
	first, ok := firstWriteAfter(d.ackedB, d.run.PromoteCall)
	if !ok {
		r.Verdict, r.Detail = Invalid, fmt.Sprintf("%s acknowledged no write after its promotion", d.run.Replica)
		return r
	}
	var lost, unread int
	for _, o := range d.ackedB {
		found, read := inFinal(d.bFinal[sv{o.Secret, o.Token}], o.Value)
		switch {
		case found:
		case read:
			lost++
			r.addError(fmt.Sprintf("op %d: %s %s acknowledged by %s at %s is missing (or changed) in %s's final reads", o.ID, o.Secret, o.Token, o.Node, secs(o.Ret), d.run.Replica))
		default:
			unread++
		}
	}
	r.Detail = fmt.Sprintf("promoted %d secrets in %s; first write acknowledged %s after the promote call (%s after the fault); %d of %d writes acknowledged by %s lost, %d not read back",
		d.run.PromoteSecrets, time.Duration(d.run.PromoteRet-d.run.PromoteCall).Round(time.Millisecond),
		time.Duration(first.Ret-d.run.PromoteCall).Round(time.Millisecond), time.Duration(first.Ret-d.run.Kill).Round(time.Millisecond),
		lost, len(d.ackedB), d.run.Replica, unread)
	switch {
	case lost > 0:
		r.Verdict = Invalid
	case unread > 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

// FailoverConverged checks the final reads of every node of both
// regions: every secret shows PrimaryRegion B and the same AWSCURRENT
// everywhere; B's nodes hold one set of versions; A holds all of B's
// versions, and any other version it holds is one of its conflicts.
func FailoverConverged(f Files) Result {
	r := Result{Name: "failover: regions converged"}
	d := analyzeFailover(f)
	nodes := append(append([]string{}, d.run.PrimaryNodes...), d.run.ReplicaNodes...)
	type key struct{ secret, node, kind string }
	last := map[key]Op{}
	for _, o := range f.Ops {
		if o.Final && isRead(o) {
			last[key{o.Secret, o.Node, o.Kind}] = o
		}
	}
	bad, missing := 0, 0
	fail := func(s string) { bad++; r.addError(s) }
	for _, s := range d.run.Secrets {
		cur := ""
		var bVersions map[string][]string
		for _, n := range nodes {
			desc, ok := last[key{s, n, KindDescribe}]
			if !ok {
				missing++
				continue
			}
			if desc.Primary != d.run.Replica {
				fail(fmt.Sprintf("%s on %s: PrimaryRegion %q, want %s", s, n, desc.Primary, d.run.Replica))
			}
			c := current(desc)
			if cur == "" {
				cur = c
			} else if c != cur {
				fail(fmt.Sprintf("%s on %s: AWSCURRENT %s, another node shows %s", s, n, c, cur))
			}
		}
		for _, n := range d.run.ReplicaNodes {
			l, ok := last[key{s, n, KindListVersions}]
			if !ok {
				missing++
				continue
			}
			if bVersions == nil {
				bVersions = l.Versions
			} else if !sameVersions(bVersions, l.Versions) {
				fail(fmt.Sprintf("%s: %s's nodes hold different versions (%s: %d)", s, d.run.Replica, n, len(l.Versions)))
			}
		}
		for _, n := range d.run.PrimaryNodes {
			l, ok := last[key{s, n, KindListVersions}]
			if !ok || bVersions == nil {
				missing++
				continue
			}
			for v := range bVersions {
				if l.Versions[v] == nil {
					fail(fmt.Sprintf("%s on %s: lacks %s, which %s holds", s, n, v, d.run.Replica))
				}
			}
			for v, st := range l.Versions {
				if bVersions[v] == nil && (!d.conflict[sv{s, v}] || len(st) > 0) {
					fail(fmt.Sprintf("%s on %s: holds %s (stages %v), which %s lacks and is not an unlabeled conflict", s, n, v, st, d.run.Replica))
				}
			}
		}
	}
	r.Detail = fmt.Sprintf("%d secrets on %d nodes: %d disagreements, %d final reads missing", len(d.run.Secrets), len(nodes), bad, missing)
	if d.run.Converged {
		r.Detail += fmt.Sprintf("; converged %s after the main phase", time.Duration(d.run.ConvergedAt-d.run.MainEnd).Round(time.Millisecond))
	}
	switch {
	case bad > 0:
		r.Verdict = Invalid
	case missing > 0:
		r.Verdict = Unknown
	default:
		r.Verdict = Valid
	}
	return r
}

func sameVersions(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for v, st := range a {
		if o, ok := b[v]; !ok || !sameSet(o, st) {
			return false
		}
	}
	return true
}

// regionFiles is f restricted to the nodes (and client ops) of one
// region, for the single-region checks that compare nodes.
func regionFiles(f Files, region string, nodes []string) Files {
	in := map[string]bool{}
	for _, n := range nodes {
		in[n] = true
	}
	out := Files{LogsRead: 0, RaftLogs: map[string][]RaftEntry{}}
	for _, o := range f.Ops {
		if o.Region == region {
			out.Ops = append(out.Ops, o)
		}
	}
	for _, c := range f.Leaders {
		if in[c.Node] {
			out.Leaders = append(out.Leaders, c)
		}
	}
	for n, es := range f.RaftLogs {
		if in[n] {
			out.RaftLogs[n] = es
		}
	}
	if len(out.RaftLogs) == 0 {
		out.RaftLogs = nil
	}
	for _, s := range f.Statuses {
		if in[s.Node] {
			out.Statuses = append(out.Statuses, s)
		}
	}
	out.LogsRead = len(nodes)
	return out
}

// FailoverAll runs the region-failover checkers and the single-region
// checks that apply per region (one leader per term, Raft log agreement,
// state digests) and to the whole run (phantoms, panics, plaintext).
func FailoverAll(f Files) []Result {
	run := f.Failover
	out := []Result{FailoverPrefix(f), FailoverNothingLost(f), FailoverRPO(f), FailoverFencing(f), FailoverReplicaUsable(f),
		FailoverConverged(f), NoPhantoms(f)}
	for _, reg := range []struct {
		name  string
		nodes []string
	}{{run.Primary, run.PrimaryNodes}, {run.Replica, run.ReplicaNodes}} {
		rf := regionFiles(f, reg.name, reg.nodes)
		for _, res := range []Result{OneLeaderPerTerm(rf), RaftLogAgreement(rf)} {
			res.Name += " (" + reg.name + ")"
			out = append(out, res)
		}
		if res, ok := Convergence(rf); ok {
			res.Name += " (" + reg.name + ")"
			out = append(out, res)
		}
	}
	out = append(out, NoPanics(f))
	if f.Disk != nil {
		out = append(out, Plaintext(*f.Disk))
	}
	return out
}

// FailoverReport is the report's replication section.
func FailoverReport(f Files) string {
	if f.Failover == nil {
		return ""
	}
	fig := Figures(f)
	run := f.Failover
	var b strings.Builder
	fmt.Fprintf(&b, "\nreplication %s -> %s, failover to %s\n", run.Primary, run.Replica, run.Replica)
	fmt.Fprintf(&b, "  lag before the fault (ack in %s -> first read in %s): n=%d  p50 %s  p99 %s  max %s; reported by %s: max %s, max %d pending\n",
		run.Primary, run.Replica, fig.LagN, fig.LagP50.Round(time.Millisecond), fig.LagP99.Round(time.Millisecond), fig.LagMax.Round(time.Millisecond),
		run.Primary, fig.ReportedLagMax.Round(time.Millisecond), fig.ReportedPending)
	if fig.RPOKnown {
		fmt.Fprintf(&b, "  RPO: %d versions lost (acknowledged by %s, not in %s at promotion), oldest acknowledged %s before the fault\n",
			fig.RPOVersions, run.Primary, run.Replica, fig.RPOAge.Round(10*time.Microsecond))
	} else {
		fmt.Fprintf(&b, "  RPO: unknown (no version lists of %s at promotion)\n", run.Replica)
	}
	if run.Promoted {
		rto := "no write"
		if fig.RTOKnown {
			rto = fig.RTO.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "  RTO: fault -> promote call %s (scripted), promote answered in %s, promote call -> first write acknowledged by %s %s\n",
			fig.Decision.Round(time.Millisecond), fig.Promote.Round(time.Millisecond), run.Replica, rto)
	} else {
		fmt.Fprintf(&b, "  RTO: promotion failed: %s\n", run.PromoteErr)
	}
	fmt.Fprintf(&b, "  conflicts in %s: %d (%d acknowledged, %d whose answer was lost); writes %s acknowledged after the promotion call (before it knew): %d; writes to %s refused as replica writes: %d\n",
		run.Primary, fig.Conflicts, fig.ConflictsAcked, fig.Conflicts-fig.ConflictsAcked, run.Primary, fig.AckedAfterPromotion, run.Primary, fig.RefusedInA)
	return b.String()
}
