package server_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/rotation"
	"github.com/cofferhq/coffer/rotation/dbtest"
	"github.com/cofferhq/coffer/server/servertest"
	"github.com/jackc/pgx/v5"
)

// testDB is one database system as the tests use it: its rotator, and
// its superuser's ways to make an application user and to check a login.
type testDB struct {
	kind   string // server kind for server()
	engine string // the secret's "engine"
	srv    *dbtest.Server
	newRot func(string) (rotation.Rotator, error)
	// createUser makes user with password and SELECT on table, a table
	// of its own.
	createUser func(t *testing.T, user, password, table string)
	// login logs in as user and reads table: it fails if the login is
	// refused or the user lacks the privilege.
	login func(ctx context.Context, user, password, table string) error
}

func postgresDB(t *testing.T) *testDB {
	srv := dbServer(t, "postgres")
	d := &testDB{kind: "postgres", engine: "postgres", srv: srv, newRot: rotation.NewPostgres}
	d.createUser = func(t *testing.T, user, password, table string) {
		t.Helper()
		ctx := context.Background()
		c, err := srv.PostgresConnect(ctx, srv.User, srv.Password, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		u, tb := pgx.Identifier{user}.Sanitize(), pgx.Identifier{table}.Sanitize()
		for _, q := range []string{
			"CREATE ROLE " + u + " LOGIN PASSWORD '" + password + "'",
			"CREATE TABLE " + tb + " (n int)",
			"GRANT SELECT ON " + tb + " TO " + u,
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	d.login = func(ctx context.Context, user, password, table string) error {
		c, err := srv.PostgresConnect(ctx, user, password, "postgres")
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	}
	return d
}

func mariaDB(t *testing.T) *testDB {
	srv := dbServer(t, "mariadb")
	d := &testDB{kind: "mariadb", engine: "mariadb", srv: srv, newRot: rotation.NewMySQL}
	d.createUser = func(t *testing.T, user, password, table string) {
		t.Helper()
		db := srv.MySQLOpen(srv.User, srv.Password, "")
		defer db.Close()
		tb := "appdb." + myIdent(table)
		for _, q := range []string{
			"CREATE DATABASE IF NOT EXISTS appdb",
			"CREATE TABLE " + tb + " (n int)",
			"CREATE USER ?@'%' IDENTIFIED BY ?",
			"GRANT SELECT ON " + tb + " TO ?@'%'",
		} {
			var args []any
			switch strings.Count(q, "?") {
			case 1:
				args = []any{user}
			case 2:
				args = []any{user, password}
			}
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	d.login = func(ctx context.Context, user, password, table string) error {
		db := srv.MySQLOpen(user, password, "appdb")
		defer db.Close()
		var n int
		return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+myIdent(table)).Scan(&n)
	}
	return d
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

var databases = []struct {
	name string
	open func(*testing.T) *testDB
}{{"postgres", postgresDB}, {"mariadb", mariaDB}}

// creds is the part of a secret value the tests read back.
type creds struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// secretJSON is a database secret value as AWS's templates read it. The
// port is a number for PostgreSQL and a string for MariaDB: both forms
// are in use.
func (d *testDB) secretJSON(user, password, masterARN string) string {
	v := map[string]any{"engine": d.engine, "host": d.srv.Host, "username": user, "password": password}
	if d.kind == "postgres" {
		v["port"] = d.srv.Port
		v["dbname"] = "postgres"
	} else {
		v["port"] = strconv.Itoa(d.srv.Port)
	}
	if masterARN != "" {
		v["masterarn"] = masterARN
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func createSecret(t *testing.T, api rotation.API, name, value string) string {
	t.Helper()
	var out struct{ ARN string }
	if err := api.Call(context.Background(), "CreateSecret", map[string]any{"Name": name, "SecretString": value, "ClientRequestToken": uuid()}, &out); err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return out.ARN
}

// version reads the version of arn with stage: its id and credentials.
func version(t *testing.T, api rotation.API, arn, stage string) (string, creds) {
	t.Helper()
	var out struct {
		VersionId    string
		SecretString string
	}
	if err := api.Call(context.Background(), "GetSecretValue", map[string]any{"SecretId": arn, "VersionStage": stage}, &out); err != nil {
		t.Fatalf("GetSecretValue %s: %v", stage, err)
	}
	var c creds
	if err := json.Unmarshal([]byte(out.SecretString), &c); err != nil {
		t.Fatal(err)
	}
	return out.VersionId, c
}

// stages is DescribeSecret's VersionIdsToStages.
func stages(t *testing.T, api rotation.API, arn string) map[string][]string {
	t.Helper()
	var out struct{ VersionIdsToStages map[string][]string }
	if err := api.Call(context.Background(), "DescribeSecret", map[string]any{"SecretId": arn}, &out); err != nil {
		t.Fatal(err)
	}
	return out.VersionIdsToStages
}

func hasStage(m map[string][]string, id, stage string) bool {
	for _, s := range m[id] {
		if s == stage {
			return true
		}
	}
	return false
}

func step(ctx context.Context, r rotation.Rotator, api rotation.API, arn, token, name string) error {
	return r.Step(ctx, api, rotation.Event{Step: name, SecretID: arn, ClientRequestToken: token})
}

func TestDatabaseRotation(t *testing.T) {
	c := servertest.New(t, 3)
	api := newAPI(c)
	for _, db := range databases {
		for _, strategy := range []string{rotation.StrategySingleUser, rotation.StrategyAlternatingUsers} {
			t.Run(db.name+"/"+strategy, func(t *testing.T) {
				d := db.open(t)
				testRotation(t, api, d, strategy)
			})
		}
	}
}

func testRotation(t *testing.T, api rotation.API, d *testDB, strategy string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alternating := strategy == rotation.StrategyAlternatingUsers
	// A name that needs quoting everywhere: a quote of each kind, a
	// backtick and a space.
	user, table := "single_"+d.kind, "data_single"
	master := ""
	if alternating {
		user, table = "alt'o\"k` "+d.kind, "data_alt"
		master = createSecret(t, api, "master-"+d.kind+"-"+strategy, d.secretJSON(d.srv.User, d.srv.Password, ""))
	}
	d.createUser(t, user, "Initial-password-1", table)
	arn := createSecret(t, api, "app-"+d.kind+"-"+strategy, d.secretJSON(user, "Initial-password-1", master))
	r, err := d.newRot(strategy)
	if err != nil {
		t.Fatal(err)
	}
	// Two rotations: alternating, the second returns to the first user,
	// which exists already.
	for round := 1; round <= 2; round++ {
		oldID, old := version(t, api, arn, "AWSCURRENT")
		token := uuid()
		for _, s := range rotation.Steps {
			// Each step twice: a retry must be harmless.
			for range 2 {
				if err := step(ctx, r, api, arn, token, s); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		m := stages(t, api, arn)
		if !hasStage(m, token, "AWSCURRENT") || !hasStage(m, oldID, "AWSPREVIOUS") {
			t.Fatalf("round %d: stages %v: want AWSCURRENT on %s, AWSPREVIOUS on %s", round, m, token, oldID)
		}
		_, cur := version(t, api, arn, "AWSCURRENT")
		if cur.Password == old.Password {
			t.Fatalf("round %d: the password did not change", round)
		}
		wantUser := user
		if alternating && round == 1 {
			wantUser = user + "_clone"
		}
		if cur.Username != wantUser {
			t.Fatalf("round %d: AWSCURRENT user %q, want %q", round, cur.Username, wantUser)
		}
		if err := d.login(ctx, cur.Username, cur.Password, table); err != nil {
			t.Fatalf("round %d: the new AWSCURRENT credentials: %v", round, err)
		}
		err := d.login(ctx, old.Username, old.Password, table)
		if alternating && err != nil {
			t.Fatalf("round %d: the AWSPREVIOUS user no longer logs in: %v", round, err)
		}
		if !alternating && err == nil {
			t.Fatalf("round %d: the old password still logs in", round)
		}
		// The whole rotation again, with AWSPENDING still on the token's
		// version: nothing changes.
		for _, s := range rotation.Steps {
			if err := step(ctx, r, api, arn, token, s); err != nil {
				t.Fatalf("round %d, re-run: %v", round, err)
			}
		}
		if id, again := version(t, api, arn, "AWSCURRENT"); id != token || again != cur {
			t.Fatalf("round %d: the re-run changed AWSCURRENT", round)
		}
		if err := d.login(ctx, cur.Username, cur.Password, table); err != nil {
			t.Fatalf("round %d: after the re-run: %v", round, err)
		}
	}
}

// TestDatabaseRotationQuoting rotates to a pending password written by
// hand, full of the characters a quoter must handle.
func TestDatabaseRotationQuoting(t *testing.T) {
	c := servertest.New(t, 3)
	api := newAPI(c)
	const tricky = `it's a "pass\word"; DROP ROLE x; -- ? $1 ` + "`"
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			ctx := context.Background()
			d := db.open(t)
			user, table := "quoting_"+d.kind, "data_quoting"
			d.createUser(t, user, "Initial-password-1", table)
			arn := createSecret(t, api, "quoting-"+d.kind, d.secretJSON(user, "Initial-password-1", ""))
			token := uuid()
			put := map[string]any{"SecretId": arn, "ClientRequestToken": token,
				"SecretString": d.secretJSON(user, tricky, ""), "VersionStages": []string{"AWSPENDING"}}
			if err := api.Call(ctx, "PutSecretValue", put, nil); err != nil {
				t.Fatal(err)
			}
			r, _ := d.newRot(rotation.StrategySingleUser)
			for _, s := range rotation.Steps {
				if err := step(ctx, r, api, arn, token, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.login(ctx, user, tricky, table); err != nil {
				t.Fatalf("the hand-written password does not log in: %v", err)
			}
		})
	}
}

// TestDatabaseRotationErrors: what a step refuses, and that its message
// says what to fix without a password in it.
func TestDatabaseRotationErrors(t *testing.T) {
	c := servertest.New(t, 3)
	api := newAPI(c)
	ctx := context.Background()

	t.Run("strategy", func(t *testing.T) {
		if _, err := rotation.NewPostgres("round-robin"); err == nil || !strings.Contains(err.Error(), rotation.StrategySingleUser) {
			t.Fatalf("NewPostgres(round-robin): %v", err)
		}
		if _, err := rotation.NewMySQL(""); err == nil {
			t.Fatal("NewMySQL(\"\"): no error")
		}
	})

	const pw = "Secret-Value-That-Must-Not-Leak"
	bad := []struct {
		name, value, want string
		strategy          string
	}{
		{"no password", `{"engine":"postgres","host":"127.0.0.1","username":"u"}`, `"password" is missing`, rotation.StrategySingleUser},
		{"no host", `{"engine":"postgres","username":"u","password":"` + pw + `"}`, `"host" is missing`, rotation.StrategySingleUser},
		{"empty host", `{"engine":"postgres","host":"","username":"u","password":"` + pw + `"}`, `"host" is empty`, rotation.StrategySingleUser},
		{"other engine", `{"engine":"mysql","host":"h","username":"u","password":"` + pw + `"}`, `engine "mysql"`, rotation.StrategySingleUser},
		{"bad port", `{"engine":"postgres","host":"h","port":"54x","username":"u","password":"` + pw + `"}`, `"port"`, rotation.StrategySingleUser},
		{"no masterarn", `{"engine":"postgres","host":"h","username":"u","password":"` + pw + `"}`, `"masterarn" is missing`, rotation.StrategyAlternatingUsers},
		{"not JSON", `password=` + pw, `not a JSON object`, rotation.StrategySingleUser},
	}
	for i, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			arn := createSecret(t, api, "bad-"+strconv.Itoa(i), b.value)
			r, _ := rotation.NewPostgres(b.strategy)
			err := step(ctx, r, api, arn, uuid(), rotation.StepCreate)
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("createSecret: %v, want an error with %s", err, b.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if len(stages(t, api, arn)) != 1 {
				t.Fatal("a pending version was made of a bad secret")
			}
		})
	}

	// A refused login in testSecret (setSecret did not run): the error
	// says so, and AWSCURRENT stays.
	for _, db := range databases {
		t.Run("refused login/"+db.name, func(t *testing.T) {
			d := db.open(t)
			user, table := "refused_"+d.kind, "data_refused"
			d.createUser(t, user, "Initial-password-1", table)
			arn := createSecret(t, api, "refused-"+d.kind, d.secretJSON(user, "Initial-password-1", ""))
			curID, _ := version(t, api, arn, "AWSCURRENT")
			r, _ := d.newRot(rotation.StrategySingleUser)
			token := uuid()
			if err := step(ctx, r, api, arn, token, rotation.StepCreate); err != nil {
				t.Fatal(err)
			}
			err := step(ctx, r, api, arn, token, rotation.StepTest)
			if err == nil || !strings.Contains(err.Error(), "AWSPENDING") {
				t.Fatalf("testSecret: %v, want a refused login with the AWSPENDING credentials", err)
			}
			t.Logf("testSecret: %v", err)
			var pending struct{ SecretString string }
			if err := api.Call(ctx, "GetSecretValue", map[string]any{"SecretId": arn, "VersionId": token}, &pending); err != nil {
				t.Fatal(err)
			}
			var p creds
			json.Unmarshal([]byte(pending.SecretString), &p)
			if p.Password == "" || strings.Contains(err.Error(), p.Password) || strings.Contains(err.Error(), "Initial-password-1") {
				t.Fatalf("the error shows a password: %v", err)
			}
			if id, _ := version(t, api, arn, "AWSCURRENT"); id != curID {
				t.Fatalf("AWSCURRENT moved to %s", id)
			}
			if err := d.login(ctx, user, "Initial-password-1", table); err != nil {
				t.Fatalf("the current password no longer logs in: %v", err)
			}
		})
	}
}

// TestDatabaseRotationSingleUserFallback: setSecret logs in with
// AWSPREVIOUS when AWSCURRENT no longer matches the database, as AWS's
// template does, and says what to fix when nothing logs in.
func TestDatabaseRotationSingleUserFallback(t *testing.T) {
	c := servertest.New(t, 3)
	api := newAPI(c)
	ctx := context.Background()
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			d := db.open(t)
			user, table := "fallback_"+d.kind, "data_fallback"
			d.createUser(t, user, "Database-password-1", table)
			arn := createSecret(t, api, "fallback-"+d.kind, d.secretJSON(user, "Database-password-1", ""))
			// AWSCURRENT changed by hand, the database not: the old
			// version, now AWSPREVIOUS, still logs in.
			put := map[string]any{"SecretId": arn, "ClientRequestToken": uuid(), "SecretString": d.secretJSON(user, "Never-set-password-2", "")}
			if err := api.Call(ctx, "PutSecretValue", put, nil); err != nil {
				t.Fatal(err)
			}
			r, _ := d.newRot(rotation.StrategySingleUser)
			token := uuid()
			for _, s := range rotation.Steps {
				if err := step(ctx, r, api, arn, token, s); err != nil {
					t.Fatal(err)
				}
			}
			_, cur := version(t, api, arn, "AWSCURRENT")
			if err := d.login(ctx, user, cur.Password, table); err != nil {
				t.Fatalf("the rotated password: %v", err)
			}

			// Neither AWSPENDING, AWSCURRENT nor AWSPREVIOUS logs in.
			for _, p := range []string{"Never-set-password-3", "Never-set-password-4"} {
				put = map[string]any{"SecretId": arn, "ClientRequestToken": uuid(), "SecretString": d.secretJSON(user, p, "")}
				if err := api.Call(ctx, "PutSecretValue", put, nil); err != nil {
					t.Fatal(err)
				}
			}
			token = uuid()
			if err := step(ctx, r, api, arn, token, rotation.StepCreate); err != nil {
				t.Fatal(err)
			}
			err := step(ctx, r, api, arn, token, rotation.StepSet)
			if err == nil || !strings.Contains(err.Error(), "set the user's password on the database to the AWSCURRENT one") {
				t.Fatalf("setSecret: %v, want the refused logins and what to fix", err)
			}
			t.Logf("setSecret: %v", err)
			for _, p := range []string{"Never-set-password-4", "Never-set-password-3", "Never-set-password-2", cur.Password} {
				if strings.Contains(err.Error(), p) {
					t.Fatalf("the error shows a password: %v", err)
				}
			}
		})
	}
}

// TestDatabaseRotationBadMaster: alternating users, with a master secret
// whose password the database refuses: setSecret says to fix it.
func TestDatabaseRotationBadMaster(t *testing.T) {
	c := servertest.New(t, 3)
	api := newAPI(c)
	ctx := context.Background()
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			d := db.open(t)
			user, table := "badmaster_"+d.kind, "data_badmaster"
			d.createUser(t, user, "Initial-password-1", table)
			master := createSecret(t, api, "badmaster-master-"+d.kind, d.secretJSON(d.srv.User, "Wrong-master-password", ""))
			arn := createSecret(t, api, "badmaster-"+d.kind, d.secretJSON(user, "Initial-password-1", master))
			r, _ := d.newRot(rotation.StrategyAlternatingUsers)
			token := uuid()
			if err := step(ctx, r, api, arn, token, rotation.StepCreate); err != nil {
				t.Fatal(err)
			}
			err := step(ctx, r, api, arn, token, rotation.StepSet)
			if err == nil || !strings.Contains(err.Error(), "fix the master secret") {
				t.Fatalf("setSecret: %v, want the master's refused login", err)
			}
			if strings.Contains(err.Error(), "Wrong-master-password") || strings.Contains(err.Error(), "Initial-password-1") {
				t.Fatalf("the error shows a password: %v", err)
			}
			if err := d.login(ctx, user, "Initial-password-1", table); err != nil {
				t.Fatalf("the current user no longer logs in: %v", err)
			}
		})
	}
}
