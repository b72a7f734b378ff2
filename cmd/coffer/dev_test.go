package main

// End-to-end tests of `coffer dev` as a test-suite target: several regions
// on one endpoint, a chosen account id, fixed credentials, and the reset
// endpoint, all through the built binary and the AWS SDK.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server/servertest"
)

// devBannerField matches the "  Name:   value" lines of the dev banner.
var devBannerField = regexp.MustCompile(`(?m)^  (Region|Regions|Account|Endpoint|Credentials|Data directory):\s+(.+?)\s*$`)

// devServer is one running `coffer dev` and what its banner said.
type devServer struct {
	*proc
	endpoint string
	creds    region.Credentials
	fields   map[string]string
}

// startDev runs `coffer dev` with args (plus a fresh --api-addr) and env,
// and waits for the banner; the process is killed when the test ends.
func startDev(t *testing.T, args []string, env ...string) *devServer {
	t.Helper()
	bin := cofferBinary(t)
	apiAddr := freeAddr(t)
	p := &proc{
		bin:  bin,
		name: "dev",
		args: append([]string{"dev", "--api-addr", apiAddr}, args...),
		// The default data directory is a temporary one: keep it inside
		// the test's.
		env:    childEnv(append([]string{"TMPDIR=" + t.TempDir()}, env...)...),
		stdout: &logBuffer{}, stderr: &logBuffer{},
	}
	dumpOnFailure(t, []*proc{p})
	t.Cleanup(func() { p.kill(t) })
	p.start(t)
	var out string
	waitUntil(t, 60*time.Second, "the dev server's banner", func() error {
		if !p.running() {
			t.Fatalf("coffer dev exited early: %v", p.waitErr)
		}
		// The reset line ends the banner.
		if out = p.stdout.String(); !strings.Contains(out, "/v1/dev/reset") {
			return errors.New("not printed yet")
		}
		return nil
	})
	d := &devServer{proc: p, endpoint: "http://" + apiAddr, fields: map[string]string{}}
	for _, m := range devBannerField.FindAllStringSubmatch(out, -1) {
		d.fields[m[1]] = m[2]
	}
	keyID, secret := devKeyID.FindStringSubmatch(out), devSecret.FindStringSubmatch(out)
	if keyID == nil || secret == nil || d.fields["Endpoint"] != d.endpoint {
		t.Fatalf("banner without key pair or endpoint %s:\n%s", d.endpoint, out)
	}
	d.creds = region.Credentials{AccessKeyID: keyID[1], SecretAccessKey: secret[1]}
	return d
}

func (d *devServer) client(region string) *secretsmanager.Client {
	return servertest.NewClient(d.endpoint, region, d.creds, 0)
}

func bctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func errCode(err error) (code, msg string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

// wantCode requires an API error with this code whose message contains msg.
func wantCode(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	got, gotMsg := errCode(err)
	if got != code || !strings.Contains(gotMsg, msg) {
		t.Fatalf("%s: got %v; want %s containing %q", what, err, code, msg)
	}
}

func createNamed(t *testing.T, cl *secretsmanager.Client, name, value string) string {
	t.Helper()
	var arn string
	token := newToken()
	call(t, 30*time.Second, "CreateSecret "+name, func(ctx context.Context) error {
		out, err := cl.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name),
			SecretString: aws.String(value), ClientRequestToken: aws.String(token)})
		if err == nil {
			arn = aws.ToString(out.ARN)
		}
		return err
	})
	return arn
}

func listNames(t *testing.T, cl *secretsmanager.Client) []string {
	t.Helper()
	var names []string
	p := secretsmanager.NewListSecretsPaginator(cl, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(bctx(t))
		if err != nil {
			t.Fatalf("ListSecrets: %v", err)
		}
		for _, e := range page.SecretList {
			names = append(names, aws.ToString(e.Name))
		}
	}
	slices.Sort(names)
	return names
}

