package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

const (
	cur  = fsm.StageCurrent
	prev = fsm.StagePrevious
	pend = fsm.StagePending
)

// L is a label list; nil means "default stages" in a command and
// "deprecated" in an expectation.
type L = []string

// putStep is one PutSecretValue of a label scenario and the labels of every
// version afterwards.
type putStep struct {
	version string
	stages  L
	want    map[string]L
}

// putCmd is a PutSecretValue of a fresh string value.
func putCmd(arn, versionID string, stages L, date int64) *fsm.PutSecretValue {
	return &fsm.PutSecretValue{ARN: arn, Version: strVersion(versionID, "value of "+versionID), Stages: stages, Date: date}
}

func assertStages(t *testing.T, h *harness, arn string, want map[string]L) {
	t.Helper()
	got := h.stages(arn)
	norm := func(m map[string]L) map[string]L {
		out := map[string]L{}
		for id, ls := range m {
			out[id] = sorted(ls)
		}
		return out
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		t.Fatalf("stages\n got %s\nwant %s", fmtStages(got), fmtStages(want))
	}
}

// The observed AWS label transitions of shared/spec §3.4 that PutSecretValue
// alone can produce.
func TestFSM_PutSecretValue_Labels(t *testing.T) {
	tests := []struct {
		name  string
		steps []putStep
	}{
		{"A defaults", []putStep{
			{"v2", nil, map[string]L{"v1": {prev}, "v2": {cur}}},
			{"v3", nil, map[string]L{"v1": nil, "v2": {prev}, "v3": {cur}}},
			{"v4", nil, map[string]L{"v1": nil, "v2": nil, "v3": {prev}, "v4": {cur}}},
		}},
		{"A explicit AWSCURRENT", []putStep{
			{"v2", L{cur}, map[string]L{"v1": {prev}, "v2": {cur}}},
			{"v3", L{cur}, map[string]L{"v1": nil, "v2": {prev}, "v3": {cur}}},
		}},
		{"B custom labels only", []putStep{
			{"v2", L{"one", "two", "three"}, map[string]L{"v1": {cur}, "v2": {"one", "three", "two"}}},
			{"v3", L{"one", "two", "four"}, map[string]L{"v1": {cur}, "v2": {"three"}, "v3": {"four", "one", "two"}}},
		}},
		{"B variant", []putStep{
			{"v2", L{"one", "two", "three"}, map[string]L{"v1": {cur}, "v2": {"one", "three", "two"}}},
			{"v3", L{"one", "two", "three", "four"}, map[string]L{"v1": {cur}, "v2": nil, "v3": {"four", "one", "three", "two"}}},
		}},
		{"B duplicate labels in the request", []putStep{
			{"v2", L{"one", "one", "two"}, map[string]L{"v1": {cur}, "v2": {"one", "two"}}},
		}},
		{"C pending then a new value abandons it", []putStep{
			{"v2", L{pend}, map[string]L{"v1": {cur}, "v2": {pend}}},
			{"v3", nil, map[string]L{"v1": {prev}, "v2": nil, "v3": {cur}}},
		}},
		{"C pending moves to a newer pending", []putStep{
			{"v2", L{pend}, map[string]L{"v1": {cur}, "v2": {pend}}},
			{"v3", L{pend}, map[string]L{"v1": {cur}, "v2": nil, "v3": {pend}}},
		}},
		{"C pending with a custom label survives losing AWSPENDING", []putStep{
			{"v2", L{pend, "keep"}, map[string]L{"v1": {cur}, "v2": {pend, "keep"}}},
			{"v3", nil, map[string]L{"v1": {prev}, "v2": {"keep"}, "v3": {cur}}},
		}},
		{"C custom label put does not abandon the rotation", []putStep{
			{"v2", L{pend}, map[string]L{"v1": {cur}, "v2": {pend}}},
			{"v3", L{"x"}, map[string]L{"v1": {cur}, "v2": {pend}, "v3": {"x"}}},
		}},
		{"C current and pending together keep pending", []putStep{
			{"v2", L{pend}, map[string]L{"v1": {cur}, "v2": {pend}}},
			{"v3", L{cur, pend}, map[string]L{"v1": {prev}, "v2": nil, "v3": {cur, pend}}},
		}},
		{"D reserved and custom", []putStep{
			{"v2", L{cur, "PUT0"}, map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}}},
			{"v3", L{pend, "PUT1"}, map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}, "v3": {pend, "PUT1"}}},
			{"v4", L{pend, "PUT2"}, map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}, "v3": {"PUT1"}, "v4": {pend, "PUT2"}}},
			{"v5", nil, map[string]L{"v1": nil, "v2": {prev, "PUT0"}, "v3": {"PUT1"}, "v4": {"PUT2"}, "v5": {cur}}},
		}},
		{"D custom label moves off the current version", []putStep{
			{"v2", L{cur, "PUT0"}, map[string]L{"v1": {prev}, "v2": {cur, "PUT0"}}},
			{"v3", L{"PUT0"}, map[string]L{"v1": {prev}, "v2": {cur}, "v3": {"PUT0"}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "value of v1"), t0))
			assertStages(t, h, arn, map[string]L{"v1": {cur}})
			for i, st := range tc.steps {
				date := t0 + int64(i+1)*hour
				res := h.ok(fsm.CmdPutSecretValue, putCmd(arn, st.version, st.stages, date))
				assertStages(t, h, arn, st.want)
				s := h.secret(arn)
				v := s.Version(st.version)
				wantRes := &fsm.Result{ARN: arn, Name: "s", VersionID: st.version, VersionStages: v.Stages}
				if !reflect.DeepEqual(res, wantRes) {
					t.Fatalf("step %d: result %+v, want %+v", i, res, wantRes)
				}
				if v.CreatedDate != date || s.LastChangedDate != date || s.CreatedDate != t0 {
					t.Fatalf("step %d: version created %d, secret changed %d created %d", i, v.CreatedDate, s.LastChangedDate, s.CreatedDate)
				}
				if s.Versions[len(s.Versions)-1] != v {
					t.Fatalf("step %d: new version not appended last", i)
				}
			}
		})
	}
}

