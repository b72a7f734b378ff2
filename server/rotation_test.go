package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// counterRotator is a real rotator, as a Lambda written against the API
// would be: createSecret puts "<current>+1" as AWSPENDING, finishSecret
// moves AWSCURRENT. hold, when set, makes one step block until its
// context ends (a leader killed mid-step); fail makes a step fail.
type counterRotator struct {
	mu    sync.Mutex
	calls []string // "step token" in call order
	hold  map[string]chan struct{}
	fail  map[string]string
}

func newCounterRotator() *counterRotator {
	return &counterRotator{hold: map[string]chan struct{}{}, fail: map[string]string{}}
}

func (c *counterRotator) Step(ctx context.Context, api rotation.API, ev rotation.Event) error {
	c.mu.Lock()
	c.calls = append(c.calls, ev.Step+" "+ev.ClientRequestToken)
	reached, hold := c.hold[ev.Step]
	delete(c.hold, ev.Step)
	failure := c.fail[ev.Step]
	c.mu.Unlock()
	if hold {
		close(reached)
		<-ctx.Done()
		return ctx.Err()
	}
	if failure != "" {
		return errors.New(failure)
	}
	switch ev.Step {
	case rotation.StepCreate:
		var cur struct{ SecretString string }
		if err := api.Call(ctx, "GetSecretValue", map[string]any{"SecretId": ev.SecretID}, &cur); err != nil {
			return err
		}
		err := api.Call(ctx, "GetSecretValue", map[string]any{"SecretId": ev.SecretID, "VersionId": ev.ClientRequestToken, "VersionStage": "AWSPENDING"}, nil)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Code != apierr.ResourceNotFound {
			return err // nil: the pending value is there (a re-run)
		}
		return api.Call(ctx, "PutSecretValue", map[string]any{"SecretId": ev.SecretID, "ClientRequestToken": ev.ClientRequestToken,
			"SecretString": cur.SecretString + "+1", "VersionStages": []string{"AWSPENDING"}}, nil)
	case rotation.StepFinish:
		var d struct{ VersionIdsToStages map[string][]string }
		if err := api.Call(ctx, "DescribeSecret", map[string]any{"SecretId": ev.SecretID}, &d); err != nil {
			return err
		}
		current := ""
		for id, stages := range d.VersionIdsToStages {
			for _, s := range stages {
				if s == "AWSCURRENT" {
					current = id
				}
			}
		}
		if current == ev.ClientRequestToken {
			return nil
		}
		return api.Call(ctx, "UpdateSecretVersionStage", map[string]any{"SecretId": ev.SecretID, "VersionStage": "AWSCURRENT",
			"MoveToVersionId": ev.ClientRequestToken, "RemoveFromVersionId": current}, nil)
	}
	return nil
}

func (c *counterRotator) steps() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// rotationCluster is a 3-node region whose schedulers look for work every
// 50 ms, retry after 200 ms, and build every rotator of type "exec" as
// rot (the rotator under test), the others as the product does.
func rotationCluster(t testing.TB, rot rotation.Rotator, clock func() time.Time) *servertest.Cluster {
	opts := servertest.Options{TuneRotation: func(cfg *rotation.Config) {
		cfg.Tick = 50 * time.Millisecond
		cfg.Retry = func(int) time.Duration { return 200 * time.Millisecond }
		cfg.Build = func(reg *fsm.Rotator) (rotation.Rotator, error) {
			if reg.Type == rotation.TypeExec {
				return rot, nil
			}
			return rotation.Builder{}.Build(reg)
		}
	}}
	if clock != nil {
		opts.TuneRegion = func(rc *region.Config) { rc.Clock = clock }
	}
	c := servertest.New(t, 3, opts)
	c.WaitServing()
	if code, typ, msg := adminCall(t, c.Nodes[1].Endpoint, "/v1/rotators", map[string]any{"name": "counter", "type": "exec",
		"config": map[string]string{"command": "counter"}}, nil, true); code != 200 {
		t.Fatalf("create rotator: %d %s %s", code, typ, msg)
	}
	return c
}

