package server

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
)

func init() {
	register("RotateSecret", rotateSecret)
	register("CancelRotateSecret", cancelRotateSecret)
}

// RotateSecret and CancelRotateSecret (shared/spec §4.12, §4.13, §5.2).
//
// Coffer has no rotation engine yet. Both operations check a request
// exactly as they will once rotation exists: model constraints, the
// stateless rules (token present, one schedule kind, a schedule that
// parses and respects the 4-hour minimum, a window that fits), the secret
// resolved and its state rules. A request that passes everything is then
// refused with an InvalidRequestException that says rotation is not
// available yet. Nothing is recorded: recording the configuration while
// refusing the rotation would leave the request half-applied, and
// answering with success would be a fake one.

type rotationRulesJSON struct {
	AutomaticallyAfterDays *int64  `json:"AutomaticallyAfterDays"`
	Duration               *string `json:"Duration"`
	ScheduleExpression     *string `json:"ScheduleExpression"`
}

type externalMetadataJSON struct {
	Key   *string `json:"Key"`
	Value *string `json:"Value"`
}

// Model patterns of RotationRulesType (shared/spec §2.2).
const (
	durationPattern           = `^[0-9]+h$`
	scheduleExpressionPattern = `^[0-9A-Za-z\(\)#\?\*\-\/, ]+$`
)

var (
	validDuration           = regexp.MustCompile(durationPattern)
	validScheduleExpression = regexp.MustCompile(scheduleExpressionPattern)
)

func rotateSecret(ctx context.Context, r Region, req *request) (any, error) {
	var in struct {
		SecretID                       *string                `json:"SecretId"`
		ClientRequestToken             *string                `json:"ClientRequestToken"`
		RotationLambdaARN              *string                `json:"RotationLambdaARN"`
		RotationRules                  *rotationRulesJSON     `json:"RotationRules"`
		RotateImmediately              *bool                  `json:"RotateImmediately"`
		ExternalSecretRotationMetadata []externalMetadataJSON `json:"ExternalSecretRotationMetadata"`
		ExternalSecretRotationRoleArn  *string                `json:"ExternalSecretRotationRoleArn"`
	}
	if err := decode(req.body, &in); err != nil {
		return nil, err
	}
	var v validator
	requireSecretID(&v, in.SecretID)
	v.length(in.ClientRequestToken, "clientRequestToken", 32, 64)
	v.length(in.RotationLambdaARN, "rotationLambdaARN", 0, 2048)
	if rr := in.RotationRules; rr != nil {
		v.intRange(rr.AutomaticallyAfterDays, "rotationRules.automaticallyAfterDays", 1, 1000)
		v.length(rr.Duration, "rotationRules.duration", 2, 3)
		if rr.Duration != nil && !validDuration.MatchString(*rr.Duration) {
			v.add(rr.Duration, "rotationRules.duration", "Member must satisfy regular expression pattern: "+durationPattern)
		}
		v.length(rr.ScheduleExpression, "rotationRules.scheduleExpression", 1, 256)
		if rr.ScheduleExpression != nil && *rr.ScheduleExpression != "" && !validScheduleExpression.MatchString(*rr.ScheduleExpression) {
			v.add(rr.ScheduleExpression, "rotationRules.scheduleExpression", "Member must satisfy regular expression pattern: "+scheduleExpressionPattern)
		}
	}
	for i, m := range in.ExternalSecretRotationMetadata {
		path := "externalSecretRotationMetadata." + itoa(i+1) + ".member"
		v.length(m.Key, path+".key", 1, 256)
		v.length(m.Value, path+".value", 1, 2048)
	}
	v.length(in.ExternalSecretRotationRoleArn, "externalSecretRotationRoleArn", 20, 2048)
	if err := v.err(); err != nil {
		return nil, err
	}
	// Stateless rules.
	if in.ClientRequestToken == nil {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgTokenMissing)
	}
	if in.RotationRules != nil {
		if err := validateRotationRules(in.RotationRules); err != nil {
			return nil, err
		}
	}
	// Resolve; refused while scheduled for deletion. (No secret is a
	// replica yet, so the replica rule cannot apply.)
	s, err := readSecret(ctx, r, req, *in.SecretID)
	if err != nil {
		return nil, err
	}
	// No rotator given and none stored (none can be stored yet).
	if in.RotationLambdaARN == nil || *in.RotationLambdaARN == "" {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgNoRotationFunction)
	}
	// AWSPENDING on a version other than AWSCURRENT (and other than this
	// request's token) is a rotation in progress, e.g. a manual one.
	if p := s.Staged(fsm.StagePending); p != nil && !slices.Contains(p.Stages, fsm.StageCurrent) && p.VersionID != *in.ClientRequestToken {
		return nil, apierr.New(apierr.InvalidRequest, apierr.MsgRotationInProgress)
	}
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgRotateNotYet)
}

