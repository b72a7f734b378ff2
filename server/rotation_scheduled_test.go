package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/server/servertest"
)

// The whole path, as a user drives it: rotators registered with the admin
// API, RotateSecret through the API, the leader's scheduler running the
// four steps against a real database, on a 3-node region.

// registerRotator registers a rotator through the admin API (what
// `coffer rotator create` sends).
func registerRotator(t *testing.T, c *servertest.Cluster, name, typ string, config map[string]string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "type": typ, "config": config})
	req, _ := http.NewRequest(http.MethodPost, c.Nodes[1].Endpoint+"/v1/rotators", bytes.NewReader(body))
	acl.Sign(req, body, servertest.Credentials.AccessKeyID, servertest.Credentials.SecretAccessKey, servertest.Region, "coffer", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register rotator %s: HTTP %d", name, resp.StatusCode)
	}
}

// waitRotated waits for the rotation with token to finish.
func waitRotated(t *testing.T, api rotation.API, arn, token string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var d struct {
			LastRotatedDate      *float64
			VersionIdsToStages   map[string][]string
			CofferRotationStatus *struct{ LastError string }
		}
		if err := api.Call(context.Background(), "DescribeSecret", map[string]any{"SecretId": arn}, &d); err == nil &&
			d.LastRotatedDate != nil && hasStage(d.VersionIdsToStages, token, "AWSCURRENT") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation %s of %s did not finish: %+v", token, arn, d.CofferRotationStatus)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestScheduledDatabaseRotation(t *testing.T) {
	c := servertest.New(t, 3, servertest.Options{TuneRotation: func(cfg *rotation.Config) {
		cfg.Tick = 50 * time.Millisecond
		cfg.Retry = func(int) time.Duration { return time.Second }
	}})
	api := newAPI(c)
	for _, db := range databases {
		for _, strategy := range []string{rotation.StrategySingleUser, rotation.StrategyAlternatingUsers} {
			t.Run(db.name+"/"+strategy, func(t *testing.T) {
				d := db.open(t)
				// Names of their own per run: the databases live as long as
				// the test binary (-count=N runs this again).
				run := strings.ReplaceAll(uuid()[:8], "-", "")
				name, typ := "sched-"+d.kind+"-"+strategy+"-"+run, rotation.TypePostgres
				if d.kind == "mariadb" {
					typ = rotation.TypeMySQL // MySQL and MariaDB alike
				}
				registerRotator(t, c, name, typ, map[string]string{"strategy": strategy})
				user, table, master := "sched_"+d.kind+"_"+strategy[:3]+"_"+run, "sched_"+strategy[:3]+"_"+run, ""
				if strategy == rotation.StrategyAlternatingUsers {
					master = createSecret(t, api, "sched-master-"+d.kind+"-"+run, d.secretJSON(d.srv.User, d.srv.Password, ""))
				}
				d.createUser(t, user, "Initial-password-1", table)
				arn := createSecret(t, api, "sched-app-"+d.kind+"-"+strategy+"-"+run, d.secretJSON(user, "Initial-password-1", master))
				oldID, old := version(t, api, arn, "AWSCURRENT")
				token := uuid()
				began := time.Now()
				if err := api.Call(context.Background(), "RotateSecret", map[string]any{"SecretId": arn, "ClientRequestToken": token,
					"RotationLambdaARN": name, "RotationRules": map[string]any{"AutomaticallyAfterDays": 30}}, nil); err != nil {
					t.Fatal(err)
				}
				waitRotated(t, api, arn, token)
				// Measured, not asserted (docs/performance.md).
				t.Logf("%s %s: RotateSecret to finished in %s", d.kind, strategy, time.Since(began).Round(time.Millisecond))
				m := stages(t, api, arn)
				if len(m) != 2 || !hasStage(m, oldID, "AWSPREVIOUS") || len(m[token]) != 1 {
					t.Fatalf("stages %v", m)
				}
				_, cur := version(t, api, arn, "AWSCURRENT")
				ctx := context.Background()
				if err := d.login(ctx, cur.Username, cur.Password, table); err != nil {
					t.Fatalf("the new credentials: %v", err)
				}
				err := d.login(ctx, old.Username, old.Password, table)
				if strategy == rotation.StrategyAlternatingUsers && err != nil {
					t.Fatalf("the previous user no longer logs in: %v", err)
				}
				if strategy == rotation.StrategySingleUser && err == nil {
					t.Fatal("the old password still logs in")
				}
			})
		}
	}
}

// holdFinish wraps a rotator: the first finishSecret of all blocks
// until its context ends (the leader running it is killed) and closes
// reached.
type holdFinish struct {
	rotation.Rotator
	once    *sync.Once
	reached chan struct{}
}

func (h *holdFinish) Step(ctx context.Context, api rotation.API, ev rotation.Event) error {
	held := false
	if ev.Step == rotation.StepFinish {
		h.once.Do(func() { held = true })
	}
	if held {
		close(h.reached)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Rotator.Step(ctx, api, ev)
}

// The leader is killed between setSecret and finishSecret of a
// PostgreSQL rotation: the new leader finishes it, exactly one new
// AWSCURRENT version exists, and the database accepts it.
func TestScheduledRotationSurvivesLeaderKill(t *testing.T) {
	once, reached := &sync.Once{}, make(chan struct{})
	c := servertest.New(t, 3, servertest.Options{TuneRotation: func(cfg *rotation.Config) {
		cfg.Tick = 50 * time.Millisecond
		cfg.Build = func(reg *fsm.Rotator) (rotation.Rotator, error) {
			r, err := rotation.Builder{}.Build(reg)
			if err != nil {
				return nil, err
			}
			return &holdFinish{Rotator: r, once: once, reached: reached}, nil
		}
	}})
	d := postgresDB(t)
	registerRotator(t, c, "pg-kill", "postgres", nil)
	d.createUser(t, "kill_user", "Initial-password-1", "kill_data")
	leader := c.Leader()
	api := newAPI(c)
	if leader == 0 {
		api.endpoint = c.Nodes[1].Endpoint
	}
	arn := createSecret(t, api, "kill-app", d.secretJSON("kill_user", "Initial-password-1", ""))
	token := uuid()
	if err := api.Call(context.Background(), "RotateSecret", map[string]any{"SecretId": arn, "ClientRequestToken": token, "RotationLambdaARN": "pg-kill"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("finishSecret never ran")
	}
	c.Kill(leader)
	waitRotated(t, api, arn, token)
	current := 0
	for _, labels := range stages(t, api, arn) {
		for _, l := range labels {
			if l == "AWSCURRENT" {
				current++
			}
		}
	}
	if current != 1 {
		t.Fatalf("%d AWSCURRENT versions", current)
	}
	_, cur := version(t, api, arn, "AWSCURRENT")
	if err := d.login(context.Background(), cur.Username, cur.Password, "kill_data"); err != nil {
		t.Fatalf("the database refuses the new AWSCURRENT: %v", err)
	}
}
