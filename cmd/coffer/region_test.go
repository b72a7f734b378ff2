package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/replication"
)

// Two regions of real servers find each other through the WAN pool, and
// `coffer region list` on a server of either shows both, each with its
// leader and its replication key's fingerprint, the same from both sides.
func TestBinary_RegionsFindEachOtherThroughTheWANPool(t *testing.T) {
	bin := cofferBinary(t)
	base := t.TempDir()
	credsFile := filepath.Join(base, "creds.json")
	raw, _ := json.Marshal(map[string]string{"AccessKeyId": binCreds.AccessKeyID, "SecretAccessKey": binCreds.SecretAccessKey})
	if err := os.WriteFile(credsFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	regions := []string{binRegion, "eu-west-1"}
	var procs []*proc
	var api []string
	wan := []string{freeAddr(t), freeAddr(t)}
	for i, reg := range regions {
		rootKey := genRootKey(t, bin, filepath.Join(base, reg+".key"))
		api = append(api, freeAddr(t))
		args := append([]string{"server", "--node-id", "n1", "--region", reg,
			"--data-dir", filepath.Join(base, reg), "--api-addr", api[i], "--cluster-addr", freeAddr(t),
			"--gossip-addr", freeAddr(t), "--bootstrap-expect", "1", "--root-key-file", rootKey,
			"--bootstrap-credentials-file", credsFile, "--wan-gossip-addr", wan[i]},
			securityFlagsIn(t, bin, base, "n1", reg)...)
		if i > 0 {
			args = append(args, "--wan-join", wan[0])
		}
		out := &logBuffer{}
		procs = append(procs, &proc{bin: bin, name: reg, args: args, env: childEnv(), stdout: out, stderr: out})
	}
	dumpOnFailure(t, procs)
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill(t)
		}
	})
	for _, p := range procs {
		p.start(t)
	}
	list := func(i int) ([]replication.Region, error) {
		cmd := exec.Command(bin, "region", "list", "--endpoint", "https://"+api[i], "--ca-file", filepath.Join(base, "coffer-ca.pem"),
			"--region", regions[i], "--format", "json")
		cmd.Env = childEnv("AWS_ACCESS_KEY_ID="+binCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+binCreds.SecretAccessKey)
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, out)
		}
		var rs []replication.Region
		return rs, json.Unmarshal(out, &rs)
	}
	var seen [2][]replication.Region
	for i := range regions {
		waitUntil(t, 60*time.Second, "both regions, led and keyed, seen from "+regions[i], func() error {
			rs, err := list(i)
			if err != nil {
				return err
			}
			if len(rs) != 2 {
				return fmt.Errorf("%d regions", len(rs))
			}
			for _, r := range rs {
				if r.Leader != "n1" || r.Serving != 1 || r.Fingerprint == "" {
					return fmt.Errorf("region %s not ready: %+v", r.Name, r)
				}
			}
			seen[i] = rs
			return nil
		})
	}
	if seen[0][0].Fingerprint != seen[1][0].Fingerprint || seen[0][1].Fingerprint != seen[1][1].Fingerprint ||
		seen[0][0].Fingerprint == seen[0][1].Fingerprint {
		t.Fatalf("fingerprints disagree: %+v vs %+v", seen[0], seen[1])
	}
	// The table names both regions.
	cmd := exec.Command(bin, "region", "list", "--endpoint", "https://"+api[1], "--ca-file", filepath.Join(base, "coffer-ca.pem"), "--region", regions[1])
	cmd.Env = childEnv("AWS_ACCESS_KEY_ID="+binCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+binCreds.SecretAccessKey)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "eu-west-1") || !strings.Contains(string(out), binRegion) || !strings.Contains(string(out), seen[1][0].Fingerprint) {
		t.Fatalf("region list table: %v\n%s", err, out)
	}
	// A region that leaves is gone from the other's list.
	procs[1].stop(t, syscall.SIGTERM, 30*time.Second)
	waitUntil(t, 30*time.Second, "eu-west-1 gone from the list", func() error {
		rs, err := list(0)
		if err == nil && len(rs) != 1 {
			err = errors.New("still listed")
		}
		return err
	})
}