// A version holding AWSCURRENT and AWSPENDING at once (here: the first value
// of a secret, put with [AWSPENDING]) loses AWSPENDING when a new value
// takes AWSCURRENT from it (shared/spec §3.4, the paragraph after D).
func TestFSM_PutSecretValue_NewValueDropsPendingFromOldCurrent(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("e", "eeeeee")
	h.ok(fsm.CmdCreateSecret, createCmd("e", "eeeeee", nil, t0))
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v1", L{pend}, t0+1))
	assertStages(t, h, arn, map[string]L{"v1": {cur, pend}})
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+2))
	assertStages(t, h, arn, map[string]L{"v1": {prev}, "v2": {cur}})
}

// The first value of a secret created without one becomes AWSCURRENT
// whatever VersionStages says (shared/spec §4.4 step 5).
func TestFSM_PutSecretValue_FirstValueBecomesCurrent(t *testing.T) {
	tests := []struct {
		name   string
		stages L
		want   L
	}{
		{"default", nil, L{cur}},
		{"explicit current", L{cur}, L{cur}},
		// The caller's labels in its order, then the one Coffer adds.
		{"custom only", L{"X"}, L{"X", cur}},
		{"pending", L{pend}, L{pend, cur}},
		{"previous", L{prev}, L{prev, cur}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("e", "eeeeee")
			h.ok(fsm.CmdCreateSecret, createCmd("e", "eeeeee", nil, t0))
			res := h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v1", tc.stages, t0+1))
			if !slices.Equal(res.VersionStages, tc.want) || res.VersionID != "v1" {
				t.Fatalf("result %+v, want stages %v", res, tc.want)
			}
			assertStages(t, h, arn, map[string]L{"v1": tc.want})
			// The second value follows the normal rules again.
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", L{"Y"}, t0+2))
			want := map[string]L{"v1": tc.want, "v2": {"Y"}}
			assertStages(t, h, arn, want)
		})
	}
}

