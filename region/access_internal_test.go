package region

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// Unit tests of the pieces behind LastAccessedDate that the SDK tests
// cannot see.

func TestDayOf(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want time.Time
	}{
		{time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 4, 23, 59, 59, 999e6, time.UTC), time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 3, 4, 1, 0, 0, 0, time.FixedZone("UTC+2", 7200)), time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)},
		{time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		if got := dayOf(tc.at); got != tc.want.UnixMilli() {
			t.Errorf("dayOf(%v) = %v, want %v", tc.at, time.UnixMilli(got).UTC(), tc.want)
		}
	}
}

func TestAccessLog(t *testing.T) {
	var a accessLog
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	day := dayOf(now)
	v1, v2 := &fsm.Version{VersionID: "v1"}, &fsm.Version{VersionID: "v2"}
	s := &fsm.Secret{ARN: "arn:b", Versions: []*fsm.Version{v1, v2}}
	note := func(s *fsm.Secret, v *fsm.Version, at time.Time) {
		a.noteAll(dayOf(at), due([]ValueRead{{s, v}}, dayOf(at)))
	}
	note(s, v2, now)
	note(s, v2, now)
	note(s, v1, now)
	note(&fsm.Secret{ARN: "arn:a"}, &fsm.Version{VersionID: "x"}, now.Add(-24*time.Hour))
	// Already marked today in the state: nothing to note.
	note(&fsm.Secret{ARN: "arn:c", LastAccessedDate: day}, &fsm.Version{VersionID: "y", LastAccessedDate: day}, now)
	cmds := a.take()
	got := fmt.Sprint(len(cmds), cmds[0].Day == day-24*3600*1000, cmds[0].Secrets, cmds[1].Day == day, cmds[1].Secrets)
	if want := "2 true [{arn:a [x]}] true [{arn:b [v1 v2]}]"; got != want {
		t.Fatalf("take: %s, want %s", got, want)
	}
	if more := a.take(); len(more) != 0 {
		t.Fatalf("second take: %v", more)
	}
	// A failed flush puts its commands back.
	a.putBack(cmds)
	if again := a.take(); fmt.Sprint(again[0].Secrets, again[1].Secrets) != fmt.Sprint(cmds[0].Secrets, cmds[1].Secrets) {
		t.Fatalf("after putBack: %v", again)
	}
	// Batches of at most accessBatch secrets.
	for i := range accessBatch + 1 {
		note(&fsm.Secret{ARN: fmt.Sprintf("arn:%04d", i)}, &fsm.Version{VersionID: "v"}, now)
	}
	cmds = a.take()
	if len(cmds) != 2 || len(cmds[0].Secrets) != accessBatch || len(cmds[1].Secrets) != 1 {
		t.Fatalf("%d commands", len(cmds))
	}
}

// Today's first reads of a version share one recording: a second reader
// waits for the first one's; a failed recording is forgotten (the next
// read tries again) and noted for the flusher.
func TestAccessLog_Recordings(t *testing.T) {
	var a accessLog
	day := dayOf(time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC))
	k1, k2 := accessKey{"arn:a", "v1"}, accessKey{"arn:a", "v2"}
	mine, others := a.claim(day, []accessKey{k1})
	if mine == nil || len(others) != 0 {
		t.Fatalf("first claim: %v %v", mine, others)
	}
	mine2, others2 := a.claim(day, []accessKey{k1, k2})
	if mine2 == nil || !slices.Equal(mine2.keys, []accessKey{k2}) || len(others2) != 1 || others2[0] != mine {
		t.Fatalf("second claim: %+v %v", mine2, others2)
	}
	a.finish(day, mine, nil)
	a.finish(day, mine2, errors.New("no leader"))
	<-mine.done
	<-mine2.done
	// k1 is recorded for today; k2 failed: claimed again, and noted.
	if m, o := a.claim(day, []accessKey{k1}); m != nil || len(o) != 1 {
		t.Fatalf("claim of a recorded key: %v %v", m, o)
	}
	if m, _ := a.claim(day, []accessKey{k2}); m == nil {
		t.Fatal("a failed recording was not forgotten")
	}
	if cmds := a.take(); len(cmds) != 1 || fmt.Sprint(cmds[0].Secrets) != "[{arn:a [v2]}]" {
		t.Fatalf("noted after failure: %v", cmds)
	}
	// A new day starts afresh.
	if m, _ := a.claim(day+dayMillis, []accessKey{k1}); m == nil {
		t.Fatal("yesterday's recording counted today")
	}
}
