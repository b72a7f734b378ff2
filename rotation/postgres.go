package rotation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// NewPostgres returns the rotator of PostgreSQL secrets (engine
// "postgres" or "aurora-postgresql") with the given strategy, as AWS's
// SecretsManagerRDSPostgreSQLRotationSingleUser and MultiUser templates.
func NewPostgres(strategy string) (Rotator, error) {
	return newDBRotator(postgres{}, strategy)
}

type postgres struct{}

func (postgres) name() string      { return "PostgreSQL" }
func (postgres) engines() []string { return []string{"postgres", "aurora-postgresql"} }
func (postgres) defaultPort() int  { return 5432 }
func (postgres) defaultDB() string { return "postgres" }
func (postgres) maxUser() int      { return 63 } // NAMEDATALEN-1: longer names are truncated

func (postgres) connect(ctx context.Context, s *dbSecret) (dbConn, error) {
	// A connection string rather than a Config: pgx requires a Config
	// made by ParseConfig. Every value is quoted, so no member of the
	// secret can add a setting of its own.
	dsn := strings.Join([]string{
		"host=" + pgConnValue(s.Host),
		"port=" + strconv.Itoa(s.Port),
		"user=" + pgConnValue(s.Username),
		"password=" + pgConnValue(s.Password),
		"dbname=" + pgConnValue(s.DBName),
		"connect_timeout=" + strconv.Itoa(int(connectTimeout.Seconds())),
		"application_name=coffer-rotation",
	}, " ")
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// ParseConfig's errors redact the password, but say nothing
		// more useful than this.
		return nil, fmt.Errorf("the host, port, username or dbname of the secret is not usable to connect to PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// The server's refusal alone, without pgx's list of attempts
		// (sslmode=prefer tries TLS first): the message is shown in
		// DescribeSecret.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			err = pgErr
		}
		return nil, fmt.Errorf("log in to PostgreSQL at %s as %q (database %q): %w", s.addr(), s.Username, s.DBName, err)
	}
	return &pgConn{c: c}, nil
}

type pgConn struct{ c *pgx.Conn }

func (p *pgConn) ping(ctx context.Context) error {
	var t any
	return p.c.QueryRow(ctx, "SELECT now()").Scan(&t)
}

func (p *pgConn) setOwnPassword(ctx context.Context, password string) error {
	// A utility statement takes no parameters: the password is a quoted
	// literal.
	_, err := p.c.Exec(ctx, "ALTER ROLE CURRENT_USER WITH PASSWORD "+pgLiteral(password))
	return err
}

func (p *pgConn) upsertUser(ctx context.Context, current, pending *dbSecret) error {
	var exists bool
	if err := p.c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", pending.Username).Scan(&exists); err != nil {
		return err
	}
	user := pgx.Identifier{pending.Username}.Sanitize()
	if exists {
		// As AWS's template: an existing user keeps its memberships; a
		// GRANT of the current user to it could even make a cycle when
		// the two alternate back.
		_, err := p.c.Exec(ctx, "ALTER ROLE "+user+" WITH LOGIN PASSWORD "+pgLiteral(pending.Password))
		return err
	}
	// One transaction: a role created without the grant would never get
	// it, since a re-run only changes the password of an existing role.
	return pgx.BeginFunc(ctx, p.c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+user+" WITH LOGIN PASSWORD "+pgLiteral(pending.Password)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "GRANT "+pgx.Identifier{current.Username}.Sanitize()+" TO "+user)
		return err
	})
}

func (p *pgConn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	p.c.Close(ctx)
}

// pgLiteral quotes s as a string literal that means s whatever
// standard_conforming_strings is: with a backslash it is an E” string,
// where the backslash must be doubled (as lib/pq's QuoteLiteral).
func pgLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// pgConnValue quotes a value of a keyword/value connection string.
func pgConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