// emptyPayloadHash is the hex SHA-256 of an empty body.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// devReset calls POST /v1/dev/reset signed with the AWS SDK's own SigV4
// signer, as docs/dev-mode.md tells Go suites to; sign=false sends it
// unsigned.
func devReset(t *testing.T, endpoint, regionName string, creds region.Credentials, sign bool) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(bctx(t), http.MethodPost, endpoint+"/v1/dev/reset", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sign {
		c := aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}
		if err := v4.NewSigner().SignHTTP(req.Context(), c, req, emptyPayloadHash, "coffer", regionName, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/dev/reset: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// One `coffer dev` hosts us-east-1 and us-west-2 for account 123456789012
// behind one endpoint: each region keeps its own secrets, ARNs carry the
// region and the account, another region is refused by name, and a reset
// empties both while the process keeps serving.
func TestBinary_DevHostsRegionsOnOneEndpoint(t *testing.T) {
	const account = "123456789012"
	d := startDev(t, []string{"--regions", "us-east-1,us-west-2", "--account-id", account})
	if d.fields["Regions"] != "us-east-1,us-west-2" || d.fields["Region"] != "us-east-1" || d.fields["Account"] != account {
		t.Fatalf("banner fields %v: want Region us-east-1, Regions us-east-1,us-west-2, Account %s", d.fields, account)
	}
	west, east := d.client("us-west-2"), d.client("us-east-1")

	arn := createNamed(t, west, "team/api-key", "west-value")
	if !regexp.MustCompile(`^arn:aws:secretsmanager:us-west-2:` + account + `:secret:team/api-key-[A-Za-z0-9]{6}$`).MatchString(arn) {
		t.Fatalf("ARN %s: want region us-west-2 and account %s", arn, account)
	}
	for _, id := range []string{"team/api-key", arn} {
		got, err := west.GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil || aws.ToString(got.SecretString) != "west-value" {
			t.Fatalf("us-west-2 GetSecretValue(%s): %v, %v", id, got, err)
		}
		_, err = east.GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		wantCode(t, "us-east-1 GetSecretValue("+id+")", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	otherAccount := strings.Replace(arn, ":"+account+":", ":000000000000:", 1)
	_, err := west.DescribeSecret(bctx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(otherAccount)})
	wantCode(t, "DescribeSecret with the ARN of another account", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)

	_, err = d.client("eu-west-3").ListSecrets(bctx(t), &secretsmanager.ListSecretsInput{})
	wantCode(t, "ListSecrets signed for eu-west-3", err, apierr.InvalidSignature, "not 'eu-west-3'. This endpoint serves: us-east-1, us-west-2.")

	// /v1/health reports both regions.
	resp, err := healthClient.Get(d.endpoint + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Regions []health `json:"regions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(h.Regions) != 2 ||
		h.Regions[0].Region != "us-east-1" || h.Regions[1].Region != "us-west-2" || !h.Regions[0].Serving || !h.Regions[1].Serving {
		t.Fatalf("health: status %d, %+v, %v; want both regions serving", resp.StatusCode, h.Regions, err)
	}

	// Reset: secrets in both regions, one of them scheduled for deletion.
	createNamed(t, east, "team/api-key", "east-value")
	for _, cl := range []*secretsmanager.Client{east, west} {
		createNamed(t, cl, "db/password", "p")
		if _, err := cl.DeleteSecret(bctx(t), &secretsmanager.DeleteSecretInput{SecretId: aws.String("db/password")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := listNames(t, east); !slices.Equal(got, []string{"db/password", "team/api-key"}) {
		t.Fatalf("us-east-1 lists %v before the reset", got)
	}
	if status, body := devReset(t, d.endpoint, "us-east-1", d.creds, false); status != http.StatusForbidden {
		t.Fatalf("unsigned reset: %d %s, want 403", status, body)
	}
	start := time.Now()
	status, body := devReset(t, d.endpoint, "us-east-1", d.creds, true)
	if status != http.StatusOK {
		t.Fatalf("reset: %d %s", status, body)
	}
	t.Logf("reset of two regions answered in %s: %s", time.Since(start).Round(time.Microsecond), strings.TrimSpace(body))
	for region, cl := range map[string]*secretsmanager.Client{"us-east-1": east, "us-west-2": west} {
		if got := listNames(t, cl); len(got) != 0 {
			t.Fatalf("%s lists %v after the reset", region, got)
		}
		for _, name := range []string{"team/api-key", "db/password"} {
			if arn := createNamed(t, cl, name, "again"); !strings.Contains(arn, ":"+region+":"+account+":secret:"+name+"-") {
				t.Fatalf("%s re-created %s as %s", region, name, arn)
			}
		}
	}
	// The old ARN is gone; the new secret under that name has a new one.
	_, err = west.GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	wantCode(t, "GetSecretValue of an ARN from before the reset", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)

	d.stop(t, syscall.SIGINT, 20*time.Second)
}

// Fixed credentials, from a file or from the environment, are the root key
// pair of every hosted region; any other key is refused.
func TestBinary_DevFixedCredentials(t *testing.T) {
	fileCreds := region.Credentials{AccessKeyID: "AKIADEVSUITEFILE0001", SecretAccessKey: "dev/suite/file/secret/0123456789abcdefghij"}
	credsFile := filepath.Join(t.TempDir(), "creds.json")
	raw, _ := json.Marshal(map[string]string{"AccessKeyId": fileCreds.AccessKeyID, "SecretAccessKey": fileCreds.SecretAccessKey})
	if err := os.WriteFile(credsFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// LocalStack's customary pair: suites written for it keep theirs.
	envCreds := region.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		creds region.Credentials
	}{
		{"file", []string{"--bootstrap-credentials-file", credsFile}, nil, fileCreds},
		{"environment", nil, []string{envDevAccessKeyID + "=" + envCreds.AccessKeyID, envDevSecretAccessKey + "=" + envCreds.SecretAccessKey}, envCreds},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDev(t, append([]string{"--regions", "us-east-1,us-west-2"}, tc.args...), tc.env...)
			if d.creds != tc.creds {
				t.Fatalf("banner prints %+v, want %+v", d.creds, tc.creds)
			}
			for _, name := range []string{"us-east-1", "us-west-2"} {
				cl := servertest.NewClient(d.endpoint, name, tc.creds, 0)
				createNamed(t, cl, "fixed-"+name, "v")
				if got := listNames(t, cl); !slices.Equal(got, []string{"fixed-" + name}) {
					t.Fatalf("%s lists %v", name, got)
				}
				other := region.Credentials{AccessKeyID: "AKIAOTHEROTHEROTHER1", SecretAccessKey: tc.creds.SecretAccessKey}
				_, err := servertest.NewClient(d.endpoint, name, other, 0).ListSecrets(bctx(t), &secretsmanager.ListSecretsInput{})
				wantCode(t, name+" with another access key", err, apierr.UnrecognizedClient, apierr.MsgUnknownAccessKey)
				wrong := region.Credentials{AccessKeyID: tc.creds.AccessKeyID, SecretAccessKey: tc.creds.SecretAccessKey + "x"}
				_, err = servertest.NewClient(d.endpoint, name, wrong, 0).ListSecrets(bctx(t), &secretsmanager.ListSecretsInput{})
				wantCode(t, name+" with the wrong secret key", err, apierr.InvalidSignature, "signature we calculated does not match")
			}
			if status, body := devReset(t, d.endpoint, "us-west-2", region.Credentials{AccessKeyID: "AKIAOTHEROTHEROTHER1", SecretAccessKey: "x"}, true); status != http.StatusBadRequest {
				t.Fatalf("reset with another key: %d %s, want 400", status, body)
			}
			if status, body := devReset(t, d.endpoint, "us-west-2", tc.creds, true); status != http.StatusOK {
				t.Fatalf("reset with the fixed key: %d %s", status, body)
			}
		})
	}
}

// Bad flags and environment end `coffer dev` at once with a message that
// says what is wrong, before anything is started.
func TestBinary_DevRejectsBadConfiguration(t *testing.T) {
	bin := cofferBinary(t)
	missing := filepath.Join(t.TempDir(), "no-such-file.json")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"short account id", []string{"--account-id", "12345"}, nil, `--account-id must be 12 digits, got "12345"`},
		{"account id with letters", []string{"--account-id", "12345678901a"}, nil, `--account-id must be 12 digits`},
		{"account id from the environment", nil, []string{"COFFER_ACCOUNT_ID=abc"}, `--account-id must be 12 digits, got "abc"`},
		{"uppercase region", []string{"--regions", "US-EAST-1"}, nil, `"US-EAST-1" is not a region name`},
		{"region without number", []string{"--regions", "us-east-1,useast"}, nil, `"useast" is not a region name`},
		{"empty region", []string{"--regions", "us-east-1,"}, nil, `"" is not a region name`},
		{"region twice", []string{"--regions", "us-east-1,us-west-2,us-east-1"}, nil, "us-east-1 is listed twice"},
		{"only the access key id", nil, []string{envDevAccessKeyID + "=test"}, envDevAccessKeyID + " is set but " + envDevSecretAccessKey + " is not"},
		{"only the secret key", nil, []string{envDevSecretAccessKey + "=test"}, envDevSecretAccessKey + " is set but " + envDevAccessKeyID + " is not"},
		{"environment and file", []string{"--bootstrap-credentials-file", missing}, []string{envDevAccessKeyID + "=a", envDevSecretAccessKey + "=b"}, "not both"},
		{"missing credentials file", []string{"--bootstrap-credentials-file", missing}, nil, "no such file"},
		{"slash in the access key id", nil, []string{envDevAccessKeyID + "=a/b", envDevSecretAccessKey + "=b"}, "without spaces, '/' or ','"},
		{"API address in use", []string{"--api-addr", busy.Addr().String()}, nil, "listen on API address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"dev", "--api-addr", "127.0.0.1:0"}, tc.args...)...)
			cmd.Env = childEnv(append([]string{"TMPDIR=" + t.TempDir()}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("coffer dev %v: %v, want a non-zero exit\n%s", tc.args, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not say %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "is serving") {
				t.Fatalf("started despite the error:\n%s", out)
			}
		})
	}
}

// `coffer server --account-id` puts the account in ARNs and finds nothing
// by an ARN of another account; a server has no reset endpoint (404, signed
// or not); and a bad account id stops it at once.
func TestBinary_ServerAccountIDAndNoReset(t *testing.T) {
	const account = "210987654321"
	bin := cofferBinary(t)
	base := t.TempDir()
	rootKey := filepath.Join(base, "root.key")
	gen := exec.Command(bin, "operator", "root-key", "generate", "--out", rootKey)
	gen.Env = childEnv()
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("root-key generate: %v\n%s", err, out)
	}
	credsFile := filepath.Join(base, "creds.json")
	raw, _ := json.Marshal(map[string]string{"AccessKeyId": binCreds.AccessKeyID, "SecretAccessKey": binCreds.SecretAccessKey})
	if err := os.WriteFile(credsFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(accountID string) []string {
		return []string{"server", "--node-id", "n1", "--region", binRegion, "--data-dir", filepath.Join(base, "n1"),
			"--root-key-file", rootKey, "--bootstrap-credentials-file", credsFile, "--bootstrap-expect", "1",
			"--cluster-addr", freeAddr(t), "--gossip-addr", freeAddr(t), "--account-id", accountID,
			"--insecure-plaintext"}
	}

	// Without TLS material a server refuses to start, unless told to run
	// in the clear.
	noTLS := exec.Command(bin, "server", "--node-id", "n1", "--region", binRegion, "--data-dir", filepath.Join(base, "n0"))
	noTLS.Env = childEnv()
	if out, err := noTLS.CombinedOutput(); err == nil || !strings.Contains(string(out), "a server encrypts every port, and --gossip-key-file, --tls-ca-file, --tls-cert-file, --tls-key-file not given") {
		t.Fatalf("coffer server without TLS material: %v\n%s", err, out)
	}
	devOpen := exec.Command(bin, "dev", "--api-addr", "0.0.0.0:0")
	devOpen.Env = childEnv()
	if out, err := devOpen.CombinedOutput(); err == nil || !strings.Contains(string(out), "binds loopback addresses only") {
		t.Fatalf("coffer dev on 0.0.0.0: %v\n%s", err, out)
	}
	bad := exec.Command(bin, append(args("0000"), "--api-addr", freeAddr(t))...)
	bad.Env = childEnv()
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), `--account-id must be 12 digits, got "0000"`) {
		t.Fatalf("coffer server --account-id 0000: %v\n%s", err, out)
	}

	apiAddr := freeAddr(t)
	out := &logBuffer{}
	p := &proc{bin: bin, name: "server", args: append(args(account), "--api-addr", apiAddr), env: childEnv(), stdout: out, stderr: out}
	dumpOnFailure(t, []*proc{p})
	t.Cleanup(func() { p.kill(t) })
	p.start(t)
	endpoint := "http://" + apiAddr
	cl := servertest.NewClient(endpoint, binRegion, binCreds, 0)
	arn := createNamed(t, cl, "svc/token", "v")
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:"+binRegion+":"+account+":secret:svc/token-") {
		t.Fatalf("ARN %s does not carry account %s", arn, account)
	}
	for _, id := range []string{
		strings.Replace(arn, account, "000000000000", 1),                         // full ARN, default account
		strings.Replace(arn[:len(arn)-7], account, "000000000000", 1),            // partial ARN, default account
		strings.Replace(arn, account, "123456789012", 1),                         // full ARN, another account
		"arn:aws:secretsmanager:" + binRegion + ":123456789012:secret:svc/token", // partial ARN, another account
	} {
		_, err := cl.GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		wantCode(t, "GetSecretValue("+id+")", err, apierr.ResourceNotFound, apierr.MsgSecretNotFound)
	}
	if got, err := cl.GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-7])}); err != nil || aws.ToString(got.ARN) != arn {
		t.Fatalf("partial ARN of the right account: %v, %v", got, err)
	}

	for _, sign := range []bool{false, true} {
		status, body := devReset(t, endpoint, binRegion, binCreds, sign)
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"Message"`
		}
		if json.Unmarshal([]byte(body), &e); status != http.StatusNotFound || e.Type != apierr.UnknownOperation {
			t.Fatalf("reset on coffer server (signed %v): %d %s; want 404 %s", sign, status, body, apierr.UnknownOperation)
		}
	}
	if got := listNames(t, cl); !slices.Equal(got, []string{"svc/token"}) {
		t.Fatalf("the server lists %v after the refused resets", got)
	}
	p.stop(t, syscall.SIGTERM, 20*time.Second)
}

// A dev server on a --data-dir keeps its regions across restarts, and
// refuses to start when the account id or the credentials differ from the
// ones the regions were bootstrapped with (its banner would be wrong).
func TestBinary_DevDataDirRestart(t *testing.T) {
	bin := cofferBinary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	creds := []string{envDevAccessKeyID + "=test", envDevSecretAccessKey + "=test"}
	args := []string{"--data-dir", dataDir, "--regions", "us-east-1,us-west-2"}
	d := startDev(t, args, creds...)
	createNamed(t, d.client("us-west-2"), "kept", "across restarts")
	d.stop(t, syscall.SIGINT, 20*time.Second)

	d = startDev(t, args, creds...)
	got, err := d.client("us-west-2").GetSecretValue(bctx(t), &secretsmanager.GetSecretValueInput{SecretId: aws.String("kept")})
	if err != nil || aws.ToString(got.SecretString) != "across restarts" {
		t.Fatalf("after a restart: %v, %v", got, err)
	}
	d.stop(t, syscall.SIGINT, 20*time.Second)

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"another account", []string{"--account-id", "999999999999"}, creds, "belongs to account 000000000000, not --account-id 999999999999"},
		{"other credentials", nil, []string{envDevAccessKeyID + "=other", envDevSecretAccessKey + "=other"}, "bootstrapped with another root key pair than other"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"dev", "--api-addr", freeAddr(t)}, args...), tc.args...)...)
		cmd.Env = childEnv(tc.env...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "is serving") {
			t.Fatalf("%s: %v; want a refusal saying %q:\n%s", tc.name, err, tc.want, out)
		}
	}
}

