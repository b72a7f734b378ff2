package fsm_test

import (
	"testing"

	"github.com/cofferhq/coffer/fsm"
)

// Commands carry the wall-clock time of the node that received the
// request, and nodes' clocks differ (a jepsen clock nemesis skews them on
// purpose). Apply keeps dates in log order: a new version is never older
// than the secret or any version before it, and LastChangedDate never goes
// back. docs/architecture.md, "Dates follow the log".

// versionDates returns each version's CreatedDate by version id.
func versionDates(h *harness, arn string) map[string]int64 {
	h.t.Helper()
	out := map[string]int64{}
	for _, v := range h.secret(arn).Versions {
		out[v.VersionID] = v.CreatedDate
	}
	return out
}

func TestFSM_VersionDatesFollowTheLog(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("skewed", "aaaaaa")
	h.ok(fsm.CmdCreateSecret, createCmd("skewed", "aaaaaa", strVersionPtr("v1", "one"), t0+hour))
	steps := []struct {
		version string
		date    int64 // the command's date, as the receiving node's clock said
		want    int64 // the version's CreatedDate and the secret's LastChangedDate
		update  bool  // through UpdateSecret instead of PutSecretValue
	}{
		{"v2", t0, t0 + hour, false},                   // behind v1: takes v1's date
		{"v3", t0 + 2*hour, t0 + 2*hour, false},        // ahead: its own date
		{"v4", t0 + hour + hour/2, t0 + 2*hour, false}, // behind v3, ahead of v1
		{"v5", t0 - day, t0 + 2*hour, true},            // UpdateSecret with a value
		{"v6", t0 + 3*hour, t0 + 3*hour, true},
	}
	prev := t0 + hour
	for _, s := range steps {
		if s.update {
			h.ok(fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Version: strVersionPtr(s.version, "value of "+s.version), Date: s.date})
		} else {
			h.ok(fsm.CmdPutSecretValue, putCmd(arn, s.version, nil, s.date))
		}
		got := versionDates(h, arn)[s.version]
		if got != s.want {
			t.Fatalf("%s written with date %d: CreatedDate %d, want %d", s.version, s.date, got, s.want)
		}
		if got < prev {
			t.Fatalf("%s: CreatedDate %d is earlier than the version before it (%d)", s.version, got, prev)
		}
		prev = got
		if lc := h.secret(arn).LastChangedDate; lc != s.want {
			t.Fatalf("after %s: LastChangedDate %d, want %d", s.version, lc, s.want)
		}
	}
	// Deterministic: the state is a function of the log alone.
	if got, want := digestOf(t, h.f), digestOf(t, h.replay()); got != want {
		t.Fatalf("replaying the log gives digest %s, want %s", want, got)
	}
}

// A secret created without a value: its first version is not older than
// the secret.
func TestFSM_FirstVersionNotOlderThanSecret(t *testing.T) {
	h := newHarness(t)
	arn := arnOf("empty", "bbbbbb")
	h.ok(fsm.CmdCreateSecret, createCmd("empty", "bbbbbb", nil, t0+hour))
	h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v1", nil, t0))
	if got := versionDates(h, arn)["v1"]; got != t0+hour {
		t.Fatalf("v1 CreatedDate %d, want the secret's CreatedDate %d", got, t0+hour)
	}
	if s := h.secret(arn); s.CreatedDate != t0+hour || s.LastChangedDate != t0+hour {
		t.Fatalf("CreatedDate %d LastChangedDate %d, want both %d", s.CreatedDate, s.LastChangedDate, t0+hour)
	}
}

