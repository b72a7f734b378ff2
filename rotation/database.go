package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/apierr"
)

// The strategies of the database rotators, as AWS's rotation templates
// name them (SingleUser, MultiUser).
const (
	// StrategySingleUser changes the password of the secret's own user,
	// logged in as that user: the old password stops working at once.
	StrategySingleUser = "single-user"
	// StrategyAlternatingUsers alternates between two users, user and
	// user_clone, created and updated by the superuser of the secret's
	// masterarn: the previous credentials keep working until the next
	// rotation, so clients that cached them are not cut off.
	StrategyAlternatingUsers = "alternating-users"
)

// Staging labels the database rotators read and move.
const (
	stageCurrent  = "AWSCURRENT"
	stagePending  = "AWSPENDING"
	stagePrevious = "AWSPREVIOUS"
)

// Password generation as AWS's templates do it: 32 characters, without
// the characters that break connection strings and shell quoting (the
// templates' default EXCLUDE_CHARACTERS).
const (
	passwordLength  = 32
	passwordExclude = `/@"'\`
)

// cloneSuffix marks the second user of the alternating-users strategy.
const cloneSuffix = "_clone"

// connectTimeout bounds a login, so a database that does not answer
// fails the step instead of holding the scheduler.
const connectTimeout = 5 * time.Second

// engine is what differs between database systems: which secrets it
// accepts and how it logs in.
type engine interface {
	// name is the system's name in messages.
	name() string
	// engines lists the "engine" values of the secrets it rotates.
	engines() []string
	defaultPort() int
	// defaultDB is the database to log in to when the secret names none.
	defaultDB() string
	// maxUser is the longest user name the system keeps as given (0: no
	// limit checked here).
	maxUser() int
	connect(ctx context.Context, s *dbSecret) (dbConn, error)
}

// dbConn is a session logged in to the database.
type dbConn interface {
	// ping runs a query, to show that the login can work.
	ping(ctx context.Context) error
	// setOwnPassword changes the logged-in user's own password.
	setOwnPassword(ctx context.Context, password string) error
	// upsertUser, logged in as a superuser, creates the pending user with
	// the current user's privileges if it does not exist, and sets its
	// password.
	upsertUser(ctx context.Context, current, pending *dbSecret) error
	close()
}

// dbRotator is a Rotator for one engine and one strategy.
type dbRotator struct {
	eng         engine
	alternating bool
}

func newDBRotator(eng engine, strategy string) (Rotator, error) {
	switch strategy {
	case StrategySingleUser:
		return &dbRotator{eng: eng}, nil
	case StrategyAlternatingUsers:
		return &dbRotator{eng: eng, alternating: true}, nil
	}
	return nil, fmt.Errorf("unknown %s rotation strategy %q: use %q or %q", eng.name(), strategy, StrategySingleUser, StrategyAlternatingUsers)
}

// Step carries out one step, as AWS's database rotation templates do.
func (r *dbRotator) Step(ctx context.Context, api API, ev Event) error {
	if ev.SecretID == "" || ev.ClientRequestToken == "" {
		return errors.New("the rotation event has no SecretId or ClientRequestToken")
	}
	var err error
	switch ev.Step {
	case StepCreate:
		err = r.create(ctx, api, ev)
	case StepSet:
		err = r.set(ctx, api, ev)
	case StepTest:
		err = r.test(ctx, api, ev)
	case StepFinish:
		err = finish(ctx, api, ev)
	default:
		return fmt.Errorf("unknown rotation step %q: the steps are %s", ev.Step, strings.Join(Steps, ", "))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ev.Step, err)
	}
	return nil
}

// create makes the pending version: the current credentials with a new
// password (and, alternating, the other user), unless the token's
// version already has a value.
func (r *dbRotator) create(ctx context.Context, api API, ev Event) error {
	// The current secret is checked first, so a secret this rotator
	// cannot rotate fails here and not after a pending version exists.
	current, err := r.load(ctx, api, ev.SecretID, "", stageCurrent, r.alternating)
	if err != nil {
		return err
	}
	_, err = getValue(ctx, api, ev.SecretID, ev.ClientRequestToken, stagePending)
	if err == nil {
		return nil
	}
	if !apierr.Is(err, apierr.ResourceNotFound) {
		return fmt.Errorf("read the AWSPENDING version %s: %w", ev.ClientRequestToken, err)
	}
	pending := current.clone()
	if r.alternating {
		user := current.Username
		if u, ok := strings.CutSuffix(user, cloneSuffix); ok {
			user = u
		} else {
			user += cloneSuffix
		}
		if max := r.eng.maxUser(); max > 0 && len(user) > max {
			return fmt.Errorf("the user name %q is longer than %s allows (%d bytes): shorten the secret's username so that it fits with the %q suffix", user, r.eng.name(), max, cloneSuffix)
		}
		pending.set("username", user)
	}
	var pw struct{ RandomPassword string }
	in := map[string]any{"PasswordLength": passwordLength, "ExcludeCharacters": passwordExclude}
	if err := api.Call(ctx, "GetRandomPassword", in, &pw); err != nil {
		return fmt.Errorf("generate a password: %w", err)
	}
	pending.set("password", pw.RandomPassword)
	value, err := json.Marshal(pending.raw)
	if err != nil {
		return err
	}
	put := map[string]any{
		"SecretId":           ev.SecretID,
		"ClientRequestToken": ev.ClientRequestToken,
		"SecretString":       string(value),
		"VersionStages":      []string{stagePending},
	}
	if err := api.Call(ctx, "PutSecretValue", put, nil); err != nil {
		return fmt.Errorf("store the AWSPENDING version %s: %w", ev.ClientRequestToken, err)
	}
	return nil
}

// set makes the database accept the pending credentials.
func (r *dbRotator) set(ctx context.Context, api API, ev Event) error {
	pending, err := r.load(ctx, api, ev.SecretID, ev.ClientRequestToken, stagePending, r.alternating)
	if err != nil {
		return err
	}
	// Already set (a re-run): nothing to do. Any failure here only means
	// the work is still to be done.
	if c, err := r.eng.connect(ctx, pending); err == nil {
		c.close()
		return nil
	}
	current, err := r.load(ctx, api, ev.SecretID, "", stageCurrent, r.alternating)
	if err != nil {
		return err
	}
	if r.alternating {
		return r.setAlternating(ctx, api, current, pending)
	}
	// A pending version written by hand must not make this rotator change
	// another user's password or another server's.
	if pending.Username != current.Username {
		return fmt.Errorf("the AWSPENDING version's username %q is not the AWSCURRENT version's %q: the single-user strategy changes only the current user's password; fix the AWSPENDING version", pending.Username, current.Username)
	}
	if pending.Host != current.Host || pending.Port != current.Port {
		return fmt.Errorf("the AWSPENDING version's host %s is not the AWSCURRENT version's %s: fix the AWSPENDING version", pending.addr(), current.addr())
	}
	c, err := r.eng.connect(ctx, current)
	if err != nil {
		// The password may have been changed by an earlier rotation that
		// did not finish: the previous version may still log in.
		prev, perr := r.load(ctx, api, ev.SecretID, "", stagePrevious, false)
		if perr != nil || prev.Username != current.Username || prev.addr() != current.addr() {
			return fmt.Errorf("log in with the AWSCURRENT credentials: %w; the AWSPENDING credentials do not log in either and there is no usable AWSPREVIOUS version: set the user's password on the database to the AWSCURRENT one", err)
		}
		var perr2 error
		if c, perr2 = r.eng.connect(ctx, prev); perr2 != nil {
			return fmt.Errorf("log in with the AWSCURRENT credentials: %w; with the AWSPREVIOUS credentials: %v; the AWSPENDING credentials do not log in either: set the user's password on the database to the AWSCURRENT one", err, perr2)
		}
	}
	defer c.close()
	if err := c.setOwnPassword(ctx, pending.Password); err != nil {
		return fmt.Errorf("change the password of %q on %s: %w", current.Username, current.addr(), err)
	}
	return nil
}

// setAlternating creates or updates the pending user as the superuser of
// the masterarn secret.
func (r *dbRotator) setAlternating(ctx context.Context, api API, current, pending *dbSecret) error {
	if pending.Username == current.Username {
		return fmt.Errorf("the AWSPENDING version's username %q is the AWSCURRENT version's: the alternating-users strategy sets the other user (with or without %q); fix the AWSPENDING version", pending.Username, cloneSuffix)
	}
	master, err := r.load(ctx, api, current.MasterARN, "", stageCurrent, false)
	if err != nil {
		return fmt.Errorf("the master secret (masterarn): %w", err)
	}
	if master.Host != pending.Host || master.Port != pending.Port {
		return fmt.Errorf("the master secret %s is for %s, the AWSPENDING version for %s: masterarn must name a superuser secret of the same database server", current.MasterARN, master.addr(), pending.addr())
	}
	// Never let a rotation of a user change the superuser's password.
	if pending.Username == master.Username || current.Username == master.Username {
		return fmt.Errorf("the secret's user %q is the master secret's user: the alternating-users strategy needs a user of its own, other than the superuser", master.Username)
	}
	c, err := r.eng.connect(ctx, master)
	if err != nil {
		return fmt.Errorf("log in with the master secret %s: %w: fix the master secret", current.MasterARN, err)
	}
	defer c.close()
	if err := c.upsertUser(ctx, current, pending); err != nil {
		return fmt.Errorf("as %q, create or update the user %q like %q on %s: %w", master.Username, pending.Username, current.Username, pending.addr(), err)
	}
	return nil
}

// test logs in with the pending credentials and runs a query.
func (r *dbRotator) test(ctx context.Context, api API, ev Event) error {
	pending, err := r.load(ctx, api, ev.SecretID, ev.ClientRequestToken, stagePending, r.alternating)
	if err != nil {
		return err
	}
	c, err := r.eng.connect(ctx, pending)
	if err != nil {
		return fmt.Errorf("log in with the AWSPENDING credentials: %w: the database does not accept them; check that setSecret succeeded and that the user may log in from here", err)
	}
	defer c.close()
	if err := c.ping(ctx); err != nil {
		return fmt.Errorf("query as %q on %s with the AWSPENDING credentials: %w", pending.Username, pending.addr(), err)
	}
	return nil
}

// finish moves AWSCURRENT to the token's version; the service hands
// AWSPREVIOUS to the version that held it.
func finish(ctx context.Context, api API, ev Event) error {
	var desc struct {
		VersionIdsToStages map[string][]string
	}
	if err := api.Call(ctx, "DescribeSecret", map[string]any{"SecretId": ev.SecretID}, &desc); err != nil {
		return fmt.Errorf("describe the secret: %w", err)
	}
	current := ""
	for id, stages := range desc.VersionIdsToStages {
		for _, s := range stages {
			if s == stageCurrent {
				current = id
			}
		}
	}
	if current == ev.ClientRequestToken {
		return nil
	}
	in := map[string]any{
		"SecretId":        ev.SecretID,
		"VersionStage":    stageCurrent,
		"MoveToVersionId": ev.ClientRequestToken,
	}
	if current != "" {
		in["RemoveFromVersionId"] = current
	}
	if err := api.Call(ctx, "UpdateSecretVersionStage", in, nil); err != nil {
		return fmt.Errorf("move AWSCURRENT to version %s: %w", ev.ClientRequestToken, err)
	}
	return nil
}

// getValue is GetSecretValue's SecretString.
func getValue(ctx context.Context, api API, id, versionID, stage string) (string, error) {
	in := map[string]any{"SecretId": id, "VersionStage": stage}
	if versionID != "" {
		in["VersionId"] = versionID
	}
	var out struct{ SecretString *string }
	if err := api.Call(ctx, "GetSecretValue", in, &out); err != nil {
		return "", err
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("the %s version of %s has no SecretString: a database secret is a JSON string", stage, id)
	}
	return *out.SecretString, nil
}

// load reads and checks one version of a database secret.
func (r *dbRotator) load(ctx context.Context, api API, id, versionID, stage string, needMaster bool) (*dbSecret, error) {
	v, err := getValue(ctx, api, id, versionID, stage)
	if err != nil {
		return nil, fmt.Errorf("read the %s version of %s: %w", stage, id, err)
	}
	s, err := parseSecret(v, r.eng, needMaster)
	if err != nil {
		return nil, fmt.Errorf("the %s version of %s: %w", stage, id, err)
	}
	return s, nil
}

// dbSecret is a database secret's value: AWS's JSON shape
// {"engine","host","port","username","password","dbname","masterarn"}.
// raw keeps every member, so the pending version carries the fields this
// rotator does not know unchanged, as AWS's templates do.
type dbSecret struct {
	raw       map[string]any
	Engine    string
	Host      string
	Port      int
	Username  string
	Password  string
	DBName    string
	MasterARN string
}

// parseSecret checks a secret value for eng. Its errors never quote the
// value: it holds a password.
func parseSecret(value string, eng engine, needMaster bool) (*dbSecret, error) {
	s := &dbSecret{}
	if err := json.Unmarshal([]byte(value), &s.raw); err != nil || s.raw == nil {
		msg := "the value is not a JSON object"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			msg += fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
		}
		return nil, fmt.Errorf("%s: a database secret is JSON with the members engine, host, port, username, password, dbname and, for alternating users, masterarn", msg)
	}
	str := func(key string, required bool) (string, error) {
		v, ok := s.raw[key]
		if !ok || v == nil {
			if required {
				return "", fmt.Errorf("the member %q is missing: add it", key)
			}
			return "", nil
		}
		t, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("the member %q must be a string", key)
		}
		if required && t == "" {
			return "", fmt.Errorf("the member %q is empty: set it", key)
		}
		// A NUL cannot travel in a connection's startup or a statement.
		if strings.ContainsRune(t, 0) {
			return "", fmt.Errorf("the member %q contains a NUL character", key)
		}
		return t, nil
	}
	var err error
	if s.Engine, err = str("engine", true); err != nil {
		return nil, err
	}
	ok := false
	for _, e := range eng.engines() {
		ok = ok || s.Engine == e
	}
	if !ok {
		return nil, fmt.Errorf("the engine %q is not one the %s rotator rotates: set \"engine\" to one of %q, or use the rotator of the secret's database", s.Engine, eng.name(), eng.engines())
	}
	if s.Host, err = str("host", true); err != nil {
		return nil, err
	}
	if s.Username, err = str("username", true); err != nil {
		return nil, err
	}
	if s.Password, err = str("password", true); err != nil {
		return nil, err
	}
	if s.DBName, err = str("dbname", false); err != nil {
		return nil, err
	}
	if s.DBName == "" {
		s.DBName = eng.defaultDB()
	}
	if s.MasterARN, err = str("masterarn", needMaster); err != nil {
		if needMaster {
			return nil, fmt.Errorf("%w: the alternating-users strategy needs the ARN of a superuser secret of the same database", err)
		}
		return nil, err
	}
	s.Port = eng.defaultPort()
	switch p := s.raw["port"].(type) {
	case nil:
	case float64:
		if p != float64(int(p)) {
			return nil, errors.New(`the member "port" must be a whole number`)
		}
		s.Port = int(p)
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf(`the member "port" is %q, not a number`, p)
		}
		s.Port = n
	default:
		return nil, errors.New(`the member "port" must be a number or a string of digits`)
	}
	if s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf(`the member "port" is %d: a port is between 1 and 65535`, s.Port)
	}
	return s, nil
}

// clone copies s, with a raw map of its own.
func (s *dbSecret) clone() *dbSecret {
	c := *s
	c.raw = make(map[string]any, len(s.raw))
	for k, v := range s.raw {
		c.raw[k] = v
	}
	return &c
}

// set changes username or password in both views.
func (s *dbSecret) set(key, value string) {
	s.raw[key] = value
	switch key {
	case "username":
		s.Username = value
	case "password":
		s.Password = value
	}
}

// addr is host:port, for messages.
func (s *dbSecret) addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}
