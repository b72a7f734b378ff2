package server_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/crypto"
	"github.com/cofferhq/coffer/fsm"
	"github.com/cofferhq/coffer/server/servertest"
)

// Replication between two regions of three nodes each, in one process,
// joined by a WAN pool, through the AWS SDK (docs/replication.md).

const replicaRegion = "us-west-2"

// twoRegions starts us-east-1 (the primary) and us-west-2, 3 nodes each.
func twoRegions(t *testing.T) (primary, replica *servertest.Cluster) {
	t.Helper()
	_, primary, replica = twoRegionsWAN(t)
	return primary, replica
}

// twoRegionsWAN is twoRegions with the WAN pool, to cut the link.
func twoRegionsWAN(t testing.TB) (wan *servertest.WAN, primary, replica *servertest.Cluster) {
	t.Helper()
	wan = servertest.NewWAN()
	primary = servertest.New(t, 3, servertest.Options{WAN: wan})
	replica = servertest.New(t, 3, servertest.Options{WAN: wan, Region: replicaRegion})
	primary.Eventually(30*time.Second, "both regions in the WAN pool with their keys", func() bool {
		for _, c := range []*servertest.Cluster{primary, replica} {
			for _, i := range c.Running() {
				keys := 0
				for _, n := range c.Nodes[i].Pool.Members() {
					if n.PublicKey != nil {
						keys++
					}
				}
				if keys < 6 {
					return false
				}
			}
		}
		return true
	})
	return wan, primary, replica
}

// waitInSync waits until every replica of the secret is InSync, as the
// primary reports it, and returns the statuses.
func waitInSync(t *testing.T, c *servertest.Cluster, id string) []types.ReplicationStatusType {
	t.Helper()
	var out *secretsmanager.DescribeSecretOutput
	c.Eventually(30*time.Second, id+" InSync in every replica region", func() bool {
		var err error
		out, err = c.Client(c.Leader()).DescribeSecret(ctxT(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil || len(out.ReplicationStatus) == 0 {
			return false
		}
		for _, st := range out.ReplicationStatus {
			if st.Status != types.StatusTypeInSync {
				return false
			}
		}
		return true
	})
	return out.ReplicationStatus
}

// sameSecret requires the replica to show what the primary shows: name,
// description, tags, versions and labels, every labelled value.
func sameSecret(t *testing.T, primary, replica *servertest.Cluster, name string) {
	t.Helper()
	ctx := ctxT(t)
	p, err := primary.Client(0).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range replica.Running() {
		r, err := replica.Client(i).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatalf("describe the replica on %s: %v", replica.Nodes[i].ID, err)
		}
		if want := replicaARNOf(aws.ToString(p.ARN), replicaRegion); aws.ToString(r.ARN) != want {
			t.Fatalf("replica ARN %s, want %s", aws.ToString(r.ARN), want)
		}
		if aws.ToString(r.PrimaryRegion) != servertest.Region || aws.ToString(r.Description) != aws.ToString(p.Description) ||
			tagString(r.Tags) != tagString(p.Tags) || !maps.EqualFunc(r.VersionIdsToStages, p.VersionIdsToStages, slices.Equal) ||
			!aws.ToTime(r.CreatedDate).Equal(aws.ToTime(p.CreatedDate)) {
			t.Fatalf("replica on %s: %+v\nprimary: %+v", replica.Nodes[i].ID, r, p)
		}
		for id := range p.VersionIdsToStages {
			pv, err := primary.Client(0).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(id)})
			if err != nil {
				t.Fatal(err)
			}
			rv, err := replica.Client(i).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(id)})
			if err != nil {
				t.Fatalf("read version %s of the replica on %s: %v", id, replica.Nodes[i].ID, err)
			}
			if aws.ToString(rv.SecretString) != aws.ToString(pv.SecretString) || !bytes.Equal(rv.SecretBinary, pv.SecretBinary) {
				t.Fatalf("version %s: replica %q %x, primary %q %x", id, aws.ToString(rv.SecretString), rv.SecretBinary,
					aws.ToString(pv.SecretString), pv.SecretBinary)
			}
		}
	}
}

// replicaARNOf is the ARN of a us-east-1 secret's replica in region.
func replicaARNOf(arn, region string) string {
	return "arn:aws:secretsmanager:" + region + arn[len("arn:aws:secretsmanager:"+servertest.Region):]
}

