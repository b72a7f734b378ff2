package replication

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/cluster"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/region"
	"github.com/hashicorp/go-hclog"
)

// The shipper's export and the receiver's import, between regions that
// run without Raft (region.Config.Local), with no network: what a
// shipment carries, what the replica region makes of it, and what it
// refuses. Replication over the wire, between clusters, is tested in
// server/replication_test.go.

func localRegion(t *testing.T, name string) *region.Region {
	t.Helper()
	creds := region.GenerateCredentials()
	r, err := region.Start(region.Config{Local: true, Cluster: cluster.Config{Region: name, NodeID: "n1"},
		RootKey: crypto.RandomKey(), Bootstrap: &creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, pub := r.ReplicationPublicKey(); pub != nil && !r.Sealed() {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("region %s has no replication key", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// service is a replication service of r without its leader work.
func service(r *region.Region) *Service {
	return &Service{cfg: Config{Region: r, Timeout: 5 * time.Second, Batch: 256}, r: r, logger: hclog.NewNullLogger()}
}

// primarySecret creates a secret with one value in r, replicated to
// replica, and returns it.
func primarySecret(t *testing.T, r *region.Region, name, value, replica string) *fsm.Secret {
	t.Helper()
	kr, err := r.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	arn := r.NewARN(name)
	kekID, err := r.WrapKEK(&fsm.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	nv, err := region.Seal(kr, kekID, arn, "v1", []byte(value), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := r.Apply(ctx, fsm.CmdCreateSecret, &fsm.CreateSecret{ARN: arn, Name: name, Version: &nv, Date: 1,
		Replicas: []fsm.Replica{{Region: replica}}}); err != nil {
		t.Fatal(err)
	}
	txn, _ := r.FSM().ReadTxn()
	return fsm.SecretByARN(txn, arn)
}

func exportTo(t *testing.T, from *region.Region, to string, pub []byte, s *fsm.Secret) *shipment {
	t.Helper()
	kr, err := from.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	ss, err := service(from).export(kr, pub, to, s, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return &shipment{Source: from.Name(), Target: to, Secrets: []shippedSecret{ss}, Next: s.ModifyIndex}
}

func TestReceive(t *testing.T) {
	east, west, other := localRegion(t, "us-east-1"), localRegion(t, "us-west-2"), localRegion(t, "eu-west-1")
	_, westKey := west.ReplicationPublicKey()
	_, otherKey := other.ReplicationPublicKey()
	ctx := context.Background()
	s := primarySecret(t, east, "db", "hunter2", "us-west-2")
	recv := service(west)

	t.Run("a shipment applies, re-wrapped under the replica region's key", func(t *testing.T) {
		sh := exportTo(t, east, "us-west-2", westKey, s)
		if sh.Secrets[0].Versions[0].Ciphertext == nil || strings.Contains(string(sh.Secrets[0].Versions[0].DataKey), "hunter2") {
			t.Fatalf("shipped version: %+v", sh.Secrets[0].Versions[0])
		}
		a := recv.receive(ctx, sh, cluster.RemotePeer{})
		if a.Error != "" || len(a.Outcomes) != 1 || a.Outcomes[0].Status != fsm.ReplApplied || a.Outcomes[0].ARN != s.ARN {
			t.Fatalf("answer %+v", a)
		}
		txn, _ := west.FSM().ReadTxn()
		rs := fsm.SecretByName(txn, "db")
		if rs == nil || !rs.IsReplica() || rs.PrimaryRegion != "us-east-1" || !strings.Contains(rs.ARN, ":us-west-2:") {
			t.Fatalf("the replica: %+v", rs)
		}
		kr, _ := west.Keyring()
		v := rs.Staged(fsm.StageCurrent)
		if plain, err := west.OpenValue(kr, rs, v); err != nil || string(plain) != "hunter2" {
			t.Fatalf("the replica's value: %q, %v", plain, err)
		}
		if want, _ := west.WrapKEK(&fsm.Secret{}); v.Value.KEKID != want {
			t.Fatalf("the replica's data key is wrapped by %q", v.Value.KEKID)
		}
		if string(v.Digest) != string(kr.Digest("s", []byte("hunter2"))) {
			t.Fatal("the replica's digest is not its own HMAC of the value")
		}
		// The same shipment again changes nothing (exactly once).
		_, before := west.FSM().ReadTxn()
		a = recv.receive(ctx, sh, cluster.RemotePeer{})
		txn, _ = west.FSM().ReadTxn()
		if a.Error != "" || a.Outcomes[0].Status != fsm.ReplApplied || fsm.SecretByName(txn, "db").ModifyIndex > before {
			t.Fatalf("a repeated shipment: %+v", a)
		}
	})

	t.Run("a data key sealed to another region's key does not open", func(t *testing.T) {
		s2 := primarySecret(t, east, "swapped", "x", "us-west-2")
		a := recv.receive(ctx, exportTo(t, east, "us-west-2", otherKey, s2), cluster.RemotePeer{})
		if a.Error != "" || len(a.Outcomes) != 1 || a.Outcomes[0].Status != fsm.ReplFailed ||
			!strings.Contains(a.Outcomes[0].Message, "does not open with region us-west-2's replication key") {
			t.Fatalf("answer %+v", a)
		}
		txn, _ := west.FSM().ReadTxn()
		if fsm.SecretByName(txn, "swapped") != nil {
			t.Fatal("a secret whose data key did not open was applied")
		}
	})

	t.Run("a tampered value does not open", func(t *testing.T) {
		s3 := primarySecret(t, east, "tampered", "y", "us-west-2")
		sh := exportTo(t, east, "us-west-2", westKey, s3)
		sh.Secrets[0].Versions[0].Ciphertext[0] ^= 1
		a := recv.receive(ctx, sh, cluster.RemotePeer{})
		if a.Error != "" || a.Outcomes[0].Status != fsm.ReplFailed {
			t.Fatalf("answer %+v", a)
		}
	})

	t.Run("shipments refused whole", func(t *testing.T) {
		for name, tc := range map[string]struct {
			edit func(*shipment)
			peer cluster.RemotePeer
			want string
		}{
			"for another region":               {func(sh *shipment) { sh.Target = "eu-west-1" }, cluster.RemotePeer{}, "not eu-west-1"},
			"from itself":                      {func(sh *shipment) { sh.Source = "us-west-2" }, cluster.RemotePeer{}, "must come from another region"},
			"from a server of another region":  {func(*shipment) {}, cluster.RemotePeer{Node: "n1", Region: "eu-west-1"}, "comes from a server of region eu-west-1"},
			"relayed by another region's node": {func(sh *shipment) { sh.Forwarded = true }, cluster.RemotePeer{Node: "n1", Region: "us-east-1"}, "only a server of region us-west-2 relays"},
		} {
			sh := exportTo(t, east, "us-west-2", westKey, s)
			tc.edit(sh)
			if a := recv.receive(ctx, sh, tc.peer); !strings.Contains(a.Error, tc.want) || len(a.Outcomes) != 0 {
				t.Errorf("%s: answer %+v, want an error saying %q", name, a, tc.want)
			}
		}
	})

	t.Run("a secret of another account, or named for another region, is refused", func(t *testing.T) {
		sh := exportTo(t, east, "us-west-2", westKey, s)
		sh.Secrets[0].PrimaryARN = strings.Replace(s.ARN, ":000000000000:", ":111111111111:", 1)
		if a := recv.receive(ctx, sh, cluster.RemotePeer{}); a.Outcomes[0].Status != fsm.ReplFailed || !strings.Contains(a.Outcomes[0].Message, "account 111111111111") {
			t.Fatalf("another account: %+v", a)
		}
		sh = exportTo(t, east, "us-west-2", westKey, s)
		sh.Source = "eu-west-1"
		if a := recv.receive(ctx, sh, cluster.RemotePeer{}); a.Outcomes[0].Status != fsm.ReplFailed || !strings.Contains(a.Outcomes[0].Message, "not a secret ARN of region eu-west-1") {
			t.Fatalf("another source: %+v", a)
		}
	})

	t.Run("values the replica has are not shipped again", func(t *testing.T) {
		kr, _ := east.Keyring()
		txn, _ := east.FSM().ReadTxn()
		cur := fsm.SecretByARN(txn, s.ARN)
		ss, err := service(east).export(kr, westKey, "us-west-2", cur, cur.ModifyIndex, false)
		if err != nil || ss.Versions[0].Ciphertext != nil {
			t.Fatalf("export after the cursor passed the version: %+v, %v", ss, err)
		}
		// A replica region that lacks the value asks for it.
		a := service(other).receive(ctx, &shipment{Source: "us-east-1", Target: "eu-west-1", Secrets: []shippedSecret{ss}}, cluster.RemotePeer{})
		if a.Error != "" || a.Outcomes[0].Status != fsm.ReplNeedValues {
			t.Fatalf("a replica without the value: %+v", a)
		}
	})
}
