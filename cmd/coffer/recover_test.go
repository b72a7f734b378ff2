package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/cluster"
)

// The lost-quorum runbook (docs/operations.md) on three real servers:
// secrets are written, the leader is stopped and two servers are lost for
// good, and `coffer operator raft recover` on the survivor's data
// directory (dry run first, then for real) brings it back as a one-voter
// region that serves every acknowledged write and commits new ones.
// Recover is refused while the node runs, while its peers are alive, and
// on bad input, and then writes nothing.
func TestBinary_OperatorRaftRecover(t *testing.T) {
	c, base := startCluster3(t)
	all := []int{0, 1, 2}
	leader := c.waitAgreedLeader(all, 60*time.Second, "three nodes to agree on a leader")
	for i := range all {
		c.put(i, "before-loss-"+c.ids[i], "acknowledged-"+c.ids[i], 30*time.Second)
	}
	// The survivor is the leader: it holds every acknowledged write.
	s := leader
	dataDir := filepath.Join(base, c.ids[s])
	peersJSON := filepath.Join(dataDir, "raft", "peers.json")
	recoverCmd := func(args ...string) (string, error) {
		cmd := exec.Command(cofferBinary(t), append([]string{"operator", "raft", "recover", "--data-dir", dataDir, "--node-id", c.ids[s]}, args...)...)
		cmd.Env = childEnv()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	refused := func(what, want string, args ...string) {
		t.Helper()
		out, err := recoverCmd(args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("recover %s: want a refusal containing %q, got %v:\n%s", what, want, err, out)
		}
		if _, err := os.Stat(peersJSON); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("recover %s wrote %s (stat: %v)", what, peersJSON, err)
		}
	}

	refused("while the node runs", "the node is running")
	c.nodes[s].kill(t)
	refused("while its peers are alive", "answers")
	for _, i := range all {
		c.nodes[i].kill(t)
	}
	refused("with an unknown flag", "unknown flag", "--bogus")
	refused("with a malformed peer", "want ID=CLUSTER_ADDR", "--peer", "n1")
	refused("with a duplicate id", "listed twice", "--peer", c.ids[s]+"=127.0.0.1:1", "--peer", c.ids[s]+"=127.0.0.1:2")
	refused("without this node", "must be a voter", "--peer", "n9=127.0.0.1:1")
	if out, err := exec.Command(cofferBinary(t), "operator", "raft", "recover", "--data-dir", t.TempDir(), "--node-id", "n1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "not a Coffer node's data directory") {
		t.Fatalf("recover of an empty directory: %v\n%s", err, out)
	}

	out, err := recoverCmd("--dry-run")
	if err != nil || !strings.Contains(out, "Dry run: nothing written") || !strings.Contains(out, "Last log entry:") ||
		strings.Count(out, `"id": "`+c.ids[s]+`"`) != 1 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(peersJSON); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run wrote %s", peersJSON)
	}
	t.Logf("dry run:\n%s", out)
	if out, err := recoverCmd(); err != nil || !strings.Contains(out, "Wrote "+peersJSON) {
		t.Fatalf("recover: %v\n%s", err, out)
	}

	p := c.nodes[s]
	p.stdout.Write([]byte("\n===== restarted after recover =====\n"))
	p.start(t)
	waitUntil(t, 60*time.Second, "the recovered node to lead and serve", func() error {
		h, code, err := getHealth(c.api[s])
		if err != nil {
			return err
		}
		if code != http.StatusOK || h.State != "leader" {
			return fmt.Errorf("status %d, state %q, leader %q", code, h.State, h.LeaderID)
		}
		return nil
	})
	if !strings.Contains(p.stdout.String(), "RECOVERY") {
		t.Fatal("the restarted node did not log the recovery")
	}
	if _, err := os.Stat(peersJSON); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("peers.json still there after the recovered start (stat: %v)", err)
	}
	c.readAll([]int{s}, 30*time.Second)
	c.put(s, "after-recovery", "commits-alone", 30*time.Second)
	c.put(s, "before-loss-"+c.ids[s], "rewritten-after-recovery", 30*time.Second)
	c.readAll([]int{s}, 30*time.Second)
}

// The new configuration comes from --peer, --peers-file (raft's peers.json
// format) or, by default, this node alone at its configured address.
func TestRecoveryPeers(t *testing.T) {
	self := cluster.RecoveryPeer{ID: "n1", Address: "10.0.0.1:8301"}
	file := filepath.Join(t.TempDir(), "peers.json")
	os.WriteFile(file, []byte(`[{"id": "n1", "address": "10.0.0.1:8301", "non_voter": false}, {"id": "n4", "address": "10.0.0.4:8301"}]`), 0o600)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`[{"id": "n1", "addr": "10.0.0.1:8301"}]`), 0o600)
	for _, tc := range []struct {
		name string
		f    recoverFlags
		want []cluster.RecoveryPeer
		err  string
	}{
		{"default", recoverFlags{}, []cluster.RecoveryPeer{self}, ""},
		{"peers", recoverFlags{peers: []string{"n1=10.0.0.1:8301", "n4=10.0.0.4:8301"}},
			[]cluster.RecoveryPeer{self, {ID: "n4", Address: "10.0.0.4:8301"}}, ""},
		{"peers file", recoverFlags{peersFile: file}, []cluster.RecoveryPeer{self, {ID: "n4", Address: "10.0.0.4:8301"}}, ""},
		{"malformed peer", recoverFlags{peers: []string{"n1:10.0.0.1:8301"}}, nil, "want ID=CLUSTER_ADDR"},
		{"empty id", recoverFlags{peers: []string{"=10.0.0.1:8301"}}, nil, "want ID=CLUSTER_ADDR"},
		{"unknown field in file", recoverFlags{peersFile: bad}, nil, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recoveryPeers(&tc.f, self)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