func cancelRotateSecret(ctx context.Context, r Region, req *request) (any, error) {
	id, err := decodeSecretIDOnly(req)
	if err != nil {
		return nil, err
	}
	if _, err := readSecret(ctx, r, req, id); err != nil {
		return nil, err
	}
	// Never configured → InvalidRequestException (spec §4.13). Once
	// rotation exists, a configured secret gets its rotation cancelled here.
	return nil, apierr.New(apierr.InvalidRequest, apierr.MsgCancelRotateNothing)
}

// validateRotationRules applies the stateless rules of shared/spec §5.2
// to RotationRules that already met the model constraints.
func validateRotationRules(rr *rotationRulesJSON) error {
	if rr.AutomaticallyAfterDays != nil && rr.ScheduleExpression != nil {
		return apierr.New(apierr.InvalidParameter, "RotationRules can have AutomaticallyAfterDays or ScheduleExpression, not both.")
	}
	if rr.AutomaticallyAfterDays == nil && rr.ScheduleExpression == nil {
		return apierr.New(apierr.InvalidParameter, "RotationRules needs a schedule: AutomaticallyAfterDays (1-1000) or ScheduleExpression (rate(...) or cron(...)).")
	}
	// A day-based schedule: one window a day, starting at 00:00 UTC.
	sched := schedule{starts: []int{0}}
	if rr.ScheduleExpression != nil {
		var err error
		if sched, err = parseSchedule(*rr.ScheduleExpression); err != nil {
			return apierr.Newf(apierr.InvalidParameter, "Invalid ScheduleExpression %q: %v", *rr.ScheduleExpression, err)
		}
	}
	if rr.Duration != nil {
		if err := sched.checkDuration(*rr.Duration); err != nil {
			return apierr.Newf(apierr.InvalidParameter, "Invalid Duration %q: %v", *rr.Duration, err)
		}
	}
	return nil
}

// schedule is what the window checks need to know of a schedule: the hours
// (UTC) at which its windows start on a day it runs, and, for rate(n
// hours), the interval.
type schedule struct {
	starts    []int // sorted
	rateHours int   // rate(n hours): n; 0 otherwise
}

// minRotationHours is the shortest time between two rotations (spec §5.2).
const minRotationHours = 4

const scheduleSyntax = "a ScheduleExpression is rate(<n> hours), rate(<n> days) or cron(Minutes Hours Day-of-month Month Day-of-week Year), e.g. rate(10 days) or cron(0 4 ? * MON *)"

var rateExpr = regexp.MustCompile(`^rate\(\s*([0-9]+)\s+(hour|hours|day|days)\s*\)$`)

func parseSchedule(expr string) (schedule, error) {
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		m := rateExpr.FindStringSubmatch(expr)
		if m == nil {
			return schedule{}, fmt.Errorf("a rate expression is rate(<n> hours) or rate(<n> days), e.g. rate(12 hours) or rate(10 days)")
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			return schedule{}, fmt.Errorf("%s is not a number", m[1])
		}
		if strings.HasPrefix(m[2], "day") {
			if n < 1 || n > 1000 {
				return schedule{}, fmt.Errorf("rate(n days) needs n between 1 and 1000, got %d", n)
			}
			return schedule{starts: []int{0}}, nil
		}
		if n < minRotationHours || n > 1000*24 {
			return schedule{}, fmt.Errorf("rate(n hours) needs n between %d and %d: rotations are at least %d hours apart, got %d", minRotationHours, 1000*24, minRotationHours, n)
		}
		starts := []int{}
		for h := 0; h < 24; h += n {
			starts = append(starts, h)
		}
		return schedule{starts: starts, rateHours: n}, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		return parseCron(expr[len("cron(") : len(expr)-1])
	}
	return schedule{}, fmt.Errorf("%s", scheduleSyntax)
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