func TestReplication_TwoRegions(t *testing.T) {
	primary, replica := twoRegions(t)
	ctx := ctxT(t)
	p, r := primary.Client(1), replica.Client(2) // followers or leaders: any node serves
	const marker = "replicated-plaintext-marker-5c1f"

	created, err := p.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("db/main"),
		SecretString: aws.String(marker + "-v1"), ClientRequestToken: aws.String(versionToken("db/main", "v1")),
		Description: aws.String("main database"), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("db")}},
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.ReplicationStatus) != 1 || aws.ToString(created.ReplicationStatus[0].Region) != replicaRegion ||
		aws.ToString(created.ReplicationStatus[0].KmsKeyId) != fsm.DefaultKeyAlias {
		t.Fatalf("CreateSecret's ReplicationStatus: %+v", created.ReplicationStatus)
	}
	waitInSync(t, primary, "db/main")
	sameSecret(t, primary, replica, "db/main")

	t.Run("changes follow in order", func(t *testing.T) {
		for i := 2; i <= 5; i++ {
			if _, err := p.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("db/main"),
				SecretString: aws.String(fmt.Sprintf("%s-v%d", marker, i)), ClientRequestToken: aws.String(versionToken("db/main", fmt.Sprint("v", i)))}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("db/main"),
			SecretBinary: []byte{0, 1, 2}, ClientRequestToken: aws.String(versionToken("db/main", "bin")), VersionStages: []string{"BIN"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("db/main"),
			VersionStage: aws.String("OLD"), MoveToVersionId: aws.String(versionToken("db/main", "v1"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("db/main"),
			Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("db/main"), TagKeys: []string{"team"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("db/main"), Description: aws.String("moved")}); err != nil {
			t.Fatal(err)
		}
		policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
		if _, err := p.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String("db/main"), ResourcePolicy: aws.String(policy)}); err != nil {
			t.Fatal(err)
		}
		waitInSync(t, primary, "db/main")
		sameSecret(t, primary, replica, "db/main")
		got, err := r.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String("db/main")})
		if err != nil || aws.ToString(got.ResourcePolicy) != policy {
			t.Fatalf("the replica's policy: %v, %v", got, err)
		}
		v, err := r.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("db/main")})
		if err != nil || aws.ToString(v.SecretString) != marker+"-v5" {
			t.Fatalf("the replica's current value: %v, %v", v, err)
		}
	})

	t.Run("clients cannot change a replica", func(t *testing.T) {
		id := aws.String("db/main")
		for name, call := range map[string]func() error{
			"PutSecretValue": func() error {
				_, err := r.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("x"), ClientRequestToken: aws.String(versionToken("db/main", "w"))})
				return err
			},
			"UpdateSecret": func() error {
				_, err := r.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: id, Description: aws.String("x")})
				return err
			},
			"TagResource": func() error {
				_, err := r.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: id, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
				return err
			},
			"DeleteSecret": func() error {
				_, err := r.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: id})
				return err
			},
			"ReplicateSecretToRegions": func() error {
				_, err := r.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{SecretId: id,
					AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(servertest.Region)}}})
				return err
			},
			"RemoveRegionsFromReplication": func() error {
				_, err := r.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: id, RemoveReplicaRegions: []string{servertest.Region}})
				return err
			},
		} {
			wantAPIError(t, name+" on the replica", call(), apierr.InvalidParameter, apierr.MsgReplicaWrite)
		}
		_, err := p.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("db/main"), ForceDeleteWithoutRecovery: aws.Bool(true)})
		wantAPIError(t, "delete a primary with replicas", err, apierr.InvalidParameter,
			fmt.Sprintf("You can't delete secret %s that still has replica regions [%s].", aws.ToString(created.ARN), replicaRegion))
	})

	t.Run("no key of the primary and no plaintext in the replica region", func(t *testing.T) {
		kr, err := primary.Nodes[primary.Leader()].Region.Keyring()
		if err != nil {
			t.Fatal(err)
		}
		txn, _ := primary.Nodes[0].Region.FSM().ReadTxn()
		s := fsm.SecretByName(txn, "db/main")
		v := s.Staged(fsm.StageCurrent)
		dek, kek, err := kr.KeysForLeakTest(v.Value, crypto.ValueAAD(v.AADARN(s), v.VersionID))
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range replica.Running() {
			scanDir(t, replica.Nodes[i].DataDir, map[string][]byte{"the primary's KEK": kek, "a plaintext data key": dek,
				"the primary's root key": primary.RootKey, "a plaintext value": []byte(marker)})
		}
	})

	t.Run("a name taken in the replica region fails, and ForceOverwriteReplicaSecret replaces it", func(t *testing.T) {
		if _, err := r.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("taken"), SecretString: aws.String("west's own")}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("taken"), SecretString: aws.String("east's"),
			AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
			t.Fatal(err)
		}
		want := "Replication failed: Secret name taken already exists in region " + replicaRegion + "."
		primary.Eventually(30*time.Second, "the replica Failed", func() bool {
			out, err := p.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("taken")})
			return err == nil && len(out.ReplicationStatus) == 1 && out.ReplicationStatus[0].Status == types.StatusTypeFailed &&
				aws.ToString(out.ReplicationStatus[0].StatusMessage) == want
		})
		if v, err := r.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("taken")}); err != nil || aws.ToString(v.SecretString) != "west's own" {
			t.Fatalf("the replica region's own secret: %v, %v", v, err)
		}
		if _, err := p.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String("taken"),
			RemoveReplicaRegions: []string{replicaRegion}}); err != nil {
			t.Fatal(err)
		}
		out, err := p.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String("taken"),
			AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}, ForceOverwriteReplicaSecret: true})
		if err != nil || len(out.ReplicationStatus) != 1 {
			t.Fatalf("ReplicateSecretToRegions with ForceOverwriteReplicaSecret: %+v, %v", out, err)
		}
		waitInSync(t, primary, "taken")
		sameSecret(t, primary, replica, "taken")
	})

	t.Run("RemoveRegionsFromReplication deletes the replica", func(t *testing.T) {
		out, err := p.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String("taken"),
			RemoveReplicaRegions: []string{replicaRegion}})
		if err != nil || out.ReplicationStatus == nil || len(out.ReplicationStatus) != 0 {
			t.Fatalf("remove: %+v, %v", out, err)
		}
		replica.Eventually(30*time.Second, "the replica deleted", func() bool {
			_, err := r.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("taken")})
			return apiCode(err) == apierr.ResourceNotFound
		})
		// The primary stands alone and may be deleted now.
		if _, err := p.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("taken"), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("StopReplicationToReplica promotes the replica", func(t *testing.T) {
		if _, err := p.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("promo"), SecretString: aws.String("one"),
			AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
			t.Fatal(err)
		}
		waitInSync(t, primary, "promo")
		_, err := p.StopReplicationToReplica(ctx, &secretsmanager.StopReplicationToReplicaInput{SecretId: aws.String("promo")})
		wantAPIErrorContains(t, "stop on the primary", err, apierr.InvalidRequest, "is not a replica")
		out, err := r.StopReplicationToReplica(ctx, &secretsmanager.StopReplicationToReplicaInput{SecretId: aws.String("promo")})
		if err != nil || aws.ToString(out.ARN) != replicaARNOf(describeARN(t, p, "promo"), replicaRegion) {
			t.Fatalf("stop on the replica: %+v, %v", out, err)
		}
		if _, err := r.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("promo"), SecretString: aws.String("west")}); err != nil {
			t.Fatalf("write the promoted secret: %v", err)
		}
		// The replica region tells the old primary, which stops
		// replicating the secret there; its next change stays its own.
		primary.Eventually(30*time.Second, "the primary without the promoted region", func() bool {
			out, err := p.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("promo")})
			return err == nil && len(out.ReplicationStatus) == 0
		})
		if _, err := p.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("promo"), SecretString: aws.String("east")}); err != nil {
			t.Fatal(err)
		}
		v, err := r.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("promo")})
		if err != nil || aws.ToString(v.SecretString) != "west" {
			t.Fatalf("the promoted secret: %v, %v", v, err)
		}
	})

	t.Run("primary-region filter", func(t *testing.T) {
		for _, c := range []*secretsmanager.Client{p, r} {
			out, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{{Key: types.FilterNameStringTypePrimaryRegion, Values: []string{"us-east"}}}})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range out.SecretList {
				names = append(names, aws.ToString(e.Name))
			}
			if !slices.Equal(names, []string{"db/main"}) {
				t.Fatalf("primary-region us-east: %v, want [db/main]", names)
			}
		}
	})
}

func describeARN(t *testing.T, c *secretsmanager.Client, id string) string {
	t.Helper()
	out, err := c.DescribeSecret(ctxT(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// scanDir fails if any file under dir holds any of the byte strings.
func scanDir(t *testing.T, dir string, secrets map[string][]byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, b := range secrets {
			if len(b) > 0 && bytes.Contains(data, b) {
				t.Errorf("%s holds %s", path, what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
