package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// Lost quorum: three nodes with data directories write secrets, two are
// lost for good, and the survivor, stopped, gets a peers.json naming only
// itself. It restarts as a one-voter region that leads, holds every
// acknowledged write, commits new ones, and has removed the file. Reading
// its data directory is refused while it runs and on a directory that is
// not a node's.
func TestRecover_SingleSurvivorFromPeersFile(t *testing.T) {
	base := t.TempDir()
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DataDir = filepath.Join(base, cfg.NodeID) })
	leader := c.waitLeader(10 * time.Second)
	ctx := ctxTest(t)
	var names []string
	var last uint64
	for i := range 5 {
		name := fmt.Sprintf("s%d", i)
		arn := "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + name + "-abcdef"
		_, index, err := leader.Apply(ctx, encode(t, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: name, Date: 1}))
		if err != nil {
			t.Fatal(err)
		}
		names, last = append(names, name), index
	}

	// The leader holds every acknowledged write: it survives.
	if _, err := ReadDataDir(leader.cfg.DataDir); !errors.Is(err, ErrNodeRunning) {
		t.Fatalf("ReadDataDir of a running node: %v, want ErrNodeRunning", err)
	}
	if _, err := ReadDataDir(t.TempDir()); !errors.Is(err, ErrNotNodeDir) {
		t.Fatalf("ReadDataDir of an empty directory: %v, want ErrNotNodeDir", err)
	}
	for _, n := range c.nodes {
		n.Shutdown()
	}
	st, err := ReadDataDir(leader.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastIndex < last || st.LastTerm == 0 || len(st.Configuration) != 3 {
		t.Fatalf("data directory state %+v: want last index >= %d and three servers", st, last)
	}
	self := RecoveryPeer{ID: leader.ID(), Address: leader.ClusterAddr()}
	if _, err := WritePeersFile(leader.cfg.DataDir, []RecoveryPeer{self}); err != nil {
		t.Fatal(err)
	}

	cfg := leader.cfg
	cfg.ClusterAddr, cfg.ClusterAdvertise, cfg.Join, cfg.BootstrapExpect = leader.ClusterAddr(), "", nil, 0
	n, err := New(cfg, fsm.New(nil))
	if err != nil {
		t.Fatalf("restart with peers.json: %v", err)
	}
	c.nodes = append(c.nodes, n)
	if got := c.waitLeader(15 * time.Second); got != n {
		t.Fatalf("leader is %s, want the recovered %s", got.ID(), n.ID())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "raft", PeersFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("peers.json not removed after recovery: %v", err)
	}
	if v := n.Status().Voters; len(v) != 1 || v[0].ID != n.ID() {
		t.Fatalf("voters after recovery: %+v", v)
	}
	if _, index, err := n.Apply(ctx, encode(t, fsm.CmdNoop, &fsm.Noop{})); err != nil || index <= last {
		t.Fatalf("write after recovery: index %d, %v", index, err)
	}
	txn, _ := n.FSM().ReadTxn()
	if got := fsm.Size(txn).Secrets; got != len(names) {
		t.Fatalf("%d secrets after recovery, want %d", got, len(names))
	}
}

func TestRecover_ValidateRecoveryPeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers []RecoveryPeer
		want  string // "" for valid
	}{
		{"self alone", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1:8301"}}, ""},
		{"two", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1:8301"}, {ID: "n4", Address: "10.0.0.4:8301"}}, ""},
		{"empty", nil, "no server"},
		{"no id", []RecoveryPeer{{Address: "10.0.0.1:8301"}}, "no id"},
		{"bad address", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1"}}, "not host:port"},
		{"duplicate id", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1:8301"}, {ID: "n1", Address: "10.0.0.2:8301"}}, "listed twice"},
		{"duplicate address", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1:8301"}, {ID: "n2", Address: "10.0.0.1:8301"}}, "listed twice"},
		{"self missing", []RecoveryPeer{{ID: "n2", Address: "10.0.0.2:8301"}}, "must be a voter"},
		{"self not voting", []RecoveryPeer{{ID: "n1", Address: "10.0.0.1:8301", NonVoter: true}, {ID: "n2", Address: "10.0.0.2:8301"}}, "must be a voter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRecoveryPeers("n1", tc.peers)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
