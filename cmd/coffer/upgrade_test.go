package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/server/servertest"
)

// Upgrades: this binary must start on a data directory written by the
// binary of an earlier command table and serve exactly what that binary
// served. testdata/upgrade holds one fixture per earlier table, each a
// tarball of a single server's data directory (a Raft snapshot plus log
// entries after it, so both the snapshot decoder and the command decoders
// of the old table are exercised), the root key and credentials it ran
// with, and answers.json: what the old binary answered to the reads of
// upgradeAnswers. scripts/upgrade-fixture.sh REV writes one; add a fixture
// from the last commit before every change to the command table.

const upgradeFixtures = "testdata/upgrade"

// upgradeRegion is the fixtures' region (the one the old binary served).
const upgradeRegion = "us-east-1"

// Written by the old binary and read back by this one.
type upgradeAnswer struct {
	Name        string
	ARN         string
	Description string
	KmsKeyID    string
	Deleted     bool
	Created     time.Time
	Tags        []string
	Stages      map[string][]string // version id → labels
	Values      map[string]string   // version id → value (binary base64'd by the SDK)
	Policy      string
}

func TestBinary_UpgradeFromEarlierCommandTables(t *testing.T) {
	if from := os.Getenv("COFFER_UPGRADE_FROM"); from != "" {
		writeUpgradeFixture(t, from, os.Getenv("COFFER_UPGRADE_OUT"))
		return
	}
	bin := cofferBinary(t)
	fixtures, _ := filepath.Glob(filepath.Join(upgradeFixtures, "*.tar.gz"))
	if len(fixtures) == 0 {
		t.Fatal("no fixtures in " + upgradeFixtures)
	}
	for _, fx := range fixtures {
		t.Run(strings.TrimSuffix(filepath.Base(fx), ".tar.gz"), func(t *testing.T) {
			dir := t.TempDir()
			untar(t, fx, dir)
			var want []upgradeAnswer
			raw, err := os.ReadFile(filepath.Join(dir, "answers.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if snaps, _ := filepath.Glob(filepath.Join(dir, "data", "raft", "snapshots", "*", "meta.json")); len(snaps) == 0 {
				t.Fatal("the fixture holds no Raft snapshot")
			}
			p, c := startUpgradeNode(t, bin, dir)
			if got := upgradeAnswers(t, c); !answersEqual(got, want) {
				t.Fatalf("this binary answers differently from the binary that wrote the fixture\n got: %s\nwant: %s", jsonOf(got), jsonOf(want))
			}
			// The old state takes new writes, and they survive a restart
			// (a snapshot and a log in the new format on top of the old).
			call(t, 30*time.Second, "write after the upgrade", func(ctx context.Context) error {
				_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("plain"),
					SecretString: aws.String("after-upgrade"), ClientRequestToken: aws.String("00000000-0000-4000-8000-0000000000ff")})
				return err
			})
			p.stop(t, syscall.SIGTERM, 30*time.Second)
			p.start(t)
			call(t, 60*time.Second, "read after the restart", func(ctx context.Context) error {
				out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("plain")})
				if err == nil && aws.ToString(out.SecretString) != "after-upgrade" {
					t.Fatalf("after the restart plain is %q", aws.ToString(out.SecretString))
				}
				return err
			})
		})
	}
}

// startUpgradeNode starts a single server on the data directory under dir
// with the root key and credentials beside it.
func startUpgradeNode(t *testing.T, bin, dir string) (*proc, *secretsmanager.Client) {
	t.Helper()
	api := freeAddr(t)
	out := &logBuffer{}
	p := &proc{
		bin:  bin,
		name: "upgrade",
		args: []string{"server",
			"--node-id", "n1",
			"--region", upgradeRegion,
			"--data-dir", filepath.Join(dir, "data"),
			"--api-addr", api,
			"--cluster-addr", freeAddr(t),
			"--gossip-addr", freeAddr(t),
			"--bootstrap-expect", "1",
			"--root-key-file", filepath.Join(dir, "root.key"),
			"--bootstrap-credentials-file", filepath.Join(dir, "creds.json"),
			"--insecure-plaintext",
			// Small enough that the fixture's workload leaves a snapshot
			// and log entries after it.
			"--raft-snapshot-threshold", "16",
			"--raft-snapshot-interval", "200ms",
			"--raft-trailing-logs", "4",
		},
		env:    childEnv(),
		stdout: out, stderr: out,
	}
	dumpOnFailure(t, []*proc{p})
	t.Cleanup(func() { p.kill(t) })
	p.start(t)
	return p, servertest.NewClient("http://"+api, upgradeRegion, binCreds, 0)
}