func parseCron(body string) (schedule, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return schedule{}, fmt.Errorf("a cron expression has 6 fields, cron(Minutes Hours Day-of-month Month Day-of-week Year), this one has %d; e.g. cron(0 4 ? * MON *)", len(f))
	}
	if f[0] != "0" {
		return schedule{}, fmt.Errorf("Minutes must be 0 (rotation windows start on the hour), got %q", f[0])
	}
	if f[5] != "*" {
		return schedule{}, fmt.Errorf("Year must be *, got %q", f[5])
	}
	hours, err := cronHours.values(f[1])
	if err != nil {
		return schedule{}, err
	}
	for _, fd := range []struct {
		field cronField
		text  string
	}{{cronDayOfMonth, f[2]}, {cronMonth, f[3]}, {cronDayOfWeek, f[4]}} {
		if _, err := fd.field.values(fd.text); err != nil {
			return schedule{}, err
		}
	}
	if (f[2] == "?") == (f[4] == "?") {
		return schedule{}, fmt.Errorf("exactly one of Day-of-month and Day-of-week must be ?, e.g. cron(0 4 ? * MON *) or cron(0 4 1 * ? *)")
	}
	starts := make([]int, 0, len(hours))
	for h := range hours {
		starts = append(starts, h)
	}
	slices.Sort(starts)
	for i := 1; i < len(starts); i++ {
		if gap := starts[i] - starts[i-1]; gap < minRotationHours {
			return schedule{}, fmt.Errorf("windows at %02d:00 and %02d:00 are %d hours apart; rotations must be at least %d hours apart", starts[i-1], starts[i], gap, minRotationHours)
		}
	}
	// Every day: the last window of a day and the first of the next.
	everyDay := (f[2] == "*" || f[2] == "?") && (f[4] == "*" || f[4] == "?") && f[3] == "*"
	if everyDay && len(starts) > 1 {
		if gap := 24 - starts[len(starts)-1] + starts[0]; gap < minRotationHours {
			return schedule{}, fmt.Errorf("the window at %02d:00 and the next day's at %02d:00 are %d hours apart; rotations must be at least %d hours apart", starts[len(starts)-1], starts[0], gap, minRotationHours)
		}
	}
	return schedule{starts: starts}, nil
}

// values parses one field and returns the values it selects; a day field
// that is ?, or uses L or #, selects no hours and returns what it can.
func (f cronField) values(text string) (map[int]bool, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s field %q: %s", f.name, text, fmt.Sprintf(format, args...))
	}
	if text == "?" {
		if !f.question {
			return nil, bad("? is only allowed in Day-of-month and Day-of-week")
		}
		return map[int]bool{}, nil
	}
	out := map[int]bool{}
	for item := range strings.SplitSeq(text, ",") {
		if item == "" {
			return nil, bad("empty list item")
		}
		if strings.Contains(item, "?") {
			return nil, bad("? must stand alone")
		}
		if item == "L" || (strings.HasSuffix(item, "L") && len(item) > 1) {
			if !f.last {
				return nil, bad("L is only allowed in Day-of-month and Day-of-week")
			}
			if item != "L" {
				if _, err := f.value(strings.TrimSuffix(item, "L")); err != nil {
					return nil, bad("%v", err)
				}
			}
			continue
		}
		if day, nth, ok := strings.Cut(item, "#"); ok {
			if !f.hash {
				return nil, bad("# is only allowed in Day-of-week")
			}
			if _, err := f.value(day); err != nil {
				return nil, bad("%v", err)
			}
			if n, err := strconv.Atoi(nth); err != nil || n < 1 || n > 5 {
				return nil, bad("the n in <day>#n must be 1-5, got %q", nth)
			}
			continue
		}
		base, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return nil, bad("the increment after / must be a number between 1 and %d, got %q", f.max, stepText)
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
				return nil, bad("%v", err)
			}
			if hi, err = f.value(b); err != nil {
				return nil, bad("%v", err)
			}
			if lo > hi {
				return nil, bad("range %s runs backwards", base)
			}
		default:
			var err error
			if lo, err = f.value(base); err != nil {
				return nil, bad("%v", err)
			}
			if !hasStep {
				hi = lo
			}
		}
		for x := lo; x <= hi; x += step {
			out[x] = true
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
// schedule: at least 1 hour, at most 24, not into the next window and not
// into the next UTC day.
func (s schedule) checkDuration(d string) error {
	n, err := strconv.Atoi(strings.TrimSuffix(d, "h"))
	if err != nil || n < 1 || n > 24 {
		return fmt.Errorf("the rotation window must be between 1h and 24h")
	}
	if s.rateHours > 0 && n > s.rateHours {
		return fmt.Errorf("a %dh window would run into the next one, %d hours later", n, s.rateHours)
	}
	for i := 1; i < len(s.starts); i++ {
		if gap := s.starts[i] - s.starts[i-1]; n > gap {
			return fmt.Errorf("a %dh window starting at %02d:00 would run into the next one at %02d:00", n, s.starts[i-1], s.starts[i])
		}
	}
	if len(s.starts) > 0 {
		if last := s.starts[len(s.starts)-1]; last+n > 24 {
			return fmt.Errorf("a %dh window starting at %02d:00 UTC would run into the next UTC day", n, last)
		}
	}
	return nil
}
