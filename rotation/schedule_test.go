package rotation

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func TestWindow(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	for _, tc := range []struct {
		name       string
		rules      Rules
		after      time.Time
		start, end time.Time
	}{
		// AutomaticallyAfterDays and rate(n days): after's UTC date + n
		// days, until the end of that day unless Duration says otherwise.
		{"AutomaticallyAfterDays 30", Rules{AutomaticallyAfterDays: 30}, utc(2026, 3, 15, 13, 45), utc(2026, 4, 14, 0, 0), utc(2026, 4, 15, 0, 0)},
		{"AutomaticallyAfterDays 1 from midnight", Rules{AutomaticallyAfterDays: 1}, utc(2026, 3, 15, 0, 0), utc(2026, 3, 16, 0, 0), utc(2026, 3, 17, 0, 0)},
		{"AutomaticallyAfterDays counts from the UTC date", Rules{AutomaticallyAfterDays: 1}, time.Date(2026, 3, 15, 22, 0, 0, 0, est), utc(2026, 3, 17, 0, 0), utc(2026, 3, 18, 0, 0)},
		{"AutomaticallyAfterDays 1000 with 24h", Rules{AutomaticallyAfterDays: 1000, Duration: "24h"}, utc(2026, 3, 15, 9, 0), utc(2028, 12, 9, 0, 0), utc(2028, 12, 10, 0, 0)},
		{"rate(1 day)", Rules{ScheduleExpression: "rate(1 day)"}, utc(2026, 3, 15, 23, 59), utc(2026, 3, 16, 0, 0), utc(2026, 3, 17, 0, 0)},
		{"rate(10 days) 2h over the new year", Rules{ScheduleExpression: "rate(10 days)", Duration: "2h"}, utc(2026, 12, 25, 23, 59), utc(2027, 1, 4, 0, 0), utc(2027, 1, 4, 2, 0)},

		// rate(n hours): 00:00, n, 2n, ... every day; 1h by default.
		{"rate(10 hours) before 10:00", Rules{ScheduleExpression: "rate(10 hours)"}, utc(2026, 3, 15, 9, 59), utc(2026, 3, 15, 10, 0), utc(2026, 3, 15, 11, 0)},
		{"rate(10 hours) at 10:00", Rules{ScheduleExpression: "rate(10 hours)"}, utc(2026, 3, 15, 10, 0), utc(2026, 3, 15, 20, 0), utc(2026, 3, 15, 21, 0)},
		{"rate(10 hours) restarts at midnight", Rules{ScheduleExpression: "rate(10 hours)"}, utc(2026, 3, 15, 20, 0), utc(2026, 3, 16, 0, 0), utc(2026, 3, 16, 1, 0)},
		{"rate(10 hours) over the new year", Rules{ScheduleExpression: "rate(10 hours)"}, utc(2026, 12, 31, 20, 30), utc(2027, 1, 1, 0, 0), utc(2027, 1, 1, 1, 0)},
		{"rate(4 hours) 4h", Rules{ScheduleExpression: "rate(4 hours)", Duration: "4h"}, utc(2026, 3, 15, 23, 0), utc(2026, 3, 16, 0, 0), utc(2026, 3, 16, 4, 0)},
		{"rate(48 hours) is daily", Rules{ScheduleExpression: "rate(48 hours)"}, utc(2026, 3, 15, 0, 0), utc(2026, 3, 16, 0, 0), utc(2026, 3, 16, 1, 0)},

		// cron: hours. Several windows a day: 1h by default; one a day
		// (below): until the end of the UTC day, as AWS documents.
		{"cron 4/12 at 04:00", Rules{ScheduleExpression: "cron(0 4/12 * * ? *)", Duration: "3h"}, utc(2026, 3, 15, 4, 0), utc(2026, 3, 15, 16, 0), utc(2026, 3, 15, 19, 0)},
		{"cron 4/12 at 16:00", Rules{ScheduleExpression: "cron(0 4/12 * * ? *)", Duration: "3h"}, utc(2026, 3, 15, 16, 0), utc(2026, 3, 16, 4, 0), utc(2026, 3, 16, 7, 0)},
		{"cron 0/6", Rules{ScheduleExpression: "cron(0 0/6 * * ? *)"}, utc(2026, 3, 15, 5, 0), utc(2026, 3, 15, 6, 0), utc(2026, 3, 15, 7, 0)},
		{"cron 0/6 late", Rules{ScheduleExpression: "cron(0 0/6 * * ? *)"}, utc(2026, 3, 15, 18, 0), utc(2026, 3, 16, 0, 0), utc(2026, 3, 16, 1, 0)},

		// cron: Day-of-month.
		{"cron 31st skips April", Rules{ScheduleExpression: "cron(0 8 31 * ? *)"}, utc(2026, 3, 31, 8, 0), utc(2026, 5, 31, 8, 0), utc(2026, 6, 1, 0, 0)},
		{"cron L in leap February", Rules{ScheduleExpression: "cron(0 0 L * ? *)"}, utc(2028, 2, 1, 0, 0), utc(2028, 2, 29, 0, 0), utc(2028, 3, 1, 0, 0)},
		{"cron L in February", Rules{ScheduleExpression: "cron(0 0 L * ? *)"}, utc(2027, 2, 1, 0, 0), utc(2027, 2, 28, 0, 0), utc(2027, 3, 1, 0, 0)},
		{"cron L at its start", Rules{ScheduleExpression: "cron(0 0 L * ? *)"}, utc(2028, 2, 29, 0, 0), utc(2028, 3, 31, 0, 0), utc(2028, 4, 1, 0, 0)},
		{"cron L over the new year", Rules{ScheduleExpression: "cron(0 16 L * ? *)", Duration: "8h"}, utc(2026, 12, 31, 16, 0), utc(2027, 1, 31, 16, 0), utc(2027, 2, 1, 0, 0)},
		{"cron 29 FEB", Rules{ScheduleExpression: "cron(0 0 29 FEB ? *)"}, utc(2026, 1, 1, 0, 0), utc(2028, 2, 29, 0, 0), utc(2028, 3, 1, 0, 0)},
		{"cron 1 January", Rules{ScheduleExpression: "cron(0 0 1 1 ? *)"}, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), utc(2027, 1, 2, 0, 0)},
		{"cron lists, ranges, increments and names", Rules{ScheduleExpression: "cron(0 1,13 1,15 jan-JUN/2 ? *)", Duration: "11h"}, utc(2026, 5, 15, 13, 0), utc(2027, 1, 1, 1, 0), utc(2027, 1, 1, 12, 0)},
		{"cron Day-of-month increment", Rules{ScheduleExpression: "cron(0 8 1/10 * ? *)"}, utc(2026, 3, 21, 8, 0), utc(2026, 3, 31, 8, 0), utc(2026, 4, 1, 0, 0)},

		// cron: Day-of-week (1=SUN..7=SAT; 2026-03-15 is a Sunday).
		{"cron weekdays over the weekend", Rules{ScheduleExpression: "cron(0 8 ? * MON-FRI *)"}, utc(2026, 3, 20, 8, 0), utc(2026, 3, 23, 8, 0), utc(2026, 3, 24, 0, 0)},
		{"cron lower-case name", Rules{ScheduleExpression: "cron(0 12 ? * sun *)"}, utc(2026, 3, 15, 11, 59), utc(2026, 3, 15, 12, 0), utc(2026, 3, 16, 0, 0)},
		{"cron every other weekday from SUN", Rules{ScheduleExpression: "cron(0 0 ? * */2 *)"}, utc(2026, 3, 15, 0, 0), utc(2026, 3, 17, 0, 0), utc(2026, 3, 18, 0, 0)},
		{"cron L is Saturday", Rules{ScheduleExpression: "cron(0 0 ? * L *)"}, utc(2026, 3, 15, 12, 0), utc(2026, 3, 21, 0, 0), utc(2026, 3, 22, 0, 0)},
		{"cron last Friday", Rules{ScheduleExpression: "cron(0 0 ? * 6L *)"}, utc(2026, 3, 1, 0, 0), utc(2026, 3, 27, 0, 0), utc(2026, 3, 28, 0, 0)},
		{"cron last Friday at its start", Rules{ScheduleExpression: "cron(0 0 ? * FRIL *)"}, utc(2026, 3, 27, 0, 0), utc(2026, 4, 24, 0, 0), utc(2026, 4, 25, 0, 0)},
		{"cron first Monday", Rules{ScheduleExpression: "cron(0 0 ? * MON#1 *)"}, utc(2026, 3, 2, 0, 0), utc(2026, 4, 6, 0, 0), utc(2026, 4, 7, 0, 0)},
		{"cron fifth Friday skips months", Rules{ScheduleExpression: "cron(0 0 ? * 6#5 *)"}, utc(2026, 1, 30, 0, 0), utc(2026, 5, 29, 0, 0), utc(2026, 5, 30, 0, 0)},
		{"cron fifth Monday of February", Rules{ScheduleExpression: "cron(0 0 ? FEB MON#5 *)"}, utc(2026, 1, 1, 0, 0), utc(2044, 2, 29, 0, 0), utc(2044, 3, 1, 0, 0)},
		{"cron weekdays in a list", Rules{ScheduleExpression: "cron(0 6 ? * MON#1,FRIL,WED *)"}, utc(2026, 3, 26, 6, 0), utc(2026, 3, 27, 6, 0), utc(2026, 3, 28, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseRules(tc.rules)
			if err != nil {
				t.Fatalf("ParseRules(%+v): %v", tc.rules, err)
			}
			start, end := s.Window(tc.after)
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("Window(%v) = %v – %v, want %v – %v", tc.after, start, end, tc.start, tc.end)
			}
			if start.Location() != time.UTC || end.Location() != time.UTC {
				t.Errorf("Window(%v) is not in UTC: %v – %v", tc.after, start, end)
			}
		})
	}
}

