package rotation

import (
	"errors"
	"fmt"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rotation schedules (shared/spec §5.2): the RotationRules of RotateSecret
// checked and parsed, and the windows they open. All times are UTC, as in
// AWS.

// Rules is a secret's RotationRules as stored (zero values: not set).
//
// ParseRules expects rules that already meet the model constraints of
// RotationRulesType (AutomaticallyAfterDays 1-1000, Duration matching
// ^[0-9]+h$, ScheduleExpression of 1-256 characters from its pattern): the
// caller checks those first, because AWS answers them with a
// ValidationException. ParseRules is safe on any input all the same.
type Rules struct {
	AutomaticallyAfterDays int64
	ScheduleExpression     string
	Duration               string // "<n>h", "" = default
}

// Schedule is valid, parsed Rules. It is comparable. The zero Schedule is
// not valid: its Window is the zero time.
type Schedule struct {
	kind      kind
	days      int64         // kindDays: the interval in days
	rateHours int           // kindHours: the n of rate(n hours)
	hours     uint32        // bit h: a window starts at h:00 on a day the schedule runs
	duration  time.Duration // the window's length

	// kindCron: the days the schedule runs.
	months  uint16   // bit m: month m (1-12)
	byDOW   bool     // Day-of-month is ?, so Day-of-week decides
	dom     uint32   // bit d: day d of the month
	domLast bool     // L: the last day of the month
	dow     uint8    // bit w: every weekday w (1=SUN..7=SAT)
	dowLast uint8    // bit w: <w>L, the last weekday w of the month
	dowNth  [8]uint8 // bit n of dowNth[w]: <w>#n, the n-th weekday w of the month
}

type kind uint8

const (
	kindDays  kind = iota + 1 // AutomaticallyAfterDays or rate(n days)
	kindHours                 // rate(n hours)
	kindCron
)

// ParseRules checks rules (the stateless rules of the AWS API) and parses
// them. Its error's text is the complete message of the
// InvalidParameterException the caller answers with, e.g.
//
//	Invalid ScheduleExpression "rate(1 hours)": rate(n hours) needs n between 4 and 24000: ...
//
// Default window lengths, as AWS's: a day schedule's (AutomaticallyAfterDays,
// rate(n days), a cron with one window a day) lasts until the end of its
// UTC day, a rate(n hours) or a cron with several windows a day one hour.
func ParseRules(r Rules) (Schedule, error) {
	if r.AutomaticallyAfterDays != 0 && r.ScheduleExpression != "" {
		return Schedule{}, errors.New("RotationRules can have AutomaticallyAfterDays or ScheduleExpression, not both.")
	}
	if r.AutomaticallyAfterDays == 0 && r.ScheduleExpression == "" {
		return Schedule{}, errors.New("RotationRules needs a schedule: AutomaticallyAfterDays (1-1000) or ScheduleExpression (rate(...) or cron(...)).")
	}
	var s Schedule
	if r.ScheduleExpression != "" {
		var err error
		if s, err = parseSchedule(r.ScheduleExpression); err != nil {
			return Schedule{}, fmt.Errorf("Invalid ScheduleExpression %q: %v", r.ScheduleExpression, err)
		}
	} else {
		// The model constraint, checked again: Window adds these days to
		// a date, and a negative or huge number has no sensible window.
		if r.AutomaticallyAfterDays < 1 || r.AutomaticallyAfterDays > 1000 {
			return Schedule{}, fmt.Errorf("Invalid AutomaticallyAfterDays %d: it must be between 1 and 1000", r.AutomaticallyAfterDays)
		}
		s = daySchedule(r.AutomaticallyAfterDays)
	}
	if r.Duration != "" {
		n, err := s.checkDuration(r.Duration)
		if err != nil {
			return Schedule{}, fmt.Errorf("Invalid Duration %q: %v", r.Duration, err)
		}
		s.duration = time.Duration(n) * time.Hour
	}
	return s, nil
}

// daySchedule is one window every n days, starting at 00:00 UTC and, by
// default, lasting until the end of that UTC day.
func daySchedule(n int64) Schedule {
	return Schedule{kind: kindDays, days: n, hours: 1, duration: 24 * time.Hour}
}

// AfterDays is the schedule's interval in days for AutomaticallyAfterDays
// and rate(n days), 0 otherwise (DescribeSecret shows it).
func (s Schedule) AfterDays() int64 {
	if s.kind == kindDays {
		return s.days
	}
	return 0
}

// Window returns the first rotation window that starts strictly after
// `after` (for AutomaticallyAfterDays / rate(n days): the UTC day
// `after`'s UTC date + n days). Start and end are in UTC.
//
// A cron schedule is searched for up to 400 years ahead, the period of the
// Gregorian calendar; ParseRules refuses a schedule that never runs, so
// the search always finds a window. Should it not (a zero Schedule), both
// times are zero.
func (s Schedule) Window(after time.Time) (start, end time.Time) {
	after = after.UTC()
	y, m, d := after.Date()
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	switch s.kind {
	case kindDays:
		start = day.AddDate(0, 0, int(s.days))
	case kindHours:
		// 00:00 is always a start, so tomorrow's first window is the
		// answer when today has none left.
		if start = s.startOn(day, after); start.IsZero() {
			start = day.AddDate(0, 0, 1)
		}
	case kindCron:
		start = s.nextCron(after)
	}
	if start.IsZero() {
		return time.Time{}, time.Time{}
	}
	return start, start.Add(s.duration)
}

// startOn returns the first window start on day that is after `after`, or
// the zero time.
func (s Schedule) startOn(day, after time.Time) time.Time {
	for h := range 24 {
		if s.hours&(1<<h) == 0 {
			continue
		}
		if t := day.Add(time.Duration(h) * time.Hour); t.After(after) {
			return t
		}
	}
	return time.Time{}
}

// searchDays bounds the search for a cron schedule's next window: the
// Gregorian calendar repeats every 400 years (146097 days, a whole number
// of weeks), so a schedule that runs on any day runs on one within 400
// years of any date.
const searchDays = 146097

func (s Schedule) nextCron(after time.Time) time.Time {
	y, m, d := after.Date()
	for i := 0; i <= searchDays; {
		n := daysIn(y, m)
		if s.months&(1<<m) == 0 {
			// Skip the rest of a month the schedule does not run in.
			i += n - d + 1
			y, m = nextMonth(y, m)
			d = 1
			continue
		}
		if s.runsOn(y, m, d, n) {
			if t := s.startOn(time.Date(y, m, d, 0, 0, 0, 0, time.UTC), after); !t.IsZero() {
				return t
			}
		}
		i++
		if d++; d > n {
			y, m = nextMonth(y, m)
			d = 1
		}
	}
	return time.Time{}
}

func nextMonth(y int, m time.Month) (int, time.Month) {
	if m == time.December {
		return y + 1, time.January
	}
	return y, m + 1
}

// daysIn is the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// runsOn reports whether a cron schedule runs on day d of month m of year
// y, a month of n days. The month itself is checked by the caller.
func (s Schedule) runsOn(y int, m time.Month, d, n int) bool {
	if !s.byDOW {
		return s.dom&(1<<d) != 0 || (s.domLast && d == n)
	}
	w := int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()) + 1 // 1=SUN..7=SAT
	bit := uint8(1) << w
	return s.dow&bit != 0 ||
		(s.dowLast&bit != 0 && d+7 > n) ||
		s.dowNth[w]&(1<<((d-1)/7+1)) != 0
}