// Every command that sets LastChangedDate, applied with a date earlier
// than the secret's last change, changes the secret but not that date;
// with a later date it moves it forward (so each case does set it).
func TestFSM_LastChangedDateNeverGoesBack(t *testing.T) {
	const (
		name   = "lcd"
		suffix = "cccccc"
	)
	arn := arnOf(name, suffix)
	last := t0 + day // the date of the setup commands: the last change
	desc := "new description"
	cases := []struct {
		name  string
		setup func(h *harness)
		cmd   func(date int64) (fsm.CommandType, any)
		// changed reports whether the command took effect.
		changed func(s *fsm.Secret) bool
	}{
		{"PutSecretValue", nil,
			func(d int64) (fsm.CommandType, any) { return fsm.CmdPutSecretValue, putCmd(arn, "v2", nil, d) },
			func(s *fsm.Secret) bool { return s.Version("v2") != nil }},
		{"UpdateSecret metadata", nil,
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdUpdateSecret, &fsm.UpdateSecret{ARN: arn, Description: &desc, Date: d}
			},
			func(s *fsm.Secret) bool { return s.Description == desc }},
		{"UpdateSecretVersionStage",
			func(h *harness) { h.ok(fsm.CmdPutSecretValue, putCmd(arn, "v2", []string{"custom"}, last)) },
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdUpdateSecretVersionStage, &fsm.UpdateSecretVersionStage{ARN: arn, Stage: "custom", RemoveFrom: "v2", MoveTo: "v1", Date: d}
			},
			func(s *fsm.Secret) bool { return s.Staged("custom") == s.Version("v1") }},
		{"TagResource", nil,
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdTagResource, &fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: d}
			},
			func(s *fsm.Secret) bool { return len(s.Tags) == 1 }},
		{"UntagResource",
			func(h *harness) {
				h.ok(fsm.CmdTagResource, &fsm.TagResource{ARN: arn, Tags: []fsm.Tag{{Key: "k", Value: "v"}}, Date: last})
			},
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdUntagResource, &fsm.UntagResource{ARN: arn, Keys: []string{"k"}, Date: d}
			},
			func(s *fsm.Secret) bool { return len(s.Tags) == 0 }},
		{"PutResourcePolicy", nil,
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: `{"Version":"2012-10-17"}`, Date: d}
			},
			func(s *fsm.Secret) bool { return s.ResourcePolicy != "" }},
		{"DeleteResourcePolicy",
			func(h *harness) {
				h.ok(fsm.CmdPutResourcePolicy, &fsm.PutResourcePolicy{ARN: arn, Policy: `{"Version":"2012-10-17"}`, Date: last})
			},
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdDeleteResourcePolicy, &fsm.DeleteResourcePolicy{ARN: arn, Date: d}
			},
			func(s *fsm.Secret) bool { return s.ResourcePolicy == "" }},
		{"RestoreSecret",
			func(h *harness) {
				h.ok(fsm.CmdDeleteSecret, &fsm.DeleteSecret{ARN: arn, Date: last, DeletionDate: last + 7*day})
			},
			func(d int64) (fsm.CommandType, any) {
				return fsm.CmdRestoreSecret, &fsm.RestoreSecret{ARN: arn, Date: d}
			},
			func(s *fsm.Secret) bool { return !s.Scheduled() }},
	}
	for _, tc := range cases {
		for _, run := range []struct {
			name       string
			date, want int64
		}{
			{"earlier date", t0, last},
			{"later date", last + hour, last + hour},
		} {
			t.Run(tc.name+"/"+run.name, func(t *testing.T) {
				h := newHarness(t)
				h.ok(fsm.CmdCreateSecret, createCmd(name, suffix, strVersionPtr("v1", "one"), last))
				if tc.setup != nil {
					tc.setup(h)
				}
				if got := h.secret(arn).LastChangedDate; got != last {
					t.Fatalf("setup left LastChangedDate %d, want %d", got, last)
				}
				ct, cmd := tc.cmd(run.date)
				h.ok(ct, cmd)
				s := h.secret(arn)
				if !tc.changed(s) {
					t.Fatalf("%s did not take effect", ct)
				}
				if s.LastChangedDate != run.want {
					t.Fatalf("%s with date %d: LastChangedDate %d, want %d", ct, run.date, s.LastChangedDate, run.want)
				}
				for _, v := range s.Versions {
					if v.CreatedDate > s.LastChangedDate {
						t.Fatalf("version %s CreatedDate %d is after LastChangedDate %d", v.VersionID, v.CreatedDate, s.LastChangedDate)
					}
				}
			})
		}
	}
}