// A retried PutSecretValue (same token, same value) succeeds, answers with
// the version's labels as they are now and re-applies nothing
// (shared/spec §3.5).
func TestFSM_PutSecretValue_IdempotentRetry(t *testing.T) {
	tests := []struct {
		name        string
		retryID     string
		retryStages L
		wantStages  L
	}{
		{"retry of a version now previous, default stages", "v2", nil, L{prev}},
		{"retry with other stages", "v2", L{"X", cur}, L{prev}},
		{"retry of the current version", "v3", nil, L{cur}},
		{"retry of a deprecated version", "v1", L{cur}, nil},
		{"retry of the create's version with a custom label", "v1", L{"X"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "value of v1"), t0))
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+1))
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v3", nil, t0+2))
			before := h.secret(arn)

			// The retry went through the same node's keyring: a new envelope
			// (fresh data key and nonce) but the same digest.
			res := h.ok(fsm.CmdPutSecretValue, putCmd(arn, tc.retryID, tc.retryStages, t0+3))
			if res.ARN != arn || res.Name != "s" || res.VersionID != tc.retryID || res.DeletionDate != 0 ||
				!slices.Equal(sorted(res.VersionStages), tc.wantStages) {
				t.Fatalf("result %#v, want version %s stages %v", res, tc.retryID, tc.wantStages)
			}
			h.assertLastChangedNothing()
			if h.secret(arn) != before {
				t.Fatal("the secret was rewritten")
			}
		})
	}
}

// Reusing a token for another value is refused, whichever version it names.
func TestFSM_PutSecretValue_StaleToken(t *testing.T) {
	arn := arnOf("s", "abc123")
	msg := func(tok string) string {
		return fmt.Sprintf("You can't use ClientRequestToken %s because that value is already in use for a version of secret %s.", tok, arn)
	}
	sameDigestBinary := binVersion("v2", "value of v2")
	sameDigestBinary.Digest = strVersion("v2", "value of v2").Digest
	tests := []struct {
		name string
		nv   fsm.NewVersion
	}{
		{"other value for the current version", strVersion("v2", "changed")},
		{"other value for the create's version", strVersion("v1", "changed")},
		{"same bytes as binary", binVersion("v2", "value of v2")},
		{"same digest but binary", sameDigestBinary},
		{"no digest", fsm.NewVersion{VersionID: "v2", Value: strVersion("v2", "x").Value}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "value of v1"), t0))
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, t0+1))
			h.fail(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: arn, Version: tc.nv, Date: t0 + 2},
				apierr.ResourceExists, msg(tc.nv.VersionID))
		})
	}
}

// PutSecretValue names its secret by full ARN only; the server resolves
// names and partial ARNs before proposing.
func TestFSM_PutSecretValue_NotFound(t *testing.T) {
	for _, target := range []string{
		arnOf("s", "zzzzzz"), // another suffix: a deleted and re-created secret
		"s",
		arnPrefix + "s",
		"",
	} {
		t.Run(target, func(t *testing.T) {
			h := newHarness(t)
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
			h.fail(fsm.CmdPutSecretValue, putCmd(target, "v2", nil, t0+1), apierr.ResourceNotFound, apierr.MsgSecretNotFound)
		})
	}
}

func TestFSM_PutSecretValue_Scheduled(t *testing.T) {
	tests := []struct {
		name string
		nv   fsm.NewVersion
	}{
		{"new version", strVersion("v2", "b")},
		// Even an idempotent retry: the secret is not usable.
		{"retry of an existing version", strVersion("v1", "a")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
			h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, DeletionDate: t0 + 7*day, Date: t0 + 1})
			h.fail(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: arn, Version: tc.nv, Date: t0 + 2},
				apierr.InvalidRequest, apierr.MsgMarkedForDeletion)
		})
	}
}

