package rotation

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// NewMySQL returns the rotator of MySQL and MariaDB secrets (engine
// "mysql", "mariadb", "aurora-mysql" or "aurora") with the given strategy,
// as AWS's SecretsManagerRDSMySQLRotationSingleUser and MultiUser
// templates (and their MariaDB twins).
func NewMySQL(strategy string) (Rotator, error) {
	return newDBRotator(mysqlEngine{}, strategy)
}

type mysqlEngine struct{}

func (mysqlEngine) name() string { return "MySQL/MariaDB" }
func (mysqlEngine) engines() []string {
	return []string{"mysql", "mariadb", "aurora-mysql", "aurora"}
}
func (mysqlEngine) defaultPort() int  { return 3306 }
func (mysqlEngine) defaultDB() string { return "" }

// maxUser is left to the server, whose limits differ (MySQL 32
// characters, MariaDB 80) and whose refusal says so.
func (mysqlEngine) maxUser() int { return 0 }

func (mysqlEngine) connect(ctx context.Context, s *dbSecret) (dbConn, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = s.Username, s.Password, s.DBName
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	cfg.Timeout = connectTimeout
	// Statements are sent with their parameters quoted by the driver:
	// account management statements cannot all be prepared on the server.
	cfg.InterpolateParams = true
	// TLS when the server offers it, as PostgreSQL's sslmode=prefer:
	// MySQL 8's caching_sha2_password needs a secure channel for a full
	// login.
	cfg.TLSConfig = "preferred"
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("the host, port, username or dbname of the secret is not usable to connect to MySQL: %w", err)
	}
	db := sql.OpenDB(connector)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	// One session: the statements of a step run on one connection.
	c, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("log in to %s at %s as %q: %w", mysqlEngine{}.name(), s.addr(), s.Username, err)
	}
	return &myConn{db: db, c: c}, nil
}

type myConn struct {
	db *sql.DB
	c  *sql.Conn
}

func (m *myConn) ping(ctx context.Context) error {
	var t string
	return m.c.QueryRowContext(ctx, "SELECT NOW()").Scan(&t)
}

func (m *myConn) setOwnPassword(ctx context.Context, password string) error {
	var version string
	if err := m.c.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return err
	}
	// MariaDB lets a user without the CREATE USER privilege change its
	// own password only with SET PASSWORD; MySQL 8 has no PASSWORD()
	// function, and ALTER USER CURRENT_USER() needs no privilege there.
	// Both change the account that logged in, whatever its host.
	q := "ALTER USER CURRENT_USER() IDENTIFIED BY ?"
	if strings.Contains(version, "MariaDB") {
		q = "SET PASSWORD = PASSWORD(?)"
	}
	_, err := m.c.ExecContext(ctx, q, password)
	return err
}

// upsertUser makes the pending user an account of each host the current
// user has one of (AWS's template assumes the host '%'), with the
// current account's grants, replayed from SHOW GRANTS each time so that a
// re-run completes a run that failed half-way.
func (m *myConn) upsertUser(ctx context.Context, current, pending *dbSecret) error {
	hosts, err := m.strings(ctx, "SELECT Host FROM mysql.user WHERE User = ?", current.Username)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		return fmt.Errorf("the current user %q has no account on the server: fix the AWSCURRENT version's username", current.Username)
	}
	for _, host := range hosts {
		have, err := m.strings(ctx, "SELECT Host FROM mysql.user WHERE User = ? AND Host = ?", pending.Username, host)
		if err != nil {
			return err
		}
		if len(have) == 0 {
			if _, err := m.c.ExecContext(ctx, "CREATE USER ?@? IDENTIFIED BY ?", pending.Username, host, pending.Password); err != nil {
				return err
			}
		}
		grants, err := m.strings(ctx, "SHOW GRANTS FOR ?@?", current.Username, host)
		if err != nil {
			return err
		}
		for _, g := range grants {
			stmt, ok := regrant(g, current.Username, host, pending.Username)
			if !ok {
				// The line is not quoted: it may hold a password hash.
				return fmt.Errorf("a grant of %q@%q names a grantee this rotator does not recognise, so it cannot be copied: grant it to %q by hand", current.Username, host, pending.Username)
			}
			// No parameters: the grant is sent as it is, so a '?' in a
			// database name is not taken for one.
			if _, err := m.c.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		if _, err := m.c.ExecContext(ctx, "ALTER USER ?@? IDENTIFIED BY ?", pending.Username, host, pending.Password); err != nil {
			return err
		}
	}
	return nil
}

// strings runs a query whose rows are one string each.
func (m *myConn) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := m.c.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (m *myConn) close() {
	m.c.Close()
	m.db.Close()
}

// regrant turns a line of SHOW GRANTS FOR user@host into the same grant
// to newUser@host. What follows the grantee is dropped but for WITH
// GRANT/ADMIN OPTION: MariaDB appends the account's password hash
// (IDENTIFIED BY PASSWORD), which must not become the new user's.
func regrant(line, user, host, newUser string) (string, bool) {
	grantees := []string{
		myIdent(user) + "@" + myIdent(host), // MariaDB, MySQL 8
		"'" + user + "'@'" + host + "'",     // MySQL 5.7
	}
	for _, g := range grantees {
		// TO for GRANT, FOR for MariaDB's SET DEFAULT ROLE.
		for _, kw := range []string{" TO ", " FOR "} {
			i := strings.LastIndex(line, kw+g)
			if i < 0 {
				continue
			}
			rest := line[i+len(kw)+len(g):]
			stmt := line[:i] + kw + myIdent(newUser) + "@" + myIdent(host)
			for _, opt := range []string{" WITH GRANT OPTION", " WITH ADMIN OPTION"} {
				if strings.Contains(rest, opt) {
					stmt += opt
				}
			}
			return stmt, true
		}
	}
	return "", false
}

// myIdent quotes an identifier or account part with backticks, which
// mean the same in every sql_mode (unlike a ” string, whose backslashes
// depend on NO_BACKSLASH_ESCAPES).
func myIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