func describe(t *testing.T, c *servertest.Cluster, i int, id string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	d, err := c.Client(i).DescribeSecret(ctxT(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func currentValue(t *testing.T, c *servertest.Cluster, i int, id string) (string, string) {
	t.Helper()
	v, err := c.Client(i).GetSecretValue(ctxT(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(v.SecretString), aws.ToString(v.VersionId)
}

// RotateSecret through the SDK on a follower: the leader runs the four
// steps, the new version is AWSCURRENT alone, the old one AWSPREVIOUS, and
// DescribeSecret shows the schedule, the rotation date and the next one.
func TestRotation_RotateSecretRunsTheSteps(t *testing.T) {
	rot := newCounterRotator()
	c := rotationCluster(t, rot, nil)
	ctx := ctxT(t)
	f := c.Followers()[0]
	if _, err := c.Client(f).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app/db"), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	_, oldVersion := currentValue(t, c, f, "app/db")
	token := "11111111-2222-4333-8444-555555555555"
	out, err := c.Client(f).RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("app/db"), ClientRequestToken: aws.String(token),
		RotationLambdaARN: aws.String("counter"), RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(10 days)")}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.VersionId) != token {
		t.Fatalf("VersionId %q", aws.ToString(out.VersionId))
	}
	c.Eventually(10*time.Second, "the rotation to finish", func() bool {
		d := describe(t, c, f, "app/db")
		return d.LastRotatedDate != nil
	})
	d := describe(t, c, f, "app/db")
	if got := fmt.Sprint(d.VersionIdsToStages); got != fmt.Sprint(map[string][]string{token: {"AWSCURRENT"}, oldVersion: {"AWSPREVIOUS"}}) {
		t.Fatalf("labels %s", got)
	}
	if !aws.ToBool(d.RotationEnabled) || !strings.HasSuffix(aws.ToString(d.RotationLambdaARN), ":function:counter") ||
		aws.ToString(d.RotationRules.ScheduleExpression) != "rate(10 days)" || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 10 {
		t.Fatalf("rotation config %+v %+v", d, d.RotationRules)
	}
	next := aws.ToTime(d.NextRotationDate)
	if want := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 11); !next.Equal(want) {
		t.Fatalf("NextRotationDate %s, want %s (the end of the window 10 days on)", next, want)
	}
	if v, id := currentValue(t, c, f, "app/db"); v != "v+1" || id != token {
		t.Fatalf("current %q %s", v, id)
	}
	if got := strings.Join(rot.steps(), ","); got != "createSecret "+token+",setSecret "+token+",testSecret "+token+",finishSecret "+token {
		t.Fatalf("steps %s", got)
	}
	// Every node answers the same.
	for i := range c.Nodes {
		if v, _ := currentValue(t, c, i, "app/db"); v != "v+1" {
			t.Fatalf("node %d: %q", i, v)
		}
	}
	// The leader's audit log holds the service events and the rotator's
	// calls, as the rotation service (docs/audit.md).
	events := map[string]int{}
	for _, r := range records(t, c.Nodes[c.Leader()].AuditDir) {
		if r.UserIdentity.InvokedBy != "secretsmanager.amazonaws.com" {
			continue
		}
		events[r.EventType+" "+r.EventName]++
		if len(r.Resources) != 1 || r.Resources[0].ARN != aws.ToString(out.ARN) {
			t.Errorf("%s: resources %+v", r.EventName, r.Resources)
		}
		if r.EventType == "AwsServiceEvent" && !strings.Contains(string(r.AdditionalEventData), aws.ToString(out.ARN)) {
			t.Errorf("%s: additionalEventData %s", r.EventName, r.AdditionalEventData)
		}
	}
	if events["AwsServiceEvent RotationStarted"] != 1 || events["AwsServiceEvent RotationSucceeded"] != 1 {
		t.Errorf("rotation service events %v", events)
	}
}

// The leader dies after setSecret, while finishSecret runs: the new
// leader runs finishSecret again and the rotation ends with exactly one
// AWSCURRENT, the new version.
func TestRotation_NewLeaderFinishesTheRotation(t *testing.T) {
	rot := newCounterRotator()
	reached := make(chan struct{})
	rot.hold[rotation.StepFinish] = reached
	c := rotationCluster(t, rot, nil)
	ctx := ctxT(t)
	leader := c.Leader()
	f := c.Followers()[0]
	if _, err := c.Client(f).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("failover"), SecretString: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	token := "aaaaaaaa-2222-4333-8444-555555555555"
	if _, err := c.Client(f).RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("failover"), ClientRequestToken: aws.String(token),
		RotationLambdaARN: aws.String("counter")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("finishSecret never ran; steps %v", rot.steps())
	}
	c.Kill(leader)
	c.Eventually(20*time.Second, "the new leader to finish the rotation", func() bool {
		d, err := c.Client(f).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("failover")})
		return err == nil && d.LastRotatedDate != nil
	})
	d := describe(t, c, f, "failover")
	current := 0
	for id, stages := range d.VersionIdsToStages {
		for _, s := range stages {
			if s == "AWSCURRENT" {
				current++
				if id != token {
					t.Fatalf("AWSCURRENT on %s, want %s", id, token)
				}
			}
		}
	}
	if current != 1 || d.RotationEnabled == nil || *d.RotationEnabled {
		t.Fatalf("labels %v, RotationEnabled %v (a one-off rotation leaves the schedule off)", d.VersionIdsToStages, d.RotationEnabled)
	}
	if v, _ := currentValue(t, c, f, "failover"); v != "a+1" {
		t.Fatalf("value %q", v)
	}
}