func labels(prefix string, n int) L {
	out := make(L, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// At most 20 labels across the versions of a secret; a request that would
// go over is refused and changes nothing (shared/spec §3.4).
func TestFSM_PutSecretValue_LabelQuota(t *testing.T) {
	quotaMsg := func(n int) string {
		return fmt.Sprintf("A secret can have at most 20 staging labels across its versions; this request would attach %d.", n)
	}
	tests := []struct {
		name    string
		setup   []L // stages of puts v2, v3, ... before the checked one
		stages  L   // the checked put
		wantErr string
	}{
		{name: "19 custom plus AWSCURRENT", stages: labels("L", 19)},
		{name: "20 custom plus AWSCURRENT", stages: labels("L", 20), wantErr: quotaMsg(21)},
		{name: "new value pushes AWSPREVIOUS over", setup: []L{labels("L", 19)}, stages: nil, wantErr: quotaMsg(21)},
		{name: "moving labels does not count them twice", setup: []L{labels("L", 19)}, stages: labels("L", 19)},
		{name: "moving plus one more", setup: []L{labels("L", 19)}, stages: append(labels("L", 19), "extra"), wantErr: quotaMsg(21)},
		{name: "spread over versions", setup: []L{labels("A", 10), labels("B", 9)}, stages: L{"C"}, wantErr: quotaMsg(21)},
		{name: "spread over versions, replacing", setup: []L{labels("A", 10), labels("B", 9)}, stages: L{"A00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			arn := arnOf("s", "abc123")
			h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v1", "a"), t0))
			for i, st := range tc.setup {
				h.ok(fsm.CmdPutSecretValue, putCmd(arn, fmt.Sprintf("setup%d", i), st, t0+int64(i)+1))
			}
			cmd := putCmd(arn, "checked", tc.stages, t0+hour)
			if tc.wantErr == "" {
				h.ok(fsm.CmdPutSecretValue, cmd)
				return
			}
			before := h.secret(arn)
			h.fail(fsm.CmdPutSecretValue, cmd, apierr.LimitExceeded, tc.wantErr)
			if h.secret(arn) != before || h.secret(arn).Version("checked") != nil {
				t.Fatal("the refused put left a trace")
			}
		})
	}
}

// fillVersions creates secret s with v000 at t0 and puts v001..v(n-1) one
// minute apart with default stages, so all but the last two end deprecated.
// With keep, v000 also carries the custom label KEEP, which protects it from
// the purge.
func fillVersions(h *harness, arn string, n int, keep bool) {
	h.t.Helper()
	if keep {
		h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", nil, t0))
		h.ok(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: arn, Version: strVersion("v000", "0"), Stages: L{"KEEP"}, Date: t0})
	} else {
		h.ok(fsm.CmdCreateSecret, createCmd("s", "abc123", strVersionPtr("v000", "0"), t0))
	}
	for i := 1; i < n; i++ {
		h.ok(fsm.CmdPutSecretValue, putCmd(arn, fmt.Sprintf("v%03d", i), nil, t0+int64(i)*60_000))
	}
	if got := len(h.secret(arn).Versions); got != n {
		h.t.Fatalf("setup: %d versions", got)
	}
}

// Beyond 100 versions the oldest deprecated version at least a day old is
// purged; when none qualifies the put is refused and changes nothing.
func TestFSM_PutSecretValue_VersionPurge(t *testing.T) {
	arn := arnOf("s", "abc123")
	quotaMsg := "The secret already has 100 versions and none can be removed yet: deprecated versions are kept for 24 hours."
	tests := []struct {
		name       string
		existing   int   // versions before the checked put
		keep       bool  // v000 carries a custom label
		date       int64 // of the checked put
		stages     L
		wantGone   []string // versions purged
		wantErr    bool
		wantCount  int
		wantLabels map[string]L // spot checks
	}{
		{name: "under the quota", existing: 99, date: t0 + 99*60_000, wantCount: 100},
		{name: "day later purges the oldest", existing: 100, date: t0 + day, wantGone: []string{"v000"}, wantCount: 100,
			wantLabels: map[string]L{"v001": nil, "v098": nil, "v099": {prev}, "new": {cur}}},
		{name: "long after purges only one", existing: 100, date: t0 + 30*day, wantGone: []string{"v000"}, wantCount: 100},
		{name: "a millisecond short of a day", existing: 100, date: t0 + day - 1, wantErr: true},
		{name: "all younger than a day", existing: 100, date: t0 + 100*60_000, wantErr: true},
		{name: "a labelled oldest version is skipped", existing: 100, keep: true, date: t0 + 40*day,
			wantGone: []string{"v001"}, wantCount: 100, wantLabels: map[string]L{"v000": {"KEEP"}, "v002": nil}},
		{name: "a labelled oldest version is skipped, next one too young", existing: 100, keep: true, date: t0 + day + 59_999,
			wantErr: true},
		{name: "custom label put purges too", existing: 100, date: t0 + day, stages: L{"X"}, wantGone: []string{"v000"}, wantCount: 100,
			wantLabels: map[string]L{"v099": {cur}, "new": {"X"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			fillVersions(h, arn, tc.existing, tc.keep)
			before := h.secret(arn)
			cmd := putCmd(arn, "new", tc.stages, tc.date)
			if tc.wantErr {
				h.fail(fsm.CmdPutSecretValue, cmd, apierr.LimitExceeded, quotaMsg)
				if h.secret(arn) != before {
					t.Fatal("the refused put rewrote the secret")
				}
				return
			}
			h.ok(fsm.CmdPutSecretValue, cmd)
			s := h.secret(arn)
			if len(s.Versions) != tc.wantCount {
				t.Fatalf("%d versions, want %d", len(s.Versions), tc.wantCount)
			}
			for _, id := range tc.wantGone {
				if s.Version(id) != nil {
					t.Errorf("version %s not purged", id)
				}
			}
			for _, v := range before.Versions {
				if !slices.Contains(tc.wantGone, v.VersionID) && s.Version(v.VersionID) == nil {
					t.Errorf("version %s purged", v.VersionID)
				}
			}
			for id, want := range tc.wantLabels {
				v := s.Version(id)
				if v == nil || !slices.Equal(sorted(v.Stages), sorted(want)) {
					t.Errorf("version %s: %+v, want labels %v", id, v, want)
				}
			}
		})
	}
}

// A version keeps the ARN its value's AAD binds (the secret's ARN in the
// region that created it), from CreateSecret and PutSecretValue, through a
// snapshot; a version
// written before the field existed binds the secret's own ARN.
func TestFSM_VersionPrimaryARN(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("p", "pppppp")
	primary := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:p-pppppp"
	v1 := strVersion("v1", "one")
	v1.PrimaryARN = primary
	h.ok(fsm.CmdCreateSecret, createCmd("p", "pppppp", &v1, t0))
	v2 := strVersion("v2", "two")
	v2.PrimaryARN = primary
	h.ok(fsm.CmdPutSecretValue, &fsm.PutSecretValue{ARN: arn, Version: v2, Date: t0 + 2})
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v3", nil, t0+3)) // no PrimaryARN: an older writer
	check := func(s *fsm.Secret) {
		t.Helper()
		for id, want := range map[string]string{"v1": primary, "v2": primary, "v3": arn} {
			if v := s.Version(id); v == nil || v.AADARN(s) != want {
				t.Fatalf("version %s binds %v, want %s", id, v, want)
			}
		}
	}
	check(h.secret(arn))
	g := fsm.New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.f)))); err != nil {
		t.Fatal(err)
	}
	txn, _ := g.ReadTxn()
	check(fsm.SecretByARN(txn, arn))
}