func TestValidateRegions(t *testing.T) {
	for _, ok := range [][]string{{"us-east-1"}, {"us-east-1", "us-west-2", "eu-central-1"}, {"us-gov-west-1"}, {"ap-southeast-10"}} {
		if err := validateRegions(ok); err != nil {
			t.Errorf("validateRegions(%q) = %v", ok, err)
		}
	}
	for _, bad := range [][]string{nil, {""}, {"us_east_1"}, {"us-east"}, {"1-us"}, {"us-east-1 "}, {"US-east-1"}, {"us-east-1", "us-east-1"}} {
		if err := validateRegions(bad); err == nil {
			t.Errorf("validateRegions(%q) accepted", bad)
		}
	}
}

func TestFixedDevCredentials(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	c, _, ok, err := fixedDevCredentials("", env(envDevAccessKeyID, "test", envDevSecretAccessKey, "s3cr3t"))
	if err != nil || !ok || c != (region.Credentials{AccessKeyID: "test", SecretAccessKey: "s3cr3t"}) {
		t.Fatalf("from the environment: %+v, %v, %v", c, ok, err)
	}
	if _, _, ok, err := fixedDevCredentials("", env()); ok || err != nil {
		t.Fatalf("none given: ok=%v err=%v; want neither", ok, err)
	}
	// An empty variable counts as unset.
	if _, _, _, err := fixedDevCredentials("", env(envDevAccessKeyID, "test", envDevSecretAccessKey, "")); err == nil {
		t.Fatal("an access key id without a secret key was accepted")
	}
	for _, id := range []string{"a b", "a/b", "a,b", "caf\u00e9", strings.Repeat("a", 129)} {
		if err := checkDevCredentials(region.Credentials{AccessKeyID: id, SecretAccessKey: "x"}); err == nil {
			t.Errorf("access key id %q accepted", id)
		}
	}
	if err := checkDevCredentials(region.Credentials{AccessKeyID: "test"}); err == nil {
		t.Error("an empty secret key was accepted")
	}
}

// A data directory written before --regions (one region at its top) is
// moved into <data-dir>/us-east-1.
func TestMigrateSingleRegionLayout(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"raft/raft.db", "dev-root.key", "dev-credentials.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrateSingleRegionLayout(dir); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"us-east-1/raft/raft.db": "raft/raft.db", "us-east-1/dev-root.key": "dev-root.key", "dev-credentials.json": "dev-credentials.json"} {
		if got, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(got) != want {
			t.Errorf("%s after the move: %q, %v", f, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "raft")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("raft/ still at the top: %v", err)
	}
	// Nothing to move the second time.
	if err := migrateSingleRegionLayout(dir); err != nil {
		t.Fatal(err)
	}
}