// everRuns reports whether a cron schedule runs on some day. Every
// Day-of-week schedule does: each month has each weekday at least four
// times, and over the years each month, February of a leap year too,
// begins on every weekday, so a fifth one (#5) comes too. A Day-of-month
// schedule needs a day its months have, in their longest years.
func (s Schedule) everRuns() bool {
	if s.byDOW || s.domLast {
		return true
	}
	for m := time.January; m <= time.December; m++ {
		longest := daysIn(2000, m) // a leap year
		if s.months&(1<<m) != 0 && s.dom&(1<<(longest+1)-2) != 0 {
			return true
		}
	}
	return false
}

// minRotationHours is the shortest time between two rotations (spec §5.2).
const minRotationHours = 4

const scheduleSyntax = "a ScheduleExpression is rate(<n> hours), rate(<n> days) or cron(Minutes Hours Day-of-month Month Day-of-week Year), e.g. rate(10 days) or cron(0 4 ? * MON *)"

var rateExpr = regexp.MustCompile(`^rate\(\s*([0-9]+)\s+(hour|hours|day|days)\s*\)$`)

func parseSchedule(expr string) (Schedule, error) {
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		m := rateExpr.FindStringSubmatch(expr)
		if m == nil {
			return Schedule{}, fmt.Errorf("a rate expression is rate(<n> hours) or rate(<n> days), e.g. rate(12 hours) or rate(10 days)")
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return Schedule{}, fmt.Errorf("%s is not a number", m[1])
		}
		if strings.HasPrefix(m[2], "day") {
			if n < 1 || n > 1000 {
				return Schedule{}, fmt.Errorf("rate(n days) needs n between 1 and 1000, got %d", n)
			}
			return daySchedule(int64(n)), nil
		}
		if n < minRotationHours || n > 1000*24 {
			return Schedule{}, fmt.Errorf("rate(n hours) needs n between %d and %d: rotations are at least %d hours apart, got %d", minRotationHours, 1000*24, minRotationHours, n)
		}
		// The increments restart each day at 00:00, as those of a cron
		// Hours field do in AWS: n = 10 opens windows at 00:00, 10:00 and
		// 20:00 every day, and n >= 24 one at 00:00 every day.
		s := Schedule{kind: kindHours, rateHours: n, duration: time.Hour}
		for h := 0; h < 24; h += n {
			s.hours |= 1 << h
		}
		return s, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return parseCron(expr[len("cron(") : len(expr)-1])
	}
	return Schedule{}, fmt.Errorf("%s", scheduleSyntax)
}

