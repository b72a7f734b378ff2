package server_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/region"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/server/servertest"
)

// Region failover between two regions of three nodes each
// (docs/replication.md, "Promotion"): the link is cut under writes, the
// replica region is promoted and written, the old primary keeps taking
// writes while cut off, and after the heal it becomes a replica of the
// promoted region with its cut-off writes kept as conflicts. Then the
// documented fail-back: demote, wait, promote the old primary again.

type conflictsOut struct {
	Region    string                  `json:"region"`
	Conflicts []region.ConflictStatus `json:"conflicts"`
}

func TestReplication_RegionFailoverAndFailBack(t *testing.T) {
	wan, east, west := twoRegionsWAN(t)
	ctx := ctxT(t)
	e, w := east.Client(0), west.Client(1)
	name := aws.String("app/db")
	put := func(c *secretsmanager.Client, token, value string) error {
		_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: name, SecretString: aws.String(value),
			ClientRequestToken: aws.String(versionToken("app/db", token))})
		return err
	}
	current := func(c *secretsmanager.Client) string {
		t.Helper()
		v, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(v.SecretString)
	}
	status := func(c *servertest.Cluster, regionName string) server.ReplicationStatusOut {
		t.Helper()
		var out server.ReplicationStatusOut
		if code, typ, msg := adminCallIn(t, c.Nodes[c.Running()[0]].Endpoint, regionName, "/v1/replication/status", nil, &out, true); code != 200 {
			t.Fatalf("replication status of %s: %d %s %s", regionName, code, typ, msg)
		}
		return out
	}
	admin := func(c *servertest.Cluster, regionName, path string, body, out any) (int, string, string) {
		t.Helper()
		return adminCallIn(t, c.Nodes[c.Running()[0]].Endpoint, regionName, path, body, out, true)
	}

	if _, err := e.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: name, SecretString: aws.String("v1"),
		ClientRequestToken: aws.String(versionToken("app/db", "v1")),
		AddReplicaRegions:  []types.ReplicaRegionType{{Region: aws.String(replicaRegion)}}}); err != nil {
		t.Fatal(err)
	}
	if err := put(e, "v2", "v2"); err != nil {
		t.Fatal(err)
	}
	waitInSync(t, east, "app/db")

	// Promoting a region with nothing to promote, or over itself, is
	// refused and changes nothing.
	if code, typ, msg := admin(east, servertest.Region, "/v1/region/promote", map[string]string{}, nil); code != 400 || typ != apierr.InvalidRequest {
		t.Fatalf("promote the primary region: %d %s %s", code, typ, msg)
	}
	if code, typ, msg := admin(west, replicaRegion, "/v1/region/promote", map[string]string{"from": replicaRegion}, nil); code != 400 || typ != apierr.InvalidParameter {
		t.Fatalf("promote over itself: %d %s %s", code, typ, msg)
	}
	if code, typ, msg := admin(west, replicaRegion, "/v1/region/demote", map[string]string{}, nil); code != 400 || typ != apierr.InvalidRequest {
		t.Fatalf("demote a region with no primaries: %d %s %s", code, typ, msg)
	}

	// The link is cut: east's writes wait, the lag is reported, and
	// shipping turns Failed with the reason.
	wan.Cut(servertest.Region, replicaRegion)
	if err := put(e, "v3", "v3 lost in the cut"); err != nil {
		t.Fatal(err)
	}
	east.Eventually(30*time.Second, "the lag and the failure reported", func() bool {
		st := status(east, servertest.Region)
		out, err := e.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
		return len(st.Replicas) == 1 && st.Replicas[0].Pending >= 1 && st.Replicas[0].LagSeconds > 0 && st.Replicas[0].Error != "" &&
			err == nil && len(out.ReplicationStatus) == 1 && out.ReplicationStatus[0].Status == types.StatusTypeFailed
	})

	// Failover: west is promoted and takes writes at once.
	var promoted server.PromoteOut
	start := time.Now()
	if code, typ, msg := admin(west, replicaRegion, "/v1/region/promote", map[string]string{"from": servertest.Region}, &promoted); code != 200 || promoted.Secrets != 1 {
		t.Fatalf("promote west: %d %s %s %+v", code, typ, msg, promoted)
	}
	if err := put(w, "v4", "v4 written in the promoted region"); err != nil {
		t.Fatalf("the first write in the promoted region: %v", err)
	}
	t.Logf("promotion to first write: %s", time.Since(start))
	d, err := w.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
	if err != nil || aws.ToString(d.PrimaryRegion) != replicaRegion || len(d.ReplicationStatus) != 1 || aws.ToString(d.ReplicationStatus[0].Region) != servertest.Region {
		t.Fatalf("the promoted secret replicates back to its old primary region: %+v, %v", d, err)
	}
	// East does not know yet and acknowledges a write while cut off.
	if err := put(e, "v5", "v5 written in the cut-off old primary"); err != nil {
		t.Fatal(err)
	}

	// Heal: east learns the higher epoch and becomes west's replica; the
	// promoted writes win, its cut-off writes stay as conflicts.
	wan.Heal()
	east.Eventually(30*time.Second, "east a replica of west", func() bool {
		d, err := e.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
		return err == nil && aws.ToString(d.PrimaryRegion) == replicaRegion && d.VersionIdsToStages[versionToken("app/db", "v4")] != nil
	})
	for _, i := range east.Running() {
		if got := current(east.Client(i)); got != "v4 written in the promoted region" {
			t.Fatalf("east's current value on %s: %q", east.Nodes[i].ID, got)
		}
	}
	wantAPIError(t, "a write in the fenced old primary", put(e, "v6", "refused"), apierr.InvalidParameter, apierr.MsgReplicaWrite)
	var conflicts conflictsOut
	if code, typ, msg := admin(east, servertest.Region, "/v1/region/conflicts", nil, &conflicts); code != 200 {
		t.Fatalf("conflicts: %d %s %s", code, typ, msg)
	}
	var ids []string
	for _, c := range conflicts.Conflicts {
		if c.Name != "app/db" || c.Region != servertest.Region || c.Epoch != 0 || c.Found.IsZero() || c.CreatedDate.IsZero() {
			t.Fatalf("conflict %+v", c)
		}
		ids = append(ids, c.VersionID)
	}
	slices.Sort(ids)
	if want := []string{versionToken("app/db", "v3"), versionToken("app/db", "v5")}; !slices.Equal(ids, sortedCopy(want)) {
		t.Fatalf("conflict versions %v, want %v", ids, want)
	}
	// A conflict is an unlabeled version that still reads.
	vs, err := e.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: name, IncludeDeprecated: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Versions {
		if slices.Contains(ids, aws.ToString(v.VersionId)) && len(v.VersionStages) != 0 {
			t.Fatalf("conflict version %s has labels %v", aws.ToString(v.VersionId), v.VersionStages)
		}
	}
	if v, err := e.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name, VersionId: aws.String(versionToken("app/db", "v5"))}); err != nil ||
		aws.ToString(v.SecretString) != "v5 written in the cut-off old primary" {
		t.Fatalf("read the conflict version: %v, %v", v, err)
	}
	west.Eventually(30*time.Second, "east InSync as west's replica", func() bool {
		d, err := w.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
		return err == nil && len(d.ReplicationStatus) == 1 && d.ReplicationStatus[0].Status == types.StatusTypeInSync
	})
	if err := put(w, "v7", "v7"); err != nil {
		t.Fatal(err)
	}
	east.Eventually(30*time.Second, "west's next write in east", func() bool { return current(e) == "v7" })

	// Fail-back: demote west (writes refused there), wait until east has
	// everything, promote east: west becomes east's replica, no conflict.
	if code, typ, msg := admin(west, replicaRegion, "/v1/region/demote", map[string]string{}, &promoted); code != 200 || promoted.Secrets != 1 {
		t.Fatalf("demote west: %d %s %s", code, typ, msg)
	}
	wantAPIError(t, "a write in the demoted region", put(w, "v8", "refused"), apierr.InvalidRequest, apierr.MsgDemotedWrite)
	west.Eventually(30*time.Second, "nothing pending for east", func() bool {
		st := status(west, replicaRegion)
		return len(st.Replicas) == 1 && st.Replicas[0].Pending == 0
	})
	if code, typ, msg := admin(east, servertest.Region, "/v1/region/promote", map[string]string{}, &promoted); code != 200 || promoted.Secrets != 1 {
		t.Fatalf("promote east back: %d %s %s", code, typ, msg)
	}
	if err := put(e, "v9", "v9 after fail-back"); err != nil {
		t.Fatalf("write after fail-back: %v", err)
	}
	waitInSync(t, east, "app/db")
	west.Eventually(30*time.Second, "west a replica of east again", func() bool {
		d, err := w.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
		return err == nil && aws.ToString(d.PrimaryRegion) == servertest.Region && current(w) == "v9 after fail-back"
	})
	wantAPIError(t, "a write in west after fail-back", put(w, "v10", "refused"), apierr.InvalidParameter, apierr.MsgReplicaWrite)
	// Both regions show the same versions and labels; the conflicts of
	// the failover travel with the secret, and the fail-back made none.
	de, _ := e.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
	dw, _ := w.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: name})
	if !maps.EqualFunc(de.VersionIdsToStages, dw.VersionIdsToStages, slices.Equal) {
		t.Fatalf("versions differ: east %v, west %v", de.VersionIdsToStages, dw.VersionIdsToStages)
	}
	var westConflicts conflictsOut
	admin(west, replicaRegion, "/v1/region/conflicts", nil, &westConflicts)
	if len(westConflicts.Conflicts) != 2 {
		t.Fatalf("west's conflicts after fail-back: %+v, want east's two", westConflicts.Conflicts)
	}
	for _, c := range westConflicts.Conflicts {
		if c.Region != servertest.Region {
			t.Fatalf("a conflict of the fail-back: %+v", c)
		}
	}

	// Dismissal, region by region: refused for a version that is not a
	// conflict or a request that names none; v3 dismissed in west leaves
	// east's copy, then dismissed in east too; v5 stays everywhere.
	dismiss := func(c *servertest.Cluster, regionName, version string) (int, string, string) {
		return admin(c, regionName, "/v1/region/conflicts/dismiss", map[string]string{"secret_id": "app/db", "version_id": version}, nil)
	}
	if code, typ, msg := dismiss(west, replicaRegion, versionToken("app/db", "v4")); code != 400 || typ != apierr.InvalidRequest {
		t.Fatalf("dismiss a version that is no conflict: %d %s %s", code, typ, msg)
	}
	if code, typ, msg := admin(west, replicaRegion, "/v1/region/conflicts/dismiss", map[string]string{"secret_id": "app/db"}, nil); code != 400 || typ != apierr.InvalidParameter {
		t.Fatalf("dismiss without a version: %d %s %s", code, typ, msg)
	}
	v3 := versionToken("app/db", "v3")
	if code, typ, msg := dismiss(west, replicaRegion, v3); code != 200 {
		t.Fatalf("dismiss v3 in west: %d %s %s", code, typ, msg)
	}
	listed := func(c *servertest.Cluster, regionName string) []string {
		var out conflictsOut
		admin(c, regionName, "/v1/region/conflicts", nil, &out)
		var ids []string
		for _, v := range out.Conflicts {
			ids = append(ids, v.VersionID)
		}
		return sortedCopy(ids)
	}
	v5 := versionToken("app/db", "v5")
	if got := listed(west, replicaRegion); !slices.Equal(got, []string{v5}) {
		t.Fatalf("west's conflicts after the dismissal: %v, want %v", got, v5)
	}
	if got := listed(east, servertest.Region); len(got) != 2 {
		t.Fatalf("east's conflicts after west's dismissal: %v, want both", got)
	}
	if code, typ, msg := dismiss(east, servertest.Region, v3); code != 200 {
		t.Fatalf("dismiss v3 in east: %d %s %s", code, typ, msg)
	}
	if got := listed(east, servertest.Region); !slices.Equal(got, []string{v5}) {
		t.Fatalf("east's conflicts after its dismissal: %v", got)
	}
	for _, c := range []*secretsmanager.Client{e, w} {
		_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name, VersionId: aws.String(v3)})
		wantAPIError(t, "a read of the dismissed version", err, apierr.ResourceNotFound, "")
	}
	if v, err := e.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: name, VersionId: aws.String(v5)}); err != nil ||
		aws.ToString(v.SecretString) != "v5 written in the cut-off old primary" {
		t.Fatalf("the other conflict version: %v, %v", v, err)
	}
	waitInSync(t, east, "app/db")
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
