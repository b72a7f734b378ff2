package check

import (
	"testing"
	"time"
)

// retries: put t1 is unknown (its node died); the worker resends the
// same token and value on another node until it is acknowledged.
func retries() Files {
	p := func(id int64, proc int, tok, val string, call, ret int64, status string, of int64, stages ...string) Op {
		o := put(id, proc, tok, val, call, ret, status)
		o.RetryOf = of
		if status == StatusOK {
			o.Stages = append([]string{}, stages...)
		}
		return o
	}
	return Files{Ops: []Op{
		p(1, 0, "t0", "v0", 0, 10, StatusOK, 0, StageCurrent),
		p(2, 1, "t1", "v1", 20, 30, StatusUnknown, 0),
		p(3, 2, "t1", "v1", 35, 36, StatusFail, 2), // connection refused
		p(4, 2, "t1", "v1", 40, 50, StatusOK, 2, StageCurrent),
		get(5, 3, "t1", "v1", 51, 55),
		// Another unknown put, applied, then overwritten before its
		// retry: the retry is a no-op answering the stages t2 has then.
		p(6, 4, "t2", "v2", 60, 70, StatusUnknown, 0),
		p(7, 5, "t3", "v3", 80, 90, StatusOK, 0, StageCurrent),
		p(8, 6, "t2", "v2", 95, 99, StatusOK, 6, StagePrevious),
		get(9, 3, "t3", "v3", 100, 110),
	}, Final: finals([2]string{"t0", "v0"}, [2]string{"t1", "v1"}, [2]string{"t2", "v2"}, [2]string{"t3", "v3"}),
		LogsRead: 3, Leaders: []LeaderClaim{{Node: "n1", Leader: "n1", Term: 2, Source: "acquired"}},
		RaftLogs: goodRaftLogs()}
}

func TestIdempotentRetries(t *testing.T) {
	f := retries()
	for name, r := range verdicts(t, f, "") {
		if r.Verdict != Valid {
			t.Errorf("%s: %s %s %v", name, r.Verdict, r.Detail, r.Errors)
		}
	}
	if r := IdempotentRetries(f); r.Detail != "2 unknown puts retried (3 attempts): 2 acknowledged with their token, 0 unresolved, 0 bad answers" {
		t.Errorf("detail: %s", r.Detail)
	}
	// The retry answered ResourceExistsException: the same token and
	// value must be accepted.
	f = retries()
	f.Ops[3].Status, f.Ops[3].Err, f.Ops[3].VersionID, f.Ops[3].Stages = StatusFail, errExists, "", nil
	if r := IdempotentRetries(f); r.Verdict != Invalid {
		t.Fatalf("ResourceExists retry: %s %s", r.Verdict, r.Detail)
	}
	// Acknowledged under another VersionId.
	f = retries()
	f.Ops[3].VersionID = "t9"
	if r := IdempotentRetries(f); r.Verdict != Invalid {
		t.Fatalf("wrong VersionId: %s %s", r.Verdict, r.Detail)
	}
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("wrong VersionId, linearizable: %s", r.Detail)
	}
	// A retry answering stages the version cannot have then: it was
	// overwritten by t3, so it cannot still be AWSCURRENT.
	f = retries()
	f.Ops[7].Stages = []string{StageCurrent}
	if r := Linearizable(f, 5*time.Second, ""); r.Verdict != Invalid {
		t.Fatalf("retry claiming AWSCURRENT: %s", r.Detail)
	}
}