// cronField describes one field of a Secrets Manager cron expression.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i (JAN, SUN, ...)
	question bool     // ? allowed (the day fields)
	last     bool     // L and <n>L allowed (the day fields)
	hash     bool     // <day>#<n> allowed (day of week)
}

var (
	cronHours      = cronField{name: "Hours", min: 0, max: 23}
	cronDayOfMonth = cronField{name: "Day-of-month", min: 1, max: 31, question: true, last: true}
	cronMonth      = cronField{name: "Month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	cronDayOfWeek = cronField{name: "Day-of-week", min: 1, max: 7,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}, question: true, last: true, hash: true}
)

// selection is what one cron field selects.
type selection struct {
	values uint32   // bit x: value x
	last   bool     // L
	lastOf uint32   // bit x: <x>L
	nth    [8]uint8 // bit n of nth[x]: <x>#n
}

func parseCron(body string) (Schedule, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return Schedule{}, fmt.Errorf("a cron expression has 6 fields, cron(Minutes Hours Day-of-month Month Day-of-week Year), this one has %d; e.g. cron(0 4 ? * MON *)", len(f))
	}
	if f[0] != "0" {
		return Schedule{}, fmt.Errorf("Minutes must be 0 (rotation windows start on the hour), got %q", f[0])
	}
	if f[5] != "*" {
		return Schedule{}, fmt.Errorf("Year must be *, got %q", f[5])
	}
	hours, err := cronHours.values(f[1])
	if err != nil {
		return Schedule{}, err
	}
	var sel [3]selection
	for i, fd := range []struct {
		field cronField
		text  string
	}{{cronDayOfMonth, f[2]}, {cronMonth, f[3]}, {cronDayOfWeek, f[4]}} {
		if sel[i], err = fd.field.values(fd.text); err != nil {
			return Schedule{}, err
		}
	}
	dom, month, dow := sel[0], sel[1], sel[2]
	if (f[2] == "?") == (f[4] == "?") {
		return Schedule{}, fmt.Errorf("exactly one of Day-of-month and Day-of-week must be ?, e.g. cron(0 4 ? * MON *) or cron(0 4 1 * ? *)")
	}
	starts := []int{}
	for h := range 24 {
		if hours.values&(1<<h) != 0 {
			starts = append(starts, h)
		}
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i] - starts[i-1]; gap < minRotationHours {
			return Schedule{}, fmt.Errorf("windows at %02d:00 and %02d:00 are %d hours apart; rotations must be at least %d hours apart", starts[i-1], starts[i], gap, minRotationHours)
		}
	}
	// Every day: the last window of a day and the first of the next.
	everyDay := (f[2] == "*" || f[2] == "?") && (f[4] == "*" || f[4] == "?") && f[3] == "*"
	if everyDay && len(starts) > 1 {
		if gap := 24 - starts[len(starts)-1] + starts[0]; gap < minRotationHours {
			return Schedule{}, fmt.Errorf("the window at %02d:00 and the next day's at %02d:00 are %d hours apart; rotations must be at least %d hours apart", starts[len(starts)-1], starts[0], gap, minRotationHours)
		}
	}
	// The checks above are those of the first parser, so what it refused
	// is refused with the same message; the two below are new, and come
	// last for that reason.
	if dom.lastOf != 0 {
		return Schedule{}, fmt.Errorf("Day-of-month field %q: <n>L has no meaning in Day-of-month; L alone is the last day of the month, and <day>L in Day-of-week the last such weekday of the month", f[2])
	}
	s := Schedule{
		kind:  kindCron,
		hours: hours.values,
		// AWS: a cron schedule "in hours" (several windows a day) has
		// one-hour windows, one "in days" (one window a day) a window
		// until the end of the UTC day.
		duration: time.Hour,
		months:   uint16(month.values),
		byDOW:    f[2] == "?",
		dom:      dom.values,
		domLast:  dom.last,
		dow:      uint8(dow.values),
		dowLast:  uint8(dow.lastOf),
		dowNth:   dow.nth,
	}
	if bits.OnesCount32(s.hours) == 1 {
		s.duration = time.Duration(24-bits.TrailingZeros32(s.hours)) * time.Hour
	}
	if dow.last {
		// L alone in Day-of-week is the last day of the week: Saturday.
		s.dow |= 1 << 7
	}
	if !s.everRuns() {
		return Schedule{}, fmt.Errorf("no month in Month %q has a day in Day-of-month %q, so the schedule would never run", f[3], f[2])
	}
	return s, nil
}