// A failing testSecret leaves AWSCURRENT alone and records the failure,
// retrying; CancelRotateSecret stops the schedule and leaves AWSPENDING.
func TestRotation_FailureIsRecordedAndCancelStopsIt(t *testing.T) {
	rot := newCounterRotator()
	rot.fail[rotation.StepTest] = "cannot log in with the pending password"
	c := rotationCluster(t, rot, nil)
	ctx := ctxT(t)
	cl := c.Client(0)
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("flaky"), SecretString: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	_, before := currentValue(t, c, 0, "flaky")
	token := "bbbbbbbb-2222-4333-8444-555555555555"
	if _, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("flaky"), ClientRequestToken: aws.String(token),
		RotationLambdaARN: aws.String("counter"), RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(7)}}); err != nil {
		t.Fatal(err)
	}
	var status struct {
		CofferRotationStatus struct {
			VersionID string `json:"VersionId"`
			Attempts  int
			LastError string
		}
	}
	c.Eventually(10*time.Second, "two failed attempts", func() bool {
		ans := doRaw(t, c.Nodes[0].Endpoint, op("DescribeSecret", map[string]string{"SecretId": "flaky"}))
		return ans.status == 200 && json.Unmarshal(ans.body, &status) == nil && status.CofferRotationStatus.Attempts >= 2
	})
	if st := status.CofferRotationStatus; st.VersionID != token || st.LastError != "testSecret failed: cannot log in with the pending password" {
		t.Fatalf("status %+v", st)
	}
	if v, id := currentValue(t, c, 0, "flaky"); v != "x" || id != before {
		t.Fatalf("current moved: %q %s", v, id)
	}
	// Every node's metrics show the failing rotation.
	for i := range c.Nodes {
		m := scrape(t, c.Nodes[i].Endpoint)
		if m[`coffer_rotation_failing{region="us-east-1"}`] != 1 || m[`coffer_rotation_in_flight{region="us-east-1"}`] != 1 ||
			m[`coffer_rotation_enabled{region="us-east-1"}`] != 1 {
			t.Fatalf("node %d rotation metrics: failing %v in flight %v enabled %v", i, m[`coffer_rotation_failing{region="us-east-1"}`],
				m[`coffer_rotation_in_flight{region="us-east-1"}`], m[`coffer_rotation_enabled{region="us-east-1"}`])
		}
	}
	out, err := cl.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("flaky")})
	if err != nil || aws.ToString(out.VersionId) != token {
		t.Fatalf("cancel: %v %+v", err, out)
	}
	d := describe(t, c, 0, "flaky")
	if aws.ToBool(d.RotationEnabled) || d.NextRotationDate != nil || aws.ToInt64(d.RotationRules.AutomaticallyAfterDays) != 7 {
		t.Fatalf("after cancel: %+v", d)
	}
	if got := fmt.Sprint(d.VersionIdsToStages[token]); got != "[AWSPENDING]" {
		t.Fatalf("pending version labels %s", got)
	}
	n := len(rot.steps())
	time.Sleep(500 * time.Millisecond)
	if len(rot.steps()) != n {
		t.Fatalf("steps ran after the cancel: %v", rot.steps()[n:])
	}
	// A new token is refused while AWSPENDING stays, as AWS does.
	_, err = cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("flaky"), ClientRequestToken: aws.String("cccccccc-2222-4333-8444-555555555555")})
	wantAPIError(t, "new token", err, apierr.InvalidRequest, apierr.MsgRotationInProgress)
}

