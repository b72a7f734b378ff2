package check

import (
	"fmt"
	"sort"
	"strings"
)

// labelObs is one observation of staging labels: version v of secret
// carries exactly stages (when known), and each label in holds is on the
// version named, in the state at index (when the server said which).
type labelObs struct {
	what, secret, index, version string
	stages                       []string          // nil: not observed
	holds                        map[string]string // label -> version
}

// LabelInvariants checks the staging labels every answer showed
// (research §7, "label invariants on every read"):
//
//   - a version's VersionStages never repeat a label and never hold both
//     AWSCURRENT and AWSPREVIOUS;
//   - a get by label L returns a version whose stages include L, and a
//     put with the default stages returns stages including AWSCURRENT
//     (unless it is a retry of a token, which answers the stages the
//     version has by then);
//   - at one X-Coffer-Index the state of a secret is one state, whatever
//     node answered: a label is on one version (a label seen on two
//     versions at the same index is invalid) and a version has one set
//     of stages. Acknowledged puts (AWSCURRENT on the new version at
//     their index) and label moves (the label on MoveTo; AWSCURRENT
//     dragging AWSPREVIOUS to RemoveFrom) contribute what their index
//     must show.
//
// Reads recorded without stages (older histories) are skipped.
func LabelInvariants(f Files) Result {
	r := Result{Name: "label invariants"}
	var obs []labelObs
	for _, o := range f.Ops {
		if o.Status != StatusOK || o.Err != "" {
			continue
		}
		what := fmt.Sprintf("op %d (%s on %s)", o.ID, o.Kind, o.Node)
		switch o.Kind {
		case KindGet:
			if o.Stages == nil {
				continue
			}
			ob := labelObs{what: what, secret: o.Secret, index: o.Index, version: o.VersionID, stages: o.Stages,
				holds: map[string]string{}}
			if o.ByVersion == "" {
				ob.holds[o.ReadStage()] = o.VersionID // a read by label found it there
			}
			for _, s := range o.Stages {
				ob.holds[s] = o.VersionID
			}
			obs = append(obs, ob)
		case KindPut:
			// A put with the default stages (all the workloads send) makes
			// its version current at its index. The CreateSecret of a
			// register secret is a put too.
			ob := labelObs{what: what, secret: o.Secret, index: o.Index, version: o.Token, stages: o.Stages,
				holds: map[string]string{StageCurrent: o.Token}}
			if o.RetryOf != 0 {
				// A retry of a token already applied changes nothing and
				// answers the version's stages as they are now.
				if o.Stages == nil {
					continue
				}
				ob.holds = map[string]string{}
				for _, s := range o.Stages {
					ob.holds[s] = o.Token
				}
			}
			obs = append(obs, ob)
		case KindMove:
			ob := labelObs{what: what, secret: o.Secret, index: o.Index, holds: map[string]string{}}
			if o.MoveTo != "" {
				ob.holds[o.Stage] = o.MoveTo
				if o.Stage == StageCurrent && o.RemoveFrom != "" && o.RemoveFrom != o.MoveTo {
					ob.holds[StagePrevious] = o.RemoveFrom
				}
			}
			obs = append(obs, ob)
		}
	}
	for _, fr := range f.Final {
		if fr.Kind != "version" || fr.Err != "" || !fr.Found || fr.Stages == nil {
			continue
		}
		ob := labelObs{what: "final read of " + fr.VersionID + " on " + fr.Node, secret: fr.Secret, index: fr.Index,
			version: fr.VersionID, stages: fr.Stages, holds: map[string]string{}}
		for _, s := range fr.Stages {
			ob.holds[s] = fr.VersionID
		}
		obs = append(obs, ob)
	}

	type at struct{ secret, index, key string }
	holder := map[at]labelObs{}   // label at index -> first observation
	stagesOf := map[at]labelObs{} // version's stages at index -> first observation
	var bad, checked int
	fail := func(msg string) {
		bad++
		r.addError(msg)
	}
	for _, ob := range obs {
		checked++
		if ob.stages != nil {
			seen := map[string]bool{}
			for _, s := range ob.stages {
				if seen[s] {
					fail(fmt.Sprintf("%s: %s version %s lists %s twice: %v", ob.what, ob.secret, ob.version, s, ob.stages))
				}
				seen[s] = true
			}
			if seen[StageCurrent] && seen[StagePrevious] {
				fail(fmt.Sprintf("%s: %s version %s holds both AWSCURRENT and AWSPREVIOUS: %v", ob.what, ob.secret, ob.version, ob.stages))
			}
			for l, v := range ob.holds {
				if v == ob.version && !seen[l] {
					fail(fmt.Sprintf("%s: %s version %s answered for %s but its stages %v lack it", ob.what, ob.secret, ob.version, l, ob.stages))
				}
			}
		}
		if ob.index == "" {
			continue
		}
		for l, v := range ob.holds {
			k := at{ob.secret, ob.index, l}
			if prev, ok := holder[k]; ok && prev.holds[l] != v {
				fail(fmt.Sprintf("%s at index %s: %s on version %s, but %s saw it on %s at the same index",
					ob.secret, ob.index, l, v, prev.what, prev.holds[l]))
			} else if !ok {
				holder[k] = ob
			}
		}
		if ob.stages != nil {
			k := at{ob.secret, ob.index, "\x00" + ob.version}
			if prev, ok := stagesOf[k]; ok && !sameSet(prev.stages, ob.stages) {
				fail(fmt.Sprintf("%s at index %s: version %s has stages %v in %s but %v in %s",
					ob.secret, ob.index, ob.version, ob.stages, ob.what, prev.stages, prev.what))
			} else if !ok {
				stagesOf[k] = ob
			}
		}
	}
	// A label held by a version at an index whose own stages (seen at
	// the same index) do not include it.
	for k, ob := range holder {
		v := ob.holds[k.key]
		if so, ok := stagesOf[at{k.secret, k.index, "\x00" + v}]; ok && !contains(so.stages, k.key) {
			fail(fmt.Sprintf("%s at index %s: %s showed %s on version %s, but %s showed that version with stages %v",
				k.secret, k.index, ob.what, k.key, v, so.what, so.stages))
		}
	}
	r.Detail = fmt.Sprintf("%d violations in %d answers (%d index/label pairs)", bad, checked, len(holder))
	r.Verdict = Valid
	if bad > 0 {
		r.Verdict = Invalid
	}
	sort.Strings(r.Errors)
	return r
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	as, bs := append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(as)
	sort.Strings(bs)
	return strings.Join(as, "\x00") == strings.Join(bs, "\x00")
}
