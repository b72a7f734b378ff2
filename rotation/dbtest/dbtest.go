// Package dbtest starts private PostgreSQL and MariaDB servers for the
// rotators' tests: each in a directory of its own, listening on a free
// port of 127.0.0.1 only, with password logins, so that a wrong password
// is refused as it would be in production.
//
// The servers refuse to run as root, and tests (and CI) run as root: they
// then run as the user nobody, which must be able to reach the directory.
package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned when a server's binaries are not on this
// machine; a test skips then (.ci/run installs them).
var ErrNotInstalled = errors.New("not installed")

// Server is a running database server and its superuser.
type Server struct {
	Host     string
	Port     int
	User     string
	Password string
	cmd      *exec.Cmd
	done     chan struct{}
	log      string
	stopSig  syscall.Signal
}

// superPassword is the superuser's password: no quote, backslash or
// space, so it can be passed on a command line and in a file as it is.
const superPassword = "Super-Secret-Test-Password-1"

// startTimeout bounds a server's start, initialization included.
const startTimeout = 60 * time.Second

// Stop stops the server and waits for it.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Log returns the server's log, for a failing test to show.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// postgresBin finds the newest PostgreSQL server binaries: Debian keeps
// each major version in /usr/lib/postgresql/N/bin, outside PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "postgres")) && isExec(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL (postgres and initdb in /usr/lib/postgresql/*/bin or PATH; Debian package postgresql) is %w", ErrNotInstalled)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin"} {
			if p := filepath.Join(d, n); isExec(p) {
				return p
			}
		}
	}
	return ""
}

// runAs is the user the servers run as: nobody when we are root, since
// both refuse root; ourselves otherwise.
func runAs() (uid, gid int, cred *syscall.Credential) {
	if os.Geteuid() != 0 {
		return os.Geteuid(), os.Getegid(), nil
	}
	return 65534, 65534, &syscall.Credential{Uid: 65534, Gid: 65534}
}

// prepare makes dir, owned by the server's user and reachable through
// its parents.
func prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	uid, gid, _ := runAs()
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	// os.MkdirTemp makes 0700 directories: the parents must let the
	// server's user through.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

// freePort returns a port of 127.0.0.1 no one listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command runs as the server's user, and is killed if the test process
// dies without stopping it.
func command(logFile *os.File, name string, args ...string) *exec.Cmd {
	_, _, cred := runAs()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// run runs a setup command to its end.
func run(dir, name string, args ...string) error {
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := command(f, name, args...)
	cmd.Dir = dir
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("%s: %v\n%s", filepath.Base(name), err, b)
	}
	return nil
}

// start starts the server and waits until ready says it serves.
func start(dir string, s *Server, ready func(context.Context) error, name string, args ...string) error {
	s.log = filepath.Join(dir, "server.log")
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	s.cmd = command(f, name, args...)
	s.cmd.Dir = dir
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited at start:\n%s", filepath.Base(name), s.Log())
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := ready(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			s.Stop()
			return fmt.Errorf("%s did not serve within %s: %v\n%s", filepath.Base(name), startTimeout, err, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Postgres initializes a cluster in dir and starts it. Its superuser is
// postgres; every login, over TCP only, needs a password
// (scram-sha-256).
func Postgres(dir string) (*Server, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	if err := prepare(dir); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(superPassword+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := run(dir, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Port: port, User: "postgres", Password: superPassword, stopSig: syscall.SIGINT}
	ready := func(ctx context.Context) error {
		c, err := s.PostgresConnect(ctx, s.User, s.Password, "postgres")
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}
	// No Unix socket: the tests log in over TCP, as a rotator does, and
	// the default socket directory is not ours.
	err = start(dir, s, ready, filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	if err != nil {
		return nil, err
	}
	return s, nil
}

// PostgresConnect logs in to the server as user.
func (s *Server) PostgresConnect(ctx context.Context, user, password, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = s.Host, uint16(s.Port), user, password, db
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// MariaDB initializes a data directory in dir and starts mariadbd on it.
// Its superuser is admin@'%', with every privilege and the grant option;
// root logs in only through the server's socket.
func MariaDB(dir string) (*Server, error) {
	server := lookPath("mariadbd", "mysqld")
	install := lookPath("mariadb-install-db", "mysql_install_db")
	if server == "" || install == "" {
		return nil, fmt.Errorf("MariaDB (mariadbd and mariadb-install-db; Debian package mariadb-server) is %w", ErrNotInstalled)
	}
	if err := prepare(dir); err != nil {
		return nil, err
	}
	_, _, cred := runAs()
	user := []string{}
	if cred != nil {
		user = []string{"--user=nobody"}
	}
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mysqld.sock")
	// --no-defaults: the machine's /etc/mysql configuration is not ours.
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}, user...)
	if err := run(dir, install, args...); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Port: port, User: "admin", Password: superPassword, stopSig: syscall.SIGTERM}
	// Ready once root can log in through the socket; admin is made then.
	ready := func(ctx context.Context) error {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
		db := sql.OpenDB(must(mysql.NewConnector(cfg)))
		defer db.Close()
		return db.PingContext(ctx)
	}
	args = append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + sock, "--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(dir, "error.log"), "--innodb-buffer-pool-size=32M",
		"--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"}, user...)
	if err := start(dir, s, ready, server, args...); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("%v\n%s", err, b)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", sock
	db := sql.OpenDB(must(mysql.NewConnector(cfg)))
	defer db.Close()
	for _, q := range []string{
		"CREATE USER 'admin'@'%' IDENTIFIED BY '" + superPassword + "'",
		"GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION",
	} {
		if _, err := db.Exec(q); err != nil {
			s.Stop()
			return nil, fmt.Errorf("%s: %v", strings.Fields(q)[0], err)
		}
	}
	return s, nil
}

// MySQLOpen returns a pool logged in as user (no database if db is "").
func (s *Server) MySQLOpen(user, password, db string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	cfg.Timeout = 5 * time.Second
	// Tests pass user names and passwords as parameters of account
	// statements, which the server cannot prepare.
	cfg.InterpolateParams = true
	return sql.OpenDB(must(mysql.NewConnector(cfg)))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