// The schedule starts a rotation when its window comes: a clock moved
// past the next start makes the leader rotate the secret with a new
// token; RotateImmediately=false rotates nothing before.
func TestRotation_ScheduleStartsTheRotation(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	rot := newCounterRotator()
	c := rotationCluster(t, rot, clock)
	ctx := ctxT(t)
	cl := c.Client(1)
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("sched"), SecretString: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("sched"), ClientRequestToken: aws.String("dddddddd-2222-4333-8444-555555555555"),
		RotationLambdaARN: aws.String("counter"), RotateImmediately: aws.Bool(false),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(4 hours)")}}); err != nil {
		t.Fatal(err)
	}
	d := describe(t, c, 1, "sched")
	next := aws.ToTime(d.NextRotationDate)
	if until := time.Until(next); until <= 0 || until > 5*time.Hour {
		t.Fatalf("NextRotationDate %s", next)
	}
	time.Sleep(300 * time.Millisecond)
	if len(rot.steps()) != 0 || len(d.VersionIdsToStages) != 1 {
		t.Fatalf("rotated before the window: %v %v", rot.steps(), d.VersionIdsToStages)
	}
	// Move every node's clock to the window's end. The API's SigV4 window
	// follows the clock too, so the state is read from the node until
	// the clock is back.
	offset.Store(int64(time.Until(next)))
	c.Eventually(10*time.Second, "the scheduled rotation", func() bool {
		txn, _, err := c.Nodes[1].Region.Read(ctx, true)
		if err != nil {
			return false
		}
		s := c.Nodes[1].Region.Resolve(txn, "sched")
		return s != nil && s.Rotation != nil && s.Rotation.LastRotatedDate != 0
	})
	offset.Store(0)
	if v, _ := currentValue(t, c, 1, "sched"); v != "s+1" {
		t.Fatalf("value %q", v)
	}
	if d2 := describe(t, c, 1, "sched"); !aws.ToTime(d2.NextRotationDate).After(next) {
		t.Fatalf("next rotation %s not after %s", aws.ToTime(d2.NextRotationDate), next)
	}
}

// Bad input: an unknown rotator, a malformed schedule, a rotator type or
// setting that does not exist; nothing is changed.
func TestRotation_BadInput(t *testing.T) {
	c := rotationCluster(t, newCounterRotator(), nil)
	ctx := ctxT(t)
	cl := c.Client(0)
	if _, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bad"), SecretString: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	_, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("bad"), RotationLambdaARN: aws.String("arn:aws:lambda:us-east-1:000000000000:function:nope")})
	wantAPIError(t, "unknown rotator", err, apierr.AccessDenied, apierr.MsgCannotInvoke)
	_, err = cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("bad"), RotationLambdaARN: aws.String("counter"),
		RotationRules: &types.RotationRulesType{ScheduleExpression: aws.String("rate(1 hours)")}})
	if apiCode(err) != apierr.InvalidParameter {
		t.Fatalf("rate(1 hours): %v", err)
	}
	if d := describe(t, c, 0, "bad"); d.RotationEnabled != nil || len(d.VersionIdsToStages) != 1 {
		t.Fatalf("changed: %+v", d)
	}
	for _, tc := range []struct {
		body map[string]any
		msg  string
	}{
		{map[string]any{"name": "x", "type": "lambda"}, "unknown rotator type \"lambda\": use one of postgres, mysql, webhook, exec"},
		{map[string]any{"name": "x", "type": "postgres", "config": map[string]string{"strategy": "many"}}, "strategy \"many\": use single-user or alternating-users"},
		{map[string]any{"name": "x", "type": "exec", "config": map[string]string{"command": "/bin/sh"}}, "command \"/bin/sh\": give the file name of an executable in the servers' rotator directory (--rotator-exec-dir), not a path"},
		{map[string]any{"name": "bad name", "type": "postgres"}, "a rotator name has letters, digits, - and _ only; \"bad name\" has ' '"},
		{map[string]any{"name": "counter", "type": "postgres"}, "A rotator named counter already exists (arn:aws:lambda:us-east-1:000000000000:function:counter)."},
	} {
		if code, _, msg := adminCall(t, c.Nodes[2].Endpoint, "/v1/rotators", tc.body, nil, true); code == 200 || msg != tc.msg {
			t.Errorf("%v: %d %q, want %q", tc.body, code, msg, tc.msg)
		}
	}
	var list struct{ Rotators []server.RotatorInfo }
	if code, _, _ := adminCall(t, c.Nodes[2].Endpoint, "/v1/rotators", nil, &list, true); code != 200 || len(list.Rotators) != 1 {
		t.Fatalf("list: %d %+v", code, list)
	}
}