// values parses one field and returns what it selects; ? selects nothing.
func (f cronField) values(text string) (selection, error) {
	var out selection
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s field %q: %s", f.name, text, fmt.Sprintf(format, args...))
	}
	if text == "?" {
		if !f.question {
			return out, bad("? is only allowed in Day-of-month and Day-of-week")
		}
		return out, nil
	}
	for item := range strings.SplitSeq(text, ",") {
		if item == "" {
			return out, bad("empty list item")
		}
		if strings.Contains(item, "?") {
			return out, bad("? must stand alone")
		}
		if item == "L" || (strings.HasSuffix(item, "L") && len(item) > 1) {
			if !f.last {
				return out, bad("L is only allowed in Day-of-month and Day-of-week")
			}
			if item == "L" {
				out.last = true
				continue
			}
			x, err := f.value(strings.TrimSuffix(item, "L"))
			if err != nil {
				return out, bad("%v", err)
			}
			out.lastOf |= 1 << x
			continue
		}
		if day, nth, ok := strings.Cut(item, "#"); ok {
			if !f.hash {
				return out, bad("# is only allowed in Day-of-week")
			}
			x, err := f.value(day)
			if err != nil {
				return out, bad("%v", err)
			}
			n, err := strconv.Atoi(nth)
			if err != nil || n < 1 || n > 5 {
				return out, bad("the n in <day>#n must be 1-5, got %q", nth)
			}
			out.nth[x] |= 1 << n
			continue
		}
		base, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return out, bad("the increment after / must be a number between 1 and %d, got %q", f.max, stepText)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case base == "*":
		case strings.Contains(base, "-"):
			a, b, _ := strings.Cut(base, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return out, bad("%v", err)
			}
			if hi, err = f.value(b); err != nil {
				return out, bad("%v", err)
			}
			if lo > hi {
				return out, bad("range %s runs backwards", base)
			}
		default:
			var err error
			if lo, err = f.value(base); err != nil {
				return out, bad("%v", err)
			}
			if !hasStep {
				hi = lo
			}
		}
		for x := lo; x <= hi; x += step {
			out.values |= 1 << x
		}
	}
	return out, nil
}

// value parses a number or a name (JAN, MON, ...) of the field.
func (f cronField) value(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < f.min || n > f.max {
			return 0, fmt.Errorf("%d is outside %d-%d", n, f.min, f.max)
		}
		return n, nil
	}
	if i := slices.Index(f.names, strings.ToUpper(s)); i >= 0 {
		return f.min + i, nil
	}
	if len(f.names) > 0 {
		return 0, fmt.Errorf("%q is not a number %d-%d or one of %s", s, f.min, f.max, strings.Join(f.names, ", "))
	}
	return 0, fmt.Errorf("%q is not a number %d-%d", s, f.min, f.max)
}

// checkDuration checks a rotation window length <n>h against the
// schedule and returns n: at least 1 hour, at most 24, not into the next
// window and not into the next UTC day.
func (s Schedule) checkDuration(d string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(d, "h"))
	if err != nil || n < 1 || n > 24 {
		return 0, fmt.Errorf("the rotation window must be between 1h and 24h")
	}
	if s.rateHours > 0 && n > s.rateHours {
		return 0, fmt.Errorf("a %dh window would run into the next one, %d hours later", n, s.rateHours)
	}
	prev := -1
	for h := range 24 {
		if s.hours&(1<<h) == 0 {
			continue
		}
		if prev >= 0 && n > h-prev {
			return 0, fmt.Errorf("a %dh window starting at %02d:00 would run into the next one at %02d:00", n, prev, h)
		}
		prev = h
	}
	if prev >= 0 && prev+n > 24 {
		return 0, fmt.Errorf("a %dh window starting at %02d:00 UTC would run into the next UTC day", n, prev)
	}
	return n, nil
}
