package check

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// VersionDatesFollowLog checks that, per secret, the CreatedDate of its
// versions never goes backwards in log order: nodes stamp requests with
// their own (possibly skewed) clocks, and the state machine keeps each
// secret's dates monotonic, so a version written later in the log is
// never dated before an earlier one. Log order comes from the
// X-Coffer-Index of acknowledged first attempts of puts (a retry's index
// may be a later no-op entry), dates from the final reads by VersionId.
func VersionDatesFollowLog(f Files) Result {
	r := Result{Name: "version dates follow the log"}
	type ver struct {
		token   string
		index   uint64
		created int64
	}
	created := map[[2]string]int64{}
	for _, fr := range f.Final {
		if fr.Kind == "version" && fr.Found && fr.Err == "" && fr.Created != 0 {
			created[[2]string{fr.Secret, fr.VersionID}] = fr.Created
		}
	}
	bySecret := map[string][]ver{}
	n := 0
	for _, o := range f.Ops {
		if o.Kind != KindPut || o.Status != StatusOK || o.Err != "" || o.RetryOf != 0 || o.Index == "" {
			continue
		}
		idx, err := strconv.ParseUint(o.Index, 10, 64)
		c, ok := created[[2]string{o.Secret, o.Token}]
		if err != nil || !ok {
			continue
		}
		bySecret[o.Secret] = append(bySecret[o.Secret], ver{o.Token, idx, c})
		n++
	}
	secrets := make([]string, 0, len(bySecret))
	for s := range bySecret {
		secrets = append(secrets, s)
	}
	sort.Strings(secrets)
	bad := 0
	for _, s := range secrets {
		vs := bySecret[s]
		sort.Slice(vs, func(i, j int) bool { return vs[i].index < vs[j].index })
		for i := 1; i < len(vs); i++ {
			if vs[i].created < vs[i-1].created {
				bad++
				r.addError(fmt.Sprintf("secret %s: version %s (index %d) created %s, before version %s (index %d) created %s",
					s, vs[i].token, vs[i].index, time.UnixMilli(vs[i].created).UTC().Format(time.RFC3339Nano),
					vs[i-1].token, vs[i-1].index, time.UnixMilli(vs[i-1].created).UTC().Format(time.RFC3339Nano)))
			}
		}
	}
	switch {
	case n == 0:
		r.Verdict, r.Detail = Unknown, "no acknowledged put with an index and a final read of its CreatedDate"
	case bad > 0:
		r.Verdict, r.Detail = Invalid, fmt.Sprintf("%d versions dated before the version before them in the log", bad)
	default:
		r.Verdict, r.Detail = Valid, fmt.Sprintf("%d versions of %d secrets in log order", n, len(secrets))
	}
	return r
}