// writeUpgradeFixture runs the upgrade workload against the binary at
// from and writes its data directory and answers as out (a .tar.gz).
func writeUpgradeFixture(t *testing.T, from, out string) {
	if out == "" {
		t.Fatal("COFFER_UPGRADE_OUT names the fixture to write")
	}
	dir := t.TempDir()
	genRootKey(t, from, filepath.Join(dir, "root.key"))
	raw, _ := json.Marshal(map[string]string{"AccessKeyId": binCreds.AccessKeyID, "SecretAccessKey": binCreds.SecretAccessKey})
	if err := os.WriteFile(filepath.Join(dir, "creds.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	p, c := startUpgradeNode(t, from, dir)
	upgradeWorkload(t, c, from, p)
	// Wait for a snapshot, then add entries after it so the log is read too.
	waitUntil(t, 60*time.Second, "a Raft snapshot", func() error {
		if m, _ := filepath.Glob(filepath.Join(dir, "data", "raft", "snapshots", "*", "meta.json")); len(m) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	for i := range 3 {
		call(t, 30*time.Second, "write after the snapshot", func(ctx context.Context) error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("binary"),
				SecretBinary: []byte{0, 1, 2, byte(i)}, ClientRequestToken: aws.String(fmt.Sprintf("00000000-0000-4000-8000-00000000030%d", i))})
			return err
		})
	}
	answers := upgradeAnswers(t, c)
	p.stop(t, syscall.SIGTERM, 30*time.Second)
	raw, _ = json.MarshalIndent(answers, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "answers.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	writeTar(t, dir, out)
}

// upgradeWorkload writes a state that uses as many commands of the table
// as one region can: values in both forms, labels moved, tags, a resource
// policy, a customer key by alias, deletion with a window, restore, a
// forced delete, description updates and enough writes to snapshot.
func upgradeWorkload(t *testing.T, c *secretsmanager.Client, bin string, p *proc) {
	t.Helper()
	n := 0
	tok := func() *string { n++; return aws.String(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)) }
	do := func(what string, op func(ctx context.Context) error) { call(t, 30*time.Second, what, op) }
	api := p.args[slices.Index(p.args, "--api-addr")+1]
	waitUntil(t, 60*time.Second, "coffer key create", func() error {
		key := exec.Command(bin, "key", "create", "--alias", "alias/upgrade", "--endpoint", "http://"+api, "--region", upgradeRegion)
		key.Env = childEnv("AWS_ACCESS_KEY_ID="+binCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+binCreds.SecretAccessKey)
		if out, err := key.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	for _, name := range []string{"plain", "binary", "keyed", "pending-delete", "restored", "gone"} {
		in := &secretsmanager.CreateSecretInput{Name: aws.String(name), ClientRequestToken: tok(),
			Description: aws.String("the " + name + " secret"),
			Tags:        []types.Tag{{Key: aws.String("team"), Value: aws.String("core")}, {Key: aws.String("name"), Value: aws.String(name)}}}
		switch name {
		case "binary":
			in.SecretBinary = []byte{0xff, 0, 0x10}
		case "keyed":
			in.KmsKeyId, in.SecretString = aws.String("alias/upgrade"), aws.String(`{"user":"app","password":"k1"}`)
		default:
			in.SecretString = aws.String("first " + name)
		}
		do("create "+name, func(ctx context.Context) error { _, err := c.CreateSecret(ctx, in); return err })
	}
	for i := range 4 {
		in := &secretsmanager.PutSecretValueInput{SecretId: aws.String("plain"), ClientRequestToken: tok(),
			SecretString: aws.String(fmt.Sprintf("plain v%d", i+2))}
		if i == 1 {
			in.VersionStages = []string{"AWSCURRENT", "blue"}
		}
		do("put plain", func(ctx context.Context) error { _, err := c.PutSecretValue(ctx, in); return err })
	}
	do("stage green", func(ctx context.Context) error {
		d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("plain")})
		if err != nil {
			return err
		}
		for id, st := range d.VersionIdsToStages {
			if slices.Contains(st, "AWSPREVIOUS") {
				_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("plain"),
					VersionStage: aws.String("green"), MoveToVersionId: aws.String(id)})
				return err
			}
		}
		return fmt.Errorf("no AWSPREVIOUS version")
	})
	do("untag", func(ctx context.Context) error {
		_, err := c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("plain"), TagKeys: []string{"team"}})
		return err
	})
	do("policy", func(ctx context.Context) error {
		_, err := c.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("keyed"),
			ResourcePolicy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`)})
		return err
	})
	do("update binary", func(ctx context.Context) error {
		_, err := c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("binary"), ClientRequestToken: tok(),
			SecretBinary: []byte("second"), Description: aws.String("updated")})
		return err
	})
	do("delete with a window", func(ctx context.Context) error {
		_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("pending-delete"), RecoveryWindowInDays: aws.Int64(7)})
		return err
	})
	do("delete restored", func(ctx context.Context) error {
		_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("restored")})
		return err
	})
	do("restore", func(ctx context.Context) error {
		_, err := c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("restored")})
		return err
	})
	do("force delete", func(ctx context.Context) error {
		_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("gone"), ForceDeleteWithoutRecovery: aws.Bool(true)})
		return err
	})
	for i := range 20 { // past the snapshot threshold
		in := &secretsmanager.PutSecretValueInput{SecretId: aws.String("keyed"), ClientRequestToken: tok(),
			SecretString: aws.String(fmt.Sprintf(`{"user":"app","password":"k%d"}`, i+2))}
		do("put keyed", func(ctx context.Context) error { _, err := c.PutSecretValue(ctx, in); return err })
	}
}

// upgradeAnswers reads everything the fixture's state shows a client.
// LastAccessedDate is left out: reading moves it.
func upgradeAnswers(t *testing.T, c *secretsmanager.Client) []upgradeAnswer {
	t.Helper()
	var names []string
	call(t, 60*time.Second, "list", func(ctx context.Context) error {
		names = nil
		out, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{IncludePlannedDeletion: aws.Bool(true), MaxResults: aws.Int32(100)})
		if err != nil {
			return err
		}
		for _, s := range out.SecretList {
			names = append(names, aws.ToString(s.Name))
		}
		return nil
	})
	slices.Sort(names)
	var answers []upgradeAnswer
	for _, name := range names {
		a := upgradeAnswer{Name: name, Stages: map[string][]string{}, Values: map[string]string{}}
		call(t, 30*time.Second, "describe "+name, func(ctx context.Context) error {
			d, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
			if err != nil {
				return err
			}
			a.ARN, a.Description, a.KmsKeyID = aws.ToString(d.ARN), aws.ToString(d.Description), aws.ToString(d.KmsKeyId)
			a.Deleted, a.Created = d.DeletedDate != nil, aws.ToTime(d.CreatedDate).UTC()
			a.Tags = nil
			for _, tg := range d.Tags {
				a.Tags = append(a.Tags, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
			}
			slices.Sort(a.Tags)
			for id, st := range d.VersionIdsToStages {
				st = slices.Clone(st)
				slices.Sort(st)
				a.Stages[id] = st
			}
			return nil
		})
		if !a.Deleted {
			for id := range a.Stages {
				call(t, 30*time.Second, "get "+name+" "+id, func(ctx context.Context) error {
					v, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(id)})
					if err != nil {
						return err
					}
					if v.SecretBinary != nil {
						a.Values[id] = fmt.Sprintf("binary %x", v.SecretBinary)
					} else {
						a.Values[id] = aws.ToString(v.SecretString)
					}
					return nil
				})
			}
			call(t, 30*time.Second, "policy "+name, func(ctx context.Context) error {
				pol, err := c.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(name)})
				if err == nil {
					a.Policy = aws.ToString(pol.ResourcePolicy)
				}
				return err
			})
		}
		answers = append(answers, a)
	}
	return answers
}

func answersEqual(a, b []upgradeAnswer) bool { return jsonOf(a) == jsonOf(b) }

func jsonOf(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func writeTar(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name, _ = filepath.Rel(dir, path)
		if err := tw.WriteHeader(hdr); err != nil || d.IsDir() {
			return err
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(path, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o700)
		if err == nil {
			_, err = io.Copy(dst, tr)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