func TestAfterDays(t *testing.T) {
	for _, tc := range []struct {
		rules Rules
		want  int64
	}{
		{Rules{AutomaticallyAfterDays: 30}, 30},
		{Rules{AutomaticallyAfterDays: 1000, Duration: "2h"}, 1000},
		{Rules{ScheduleExpression: "rate(1 day)"}, 1},
		{Rules{ScheduleExpression: "rate( 10  days )"}, 10},
		{Rules{ScheduleExpression: "rate(24 hours)"}, 0},
		{Rules{ScheduleExpression: "cron(0 0 1/7 * ? *)"}, 0},
	} {
		s, err := ParseRules(tc.rules)
		if err != nil {
			t.Fatalf("ParseRules(%+v): %v", tc.rules, err)
		}
		if got := s.AfterDays(); got != tc.want {
			t.Errorf("ParseRules(%+v).AfterDays() = %d, want %d", tc.rules, got, tc.want)
		}
	}
}

func TestParseRules_Invalid(t *testing.T) {
	for _, tc := range []struct {
		rules Rules
		want  string
	}{
		{Rules{AutomaticallyAfterDays: 30, ScheduleExpression: "rate(10 days)"}, "RotationRules can have AutomaticallyAfterDays or ScheduleExpression, not both."},
		{Rules{Duration: "2h"}, "RotationRules needs a schedule: AutomaticallyAfterDays (1-1000) or ScheduleExpression (rate(...) or cron(...))."},
		{Rules{AutomaticallyAfterDays: -1}, "Invalid AutomaticallyAfterDays -1: it must be between 1 and 1000"},
		{Rules{AutomaticallyAfterDays: 1001}, "Invalid AutomaticallyAfterDays 1001: it must be between 1 and 1000"},
		{Rules{ScheduleExpression: "every day"}, `Invalid ScheduleExpression "every day": a ScheduleExpression is rate(<n> hours), rate(<n> days) or cron(Minutes Hours Day-of-month Month Day-of-week Year), e.g. rate(10 days) or cron(0 4 ? * MON *)`},
		{Rules{ScheduleExpression: "rate(2 weeks)"}, `Invalid ScheduleExpression "rate(2 weeks)": a rate expression is rate(<n> hours) or rate(<n> days), e.g. rate(12 hours) or rate(10 days)`},
		{Rules{ScheduleExpression: "rate(99999999999999999999 days)"}, `Invalid ScheduleExpression "rate(99999999999999999999 days)": 99999999999999999999 is not a number`},
		{Rules{ScheduleExpression: "rate(1 hours)"}, `Invalid ScheduleExpression "rate(1 hours)": rate(n hours) needs n between 4 and 24000: rotations are at least 4 hours apart, got 1`},
		{Rules{ScheduleExpression: "rate(0 days)"}, `Invalid ScheduleExpression "rate(0 days)": rate(n days) needs n between 1 and 1000, got 0`},
		{Rules{ScheduleExpression: "rate(1001 days)"}, `Invalid ScheduleExpression "rate(1001 days)": rate(n days) needs n between 1 and 1000, got 1001`},
		{Rules{ScheduleExpression: "cron(0 4 * * ?)"}, `Invalid ScheduleExpression "cron(0 4 * * ?)": a cron expression has 6 fields, cron(Minutes Hours Day-of-month Month Day-of-week Year), this one has 5; e.g. cron(0 4 ? * MON *)`},
		{Rules{ScheduleExpression: "cron(30 4 * * ? *)"}, `Invalid ScheduleExpression "cron(30 4 * * ? *)": Minutes must be 0 (rotation windows start on the hour), got "30"`},
		{Rules{ScheduleExpression: "cron(0 4 * * ? 2030)"}, `Invalid ScheduleExpression "cron(0 4 * * ? 2030)": Year must be *, got "2030"`},
		{Rules{ScheduleExpression: "cron(0 24 * * ? *)"}, `Invalid ScheduleExpression "cron(0 24 * * ? *)": Hours field "24": 24 is outside 0-23`},
		{Rules{ScheduleExpression: "cron(0 4 32 * ? *)"}, `Invalid ScheduleExpression "cron(0 4 32 * ? *)": Day-of-month field "32": 32 is outside 1-31`},
		{Rules{ScheduleExpression: "cron(0 4 1 JANUARY ? *)"}, `Invalid ScheduleExpression "cron(0 4 1 JANUARY ? *)": Month field "JANUARY": "JANUARY" is not a number 1-12 or one of JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, OCT, NOV, DEC`},
		{Rules{ScheduleExpression: "cron(0 4 ? * FUN *)"}, `Invalid ScheduleExpression "cron(0 4 ? * FUN *)": Day-of-week field "FUN": "FUN" is not a number 1-7 or one of SUN, MON, TUE, WED, THU, FRI, SAT`},
		{Rules{ScheduleExpression: "cron(0 4 ? * MON#6 *)"}, `Invalid ScheduleExpression "cron(0 4 ? * MON#6 *)": Day-of-week field "MON#6": the n in <day>#n must be 1-5, got "6"`},
		{Rules{ScheduleExpression: "cron(0 4 1#2 * ? *)"}, `Invalid ScheduleExpression "cron(0 4 1#2 * ? *)": Day-of-month field "1#2": # is only allowed in Day-of-week`},
		{Rules{ScheduleExpression: "cron(0 ? * * ? *)"}, `Invalid ScheduleExpression "cron(0 ? * * ? *)": Hours field "?": ? is only allowed in Day-of-month and Day-of-week`},
		{Rules{ScheduleExpression: "cron(0 4 1,? * ? *)"}, `Invalid ScheduleExpression "cron(0 4 1,? * ? *)": Day-of-month field "1,?": ? must stand alone`},
		{Rules{ScheduleExpression: "cron(0 4 1,,2 * ? *)"}, `Invalid ScheduleExpression "cron(0 4 1,,2 * ? *)": Day-of-month field "1,,2": empty list item`},
		{Rules{ScheduleExpression: "cron(0 4 1 L ? *)"}, `Invalid ScheduleExpression "cron(0 4 1 L ? *)": Month field "L": L is only allowed in Day-of-month and Day-of-week`},
		{Rules{ScheduleExpression: "cron(0 */0 * * ? *)"}, `Invalid ScheduleExpression "cron(0 */0 * * ? *)": Hours field "*/0": the increment after / must be a number between 1 and 23, got "0"`},
		{Rules{ScheduleExpression: "cron(0 10-4 * * ? *)"}, `Invalid ScheduleExpression "cron(0 10-4 * * ? *)": Hours field "10-4": range 10-4 runs backwards`},
		{Rules{ScheduleExpression: "cron(0 4 * * * *)"}, `Invalid ScheduleExpression "cron(0 4 * * * *)": exactly one of Day-of-month and Day-of-week must be ?, e.g. cron(0 4 ? * MON *) or cron(0 4 1 * ? *)`},
		{Rules{ScheduleExpression: "cron(0 4 ? * ? *)"}, `Invalid ScheduleExpression "cron(0 4 ? * ? *)": exactly one of Day-of-month and Day-of-week must be ?, e.g. cron(0 4 ? * MON *) or cron(0 4 1 * ? *)`},
		{Rules{ScheduleExpression: "cron(0 */2 * * ? *)"}, `Invalid ScheduleExpression "cron(0 */2 * * ? *)": windows at 00:00 and 02:00 are 2 hours apart; rotations must be at least 4 hours apart`},
		{Rules{ScheduleExpression: "cron(0 1,3 * * ? *)"}, `Invalid ScheduleExpression "cron(0 1,3 * * ? *)": windows at 01:00 and 03:00 are 2 hours apart; rotations must be at least 4 hours apart`},
		{Rules{ScheduleExpression: "cron(0 0,22 * * ? *)"}, `Invalid ScheduleExpression "cron(0 0,22 * * ? *)": the window at 22:00 and the next day's at 00:00 are 2 hours apart; rotations must be at least 4 hours apart`},
		{Rules{AutomaticallyAfterDays: 30, Duration: "0h"}, `Invalid Duration "0h": the rotation window must be between 1h and 24h`},
		{Rules{AutomaticallyAfterDays: 30, Duration: "25h"}, `Invalid Duration "25h": the rotation window must be between 1h and 24h`},
		{Rules{AutomaticallyAfterDays: 30, Duration: "3d"}, `Invalid Duration "3d": the rotation window must be between 1h and 24h`},
		{Rules{ScheduleExpression: "rate(12 hours)", Duration: "13h"}, `Invalid Duration "13h": a 13h window would run into the next one, 12 hours later`},
		{Rules{ScheduleExpression: "cron(0 4/4 * * ? *)", Duration: "5h"}, `Invalid Duration "5h": a 5h window starting at 04:00 would run into the next one at 08:00`},
		{Rules{ScheduleExpression: "cron(0 22 * * ? *)", Duration: "3h"}, `Invalid Duration "3h": a 3h window starting at 22:00 UTC would run into the next UTC day`},

		// Accepted by the first parser, refused now: they have no meaning,
		// or never run.
		{Rules{ScheduleExpression: "cron(0 0 5L * ? *)"}, `Invalid ScheduleExpression "cron(0 0 5L * ? *)": Day-of-month field "5L": <n>L has no meaning in Day-of-month; L alone is the last day of the month, and <day>L in Day-of-week the last such weekday of the month`},
		{Rules{ScheduleExpression: "cron(0 0 31 FEB ? *)"}, `Invalid ScheduleExpression "cron(0 0 31 FEB ? *)": no month in Month "FEB" has a day in Day-of-month "31", so the schedule would never run`},
		{Rules{ScheduleExpression: "cron(0 0 31 APR,JUN,SEP,NOV ? *)"}, `Invalid ScheduleExpression "cron(0 0 31 APR,JUN,SEP,NOV ? *)": no month in Month "APR,JUN,SEP,NOV" has a day in Day-of-month "31", so the schedule would never run`},
	} {
		_, err := ParseRules(tc.rules)
		if err == nil {
			t.Errorf("ParseRules(%+v) accepted, want %s", tc.rules, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseRules(%+v):\n got %s\nwant %s", tc.rules, err, tc.want)
		}
	}
}

// What the first parser accepted stays accepted, the rare schedules too.
func TestParseRules_Valid(t *testing.T) {
	for _, r := range []Rules{
		{ScheduleExpression: "cron(0 0 30,31 FEB,MAR ? *)"},
		{ScheduleExpression: "cron(0 0 30 FEB,APR ? *)"},
		{ScheduleExpression: "cron(0 0 29 2 ? *)"},
		{ScheduleExpression: "cron(0 0 L,15 * ? *)"},
		{ScheduleExpression: "cron(0 0 ? 2 1#5 *)"},
		{ScheduleExpression: "cron(0 0,20 ? * MON-FRI *)", Duration: "4h"},
		{ScheduleExpression: "cron(0 0 ? * 7L,1#1 *)"},
		{ScheduleExpression: "rate(24000 hours)", Duration: "24h"},
	} {
		s, err := ParseRules(r)
		if err != nil {
			t.Errorf("ParseRules(%+v): %v", r, err)
			continue
		}
		after := utc(2026, 3, 15, 0, 0)
		if start, end := s.Window(after); !start.After(after) || !end.After(start) {
			t.Errorf("ParseRules(%+v).Window(%v) = %v – %v", r, after, start, end)
		}
	}
}

func TestWindow_ZeroSchedule(t *testing.T) {
	if start, end := (Schedule{}).Window(utc(2026, 3, 15, 0, 0)); !start.IsZero() || !end.IsZero() {
		t.Errorf("zero Schedule: Window = %v – %v, want zero times", start, end)
	}
}

// FuzzParseRules: ParseRules never panics, and a schedule it accepts has
// windows: each starts on the hour strictly after `after`, ends after it
// starts and no later than the end of its UTC day (a day schedule's
// default window ends exactly there), and is the first one (nothing
// starts between `after` and its start) and ends before the next starts.
func FuzzParseRules(f *testing.F) {
	for _, r := range []Rules{
		{AutomaticallyAfterDays: 30},
		{ScheduleExpression: "rate(10 days)", Duration: "2h"},
		{ScheduleExpression: "rate(10 hours)"},
		{ScheduleExpression: "cron(0 4/12 * * ? *)", Duration: "3h"},
		{ScheduleExpression: "cron(0 0 L * ? *)"},
		{ScheduleExpression: "cron(0 0 ? * 6L *)"},
		{ScheduleExpression: "cron(0 0 ? FEB MON#5 *)"},
		{ScheduleExpression: "cron(0 1,13 1,15 jan-JUN/2 ? *)", Duration: "11h"},
	} {
		f.Add(r.AutomaticallyAfterDays, r.ScheduleExpression, r.Duration, int64(1773532800))
	}
	// After seconds are folded into 1900-2400: the schedules are for
	// dates a server meets, not for the ends of time.Time's range.
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	span := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - lo
	f.Fuzz(func(t *testing.T, days int64, expr, dur string, sec int64) {
		s, err := ParseRules(Rules{AutomaticallyAfterDays: days, ScheduleExpression: expr, Duration: dur})
		if err != nil {
			return
		}
		after := time.Unix(lo+(sec%span+span)%span, sec&0x3fffffff%1e9).UTC()
		start, end := s.Window(after)
		if !start.After(after) || !end.After(start) {
			t.Fatalf("%q %q %d: Window(%v) = %v – %v", expr, dur, days, after, start, end)
		}
		y, m, d := start.Date()
		if start.Truncate(time.Hour) != start || end.After(time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%q %q %d: Window(%v) = %v – %v: not on the hour or past its day", expr, dur, days, after, start, end)
		}
		if s.AfterDays() == 0 {
			if again, _ := s.Window(start.Add(-time.Nanosecond)); !again.Equal(start) {
				t.Fatalf("%q %q: Window(%v) = %v but Window(just before) = %v", expr, dur, after, start, again)
			}
		}
		if next, _ := s.Window(start); next.Before(end) {
			t.Fatalf("%q %q %d: window %v – %v overlaps the next, at %v", expr, dur, days, start, end, next)
		}
	})
}

// TestWindow_Cron compares cron windows with a plain walk, hour by hour,
// over many expressions and dates.
func TestWindow_Cron(t *testing.T) {
	hours := []string{"0", "4/12", "0/6", "23", "1,13", "8-20/6"}
	doms := []string{"1", "31", "L", "15,L", "1/10", "29", "30", "28-31"}
	months := []string{"*", "FEB", "2,4", "jan-JUN/2", "*/3", "DEC", "APR,JUN,SEP,NOV"}
	dows := []string{"MON", "6L", "MON#1", "FRI#5", "L", "*/2", "SUN-SAT", "MON-FRI", "2#5,7L"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	for range 3000 {
		dom, dow := pick(doms), "?"
		if rng.IntN(2) == 0 {
			dom, dow = "?", pick(dows)
		}
		expr := fmt.Sprintf("cron(0 %s %s %s %s *)", pick(hours), dom, pick(months), dow)
		s, err := ParseRules(Rules{ScheduleExpression: expr})
		if err != nil {
			continue // never runs
		}
		after := utc(2020, 1, 1, 0, 0).Add(time.Duration(rng.Int64N(int64(20 * 365 * 24 * time.Hour))))
		if rng.IntN(4) == 0 {
			after = after.Truncate(time.Hour) // on a possible start
		}
		want := walk(s, after)
		if got, _ := s.Window(after); !got.Equal(want) {
			t.Fatalf("%s: Window(%v) = %v, want %v", expr, after, got, want)
		}
	}
}

// walk finds the next start of a cron schedule hour by hour, matching the
// days its own way.
func walk(s Schedule, after time.Time) time.Time {
	for t := after.Truncate(time.Hour); t.Year() < after.Year()+400; t = t.Add(time.Hour) {
		if !t.After(after) || s.hours&(1<<t.Hour()) == 0 || s.months&(1<<t.Month()) == 0 {
			continue
		}
		lastDay := t.AddDate(0, 0, 1).Day() == 1
		w := int(t.Weekday()) + 1
		var runs bool
		if s.byDOW {
			runs = s.dow&(1<<w) != 0 ||
				(s.dowLast&(1<<w) != 0 && t.AddDate(0, 0, 7).Month() != t.Month()) ||
				s.dowNth[w]&(1<<((t.Day()+6)/7)) != 0
		} else {
			runs = s.dom&(1<<t.Day()) != 0 || (s.domLast && lastDay)
		}
		if runs {
			return t
		}
	}
	return time.Time{}
}
