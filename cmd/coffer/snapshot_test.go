package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
)

// Three `coffer server` processes: save a snapshot with the CLI, wipe the
// secrets, restore through a follower with the CLI; every node serves the
// snapshot's secrets and not the ones written after it. Snapshots of
// another region, or of this region under another root key (both saved
// from a `coffer dev`), and a truncated file are refused with the reason.
func TestBinary_SnapshotRestore(t *testing.T) {
	c, base := startCluster3(t)
	all := []int{0, 1, 2}
	leader := c.waitAgreedLeader(all, 60*time.Second, "three nodes to agree on a leader")
	follower := (leader + 1) % 3
	ca := filepath.Join(base, "coffer-ca.pem")
	snapshot := func(endpoint, regionName string, creds region.Credentials, args ...string) (string, error) {
		cmd := exec.Command(cofferBinary(t), append(append([]string{"operator", "snapshot"}, args...),
			"--endpoint", endpoint, "--ca-file", ca, "--region", regionName)...)
		cmd.Env = childEnv("AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i := range 6 {
		c.put(i%3, fmt.Sprintf("backup/%d", i), fmt.Sprintf("value-%d", i), 30*time.Second)
	}
	saved := make(map[string]string, len(c.want))
	for k, v := range c.want {
		saved[k] = v
	}
	snap := filepath.Join(base, "backup.snap")
	if out, err := snapshot("https://"+c.api[follower], binRegion, binCreds, "save", snap); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}

	// Wipe: delete every secret, write one more.
	for name := range saved {
		call(t, 30*time.Second, "delete "+name, func(ctx context.Context) error {
			_, err := c.clients[leader].DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)})
			if code, _ := errCode(err); code == apierr.ResourceNotFound {
				return nil // a retry of a delete that was applied
			}
			return err
		})
	}
	c.want = map[string]string{}
	c.put(follower, "after-snapshot", "gone-after-restore", 30*time.Second)

	// Refused, nothing changed: another region, another root key, a
	// truncated file (refused by the CLI before it sends anything).
	d := startDev(t, []string{"--regions", binRegion + ",eu-west-1"})
	call(t, 30*time.Second, "write to the dev server", func(ctx context.Context) error {
		_, err := d.client(binRegion).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("dev"), SecretString: aws.String("x")})
		return err
	})
	for _, r := range []string{binRegion, "eu-west-1"} {
		if out, err := snapshot(d.endpoint, r, d.creds, "save", filepath.Join(base, "dev-"+r+".snap")); err != nil {
			t.Fatalf("snapshot save from coffer dev %s: %v\n%s", r, err, out)
		}
	}
	// coffer dev restores its own snapshot (each of its regions is a
	// one-node Raft group).
	call(t, 30*time.Second, "delete from the dev server", func(ctx context.Context) error {
		_, err := d.client(binRegion).DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("dev"), ForceDeleteWithoutRecovery: aws.Bool(true)})
		return err
	})
	if out, err := snapshot(d.endpoint, binRegion, d.creds, "restore", filepath.Join(base, "dev-"+binRegion+".snap")); err != nil {
		t.Fatalf("snapshot restore into coffer dev: %v\n%s", err, out)
	}
	call(t, 30*time.Second, "read back from the dev server", func(ctx context.Context) error {
		out, err := d.client(binRegion).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("dev")})
		if err == nil && aws.ToString(out.SecretString) != "x" {
			t.Fatalf("dev after restore: %q", aws.ToString(out.SecretString))
		}
		return err
	})

	raw, err := os.ReadFile(snap)
	if err == nil {
		err = os.WriteFile(filepath.Join(base, "short.snap"), raw[:len(raw)*2/3], 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"dev-eu-west-1.snap", "the snapshot is of region eu-west-1, and this request is for region " + binRegion},
		{"dev-" + binRegion + ".snap", "this region's root key does not open the snapshot's keyring"},
		{"short.snap", "snapshot file is truncated"},
	} {
		out, err := snapshot("https://"+c.api[follower], binRegion, binCreds, "restore", filepath.Join(base, tc.file))
		if err == nil || !strings.Contains(out, tc.want) {
			t.Fatalf("restore %s: %v, want an error saying %q\n%s", tc.file, err, tc.want, out)
		}
	}
	c.readAll(all, 30*time.Second) // after-snapshot is still there

	out, err := snapshot("https://"+c.api[follower], binRegion, binCreds, "restore", snap, "--format", "json")
	if err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	var restored struct {
		Header struct{ Region string }
		State  struct{ Records map[string]int }
		Index  uint64 `json:"restored_at_index"`
	}
	if err := json.Unmarshal([]byte(out), &restored); err != nil || restored.Header.Region != binRegion ||
		restored.State.Records["secrets"] != len(saved) || restored.Index == 0 {
		t.Fatalf("snapshot restore answered (%v):\n%s", err, out)
	}
	c.want = make(map[string]string, len(saved))
	for k, v := range saved {
		c.want[k] = v
	}
	c.readAll(all, 30*time.Second)
	for _, i := range all {
		call(t, 30*time.Second, "read after-snapshot through "+c.ids[i], func(ctx context.Context) error {
			_, err := c.clients[i].GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("after-snapshot")})
			if code, _ := errCode(err); code != apierr.ResourceNotFound {
				t.Fatalf("%s: after-snapshot, written after the snapshot, survived the restore: %v", c.ids[i], err)
			}
			return nil
		})
	}
	// The region writes after a restore, and the table output says what
	// was restored.
	c.put(leader, "after-restore", "ok", 30*time.Second)
	c.readAll(all, 30*time.Second)
	if out, err := snapshot("https://"+c.api[leader], binRegion, binCreds, "restore", snap); err != nil ||
		!strings.Contains(out, "Serving from") || !regexp.MustCompile(fmt.Sprintf(`(?m)^Secrets\s+%d$`, len(saved))).MatchString(out) {
		t.Fatalf("snapshot restore (table, on the leader): %v\n%s", err, out)
	}
	delete(c.want, "after-restore")
	c.readAll(all, 30*time.Second)
}