// A rotation on the primary reaches the replica region: the new version
// and labels, and the rotation's configuration and dates, with the
// rotator named in the replica's region. The replica never rotates: one
// rotation, four steps, all run by the primary.
func TestRotation_ReplicatedToReplicaRegion(t *testing.T) {
	rot := newCounterRotator()
	wan := servertest.NewWAN()
	tune := func(cfg *rotation.Config) {
		cfg.Tick = 50 * time.Millisecond
		cfg.Build = func(*fsm.Rotator) (rotation.Rotator, error) { return rot, nil }
	}
	primary := servertest.New(t, 3, servertest.Options{WAN: wan, TuneRotation: tune})
	replica := servertest.New(t, 3, servertest.Options{WAN: wan, Region: replicaRegion, TuneRotation: tune})
	primary.WaitServing()
	replica.WaitServing()
	for _, c := range []*servertest.Cluster{primary, replica} {
		if code, typ, msg := adminCallIn(t, c.Nodes[0].Endpoint, c.Name, "/v1/rotators", map[string]any{"name": "counter", "type": "exec",
			"config": map[string]string{"command": "counter"}}, nil, true); code != 200 {
			t.Fatalf("create rotator in %s: %d %s %s", c.Name, code, typ, msg)
		}
	}
	ctx := ctxT(t)
	cl := primary.Client(0)
	primary.Eventually(30*time.Second, "the replica region known", func() bool {
		_, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("repl/rot"), SecretString: aws.String("p"),
			AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}})
		return err == nil
	})
	token := "eeeeeeee-2222-4333-8444-555555555555"
	if _, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String("repl/rot"), ClientRequestToken: aws.String(token),
		RotationLambdaARN: aws.String("counter"), RotationRules: &types.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}}); err != nil {
		t.Fatal(err)
	}
	var r *secretsmanager.DescribeSecretOutput
	replica.Eventually(30*time.Second, "the rotation in the replica region", func() bool {
		var err error
		r, err = replica.Client(1).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("repl/rot")})
		return err == nil && r.LastRotatedDate != nil && len(r.VersionIdsToStages[token]) == 1
	})
	p := describe(t, primary, 0, "repl/rot")
	if !aws.ToBool(r.RotationEnabled) || aws.ToString(r.RotationLambdaARN) != "arn:aws:lambda:"+replicaRegion+":000000000000:function:counter" ||
		!aws.ToTime(r.NextRotationDate).Equal(aws.ToTime(p.NextRotationDate)) || !aws.ToTime(r.LastRotatedDate).Equal(aws.ToTime(p.LastRotatedDate)) {
		t.Fatalf("replica rotation: enabled %v rotator %s next %v last %v; primary next %v last %v", r.RotationEnabled, aws.ToString(r.RotationLambdaARN),
			r.NextRotationDate, r.LastRotatedDate, p.NextRotationDate, p.LastRotatedDate)
	}
	sameSecret(t, primary, replica, "repl/rot")
	time.Sleep(300 * time.Millisecond)
	if steps := rot.steps(); len(steps) != 4 {
		t.Fatalf("steps %v: want one rotation's four", steps)
	}
}
